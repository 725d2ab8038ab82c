"""The checks every document passes before the hub journals it: one function, one code per check, any source."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from adapters.base import AdapterContext
from adapters.filedrop import FiledropSource
from adapters.filedrop.testing import BAD_DOCUMENTS, REGION, SampleDocument, sample_pdf, write_document
from router.hub import Hub
from schemas.envelope import AttachmentRef, Party
from schemas.errors import Refused
from schemas.limits import Limits
from schemas.validation import CODES, check_envelope
from tests.helpers import envelope, hub_config, unique

_REF = AttachmentRef(file_name="a.pdf", size=10, sha256="0" * 64)


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"sender": Party(name="без идентификатор")}, "missing-sender"),
        ({"recipient": Party(name="без идентификатор")}, "missing-recipient"),
        ({"sender": Party(eik="000695236")}, "invalid-eik"),  # a wrong check digit
        ({"recipient": Party(eik="12345678901234")}, "invalid-eik"),  # 14 digits
        ({"kind": ""}, "invalid-document"),
        ({"attachments": [_REF] * 3}, "too-many-attachments"),
        ({"attachments": [_REF.model_copy(update={"size": 600})] * 2}, "too-large"),
    ],
)
def test_each_check_refuses_with_its_one_code(fields: dict[str, Any], code: str) -> None:
    with pytest.raises(Refused) as refused:
        check_envelope(envelope(**fields), Limits(max_attachments=2, max_document_bytes=1000))
    assert refused.value.code == code and code in CODES


def test_a_document_at_the_limits_passes() -> None:
    # Exactly the allowed number of attachments, exactly the allowed total size: nothing to refuse
    limits = Limits(max_attachments=2, max_document_bytes=1000)
    check_envelope(envelope(attachments=[_REF.model_copy(update={"size": 500})] * 2), limits)
    check_envelope(envelope(sender=Party(guid="{4f1c2a7e-0b1d-4c55-9a57-1b2c3d4e5f60}")), limits)  # a GUID will do


def test_too_many_attachments_is_one_code_from_the_hub_and_from_a_file_drop(tmp_path: Path) -> None:
    # Given a hub that allows two attachments, and an inbox that drops a document with three
    sink = unique("region")
    config = hub_config(tmp_path, {"broker_url": "memory://", "queue_prefix": unique("kurier-test")},
                        limits={"max_attachments": 2},
                        connections={"ais": {"adapter": "filedrop", "inbox": "inbox", "settle_seconds": 0},
                                     sink: {"adapter": "memory"}},
                        default_route={"deliver_to": [sink]})
    hub = Hub(config, with_sources=False)
    hub.start()
    try:
        files = {f"лист-{i}.pdf": sample_pdf(f"Лист {i}") for i in range(3)}
        inbox = config.resolve_path("inbox")
        write_document(inbox, SampleDocument(recipient=REGION, attachments=files), stem="three")
        source = FiledropSource("ais", hub.connections["ais"].source.settings,  # type: ignore[union-attr]
                                AdapterContext(config.data_dir, hub.store, config.limits))
        # When the file drop hands it in, and another source submits the same kind of envelope directly
        assert source.poll_once(hub) == 1
        refs = [AttachmentRef(file_name=f"{i}.pdf", size=1, sha256="0" * 64) for i in range(3)]
        with pytest.raises(Refused) as direct:
            hub.submit(envelope(recipient=REGION.party, attachments=refs))
        # Then both are refused by the hub's one check, with its one code, and journaled
        note = next((inbox / "failed").glob("*/three.error.txt")).read_text("utf-8-sig")
        assert "Код / Code: too-many-attachments" in note and direct.value.code == "too-many-attachments"
        assert hub.journal.count(status="refused") == 2
    finally:
        hub.stop()


def test_every_refusal_code_is_in_the_format_table() -> None:
    # An AIS vendor reads FORMAT.md to learn what a code in an error file means: none may be missing
    text = (Path(__file__).parents[1] / "adapters" / "filedrop" / "FORMAT.md").read_text("utf-8")
    table = text.split("| Code | Meaning |", 1)[1].split("\n\n", 1)[0]
    documented = set(re.findall(r"`([a-z-]+)`", table))
    own = {"too-large", "missing-attachment", "attachment-mismatch", "sender-mismatch", "unknown-recipient",
           "duplicate-guid"}
    assert set(CODES) | set(BAD_DOCUMENTS.values()) | own <= documented
