"""Kurier's own SEOS schema agrees with the official one on what Kurier sends and what peers send."""

from __future__ import annotations

from pathlib import Path

import pytest
from lxml import etree

from router.store import FileStore
from schemas.errors import Refused
from schemas.seos import build_message
from schemas.seos.schema import schema_errors, validate
from signing.xmldsig import sign_seos_message
from tests.seos_fixtures import registration, the_four
from tests.xmlsig_fixtures import SEOS_XSD_DIR, SignerPki, pki, seos_message, seos_schema  # noqa: F401


@pytest.fixture(scope="module")
def official() -> etree.XMLSchema:
    return seos_schema(SEOS_XSD_DIR)


def test_every_message_kurier_builds_is_valid_under_both_schemas(tmp_path: Path, official: etree.XMLSchema,
                                                                 pki: SignerPki) -> None:  # noqa: F811
    store = FileStore(tmp_path / "store")
    for message in [*the_four(store), registration(store)]:
        for data in (build_message(message, store=store), sign_seos_message(build_message(message, store=store),
                                                                            pki.signer)):
            root = etree.fromstring(data)
            assert official.validate(root), official.error_log
            assert schema_errors(root) == []


def test_a_peers_message_is_valid_under_both(official: etree.XMLSchema) -> None:
    root = etree.fromstring(seos_message())
    assert official.validate(root) and schema_errors(root) == []
    # including a .NET peer's Version "1.0", which Kurier takes (the official schema's is "1")
    root.find("{http://schemas.egov.bg/messaging/v1}Header/{http://schemas.egov.bg/messaging/v1}Version").text = "1.0"
    assert schema_errors(root) == []


@pytest.mark.parametrize(("replacements", "words"), [
    ([("MSG_DocumentRegistrationRequest", "MSG_Whatever")], "MSG_Whatever"),
    ([("<DocKind>", "<DocSort>"), ("</DocKind>", "</DocSort>")], "DocSort"),
    ([("</Header>", "<Extra>1</Extra></Header>")], "Extra"),
])
def test_an_off_spec_message_is_refused_by_both_with_its_line(official: etree.XMLSchema,
                                                               replacements: list[tuple[str, str]],
                                                               words: str) -> None:
    text = seos_message().decode("utf-8")
    for old, new in replacements:
        assert old in text
        text = text.replace(old, new, 1)
    root = etree.fromstring(text.encode())
    assert not official.validate(root)
    errors = schema_errors(root)
    assert errors and errors[0].startswith("line ") and words in " ".join(errors)
    with pytest.raises(Refused, match="not valid against the SEOS schema: line "):
        validate(root)
