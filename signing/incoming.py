"""Checking the signatures of a document as it comes in: one report per signature, per file.

Each file is checked in the format its name says: a PDF for PAdES, an XML file for XAdES (enveloped),
a ``<name>.p7s`` as the detached CAdES signature of the file ``<name>`` of the same document. A file
that carries no signature, and has no ``.p7s`` beside it, gets a report saying so: on a route that
expects signed documents that is as much a finding as a broken signature. What is done with the
reports (refuse the document, or deliver it flagged) is the route's policy, decided by the pipeline.
"""

from __future__ import annotations

import fnmatch
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from schemas.envelope import AttachmentRef, Envelope
from schemas.payloads import PayloadStore
from signing.report import SignatureReport, SignatureStatus

if TYPE_CHECKING:
    from asn1crypto import x509

__all__ = ["IncomingCheck", "describe_report"]


class IncomingCheck:
    """Validates the files of documents against fixed trust anchors; one object per worker."""

    def __init__(self, trust_roots: Sequence[x509.Certificate], files: str = "*") -> None:
        self.trust_roots = list(trust_roots)
        self.files = files  # which attachments must be signed, by file-name pattern

    def check(self, envelope: Envelope, store: PayloadStore) -> list[SignatureReport]:
        by_name = {att.file_name: att for att in envelope.attachments}
        reports: list[SignatureReport] = []
        with tempfile.TemporaryDirectory(prefix="kurier-verify-") as tmp:
            for i, att in enumerate(envelope.attachments):
                name = att.file_name
                if name.lower().endswith(".p7s") and name[:-4] in by_name:
                    continue  # checked with its data file
                if not fnmatch.fnmatchcase(name.lower(), self.files.lower()):
                    continue
                reports += self._check_one(att, by_name.get(f"{name}.p7s"), Path(tmp) / str(i), store)
        return reports

    def _check_one(self, att: AttachmentRef, p7s: AttachmentRef | None, where: Path,
                   store: PayloadStore) -> list[SignatureReport]:
        where.mkdir()
        path = where / "data"
        store.copy_to(att.sha256, path)
        if p7s is not None:
            from signing.cades import verify_cades

            return [verify_cades(path, store.read_bytes(p7s.sha256), self.trust_roots, file_name=att.file_name)]
        lowered = att.file_name.lower()
        if lowered.endswith(".pdf") or att.mime_type == "application/pdf":
            from signing.pades_verify import validate_pdf

            return validate_pdf(path, self.trust_roots, file_name=att.file_name)
        if lowered.endswith(".xml"):
            from signing.xades import verify_xml

            found = verify_xml(path.read_bytes(), trust_roots=self.trust_roots, file_name=att.file_name)
            if found:
                return found
        return [SignatureReport(format="none", file_name=att.file_name, status=SignatureStatus.INVALID,
                                reason="carries no signature (no signature in it, no .p7s beside it)")]


def describe_report(report: SignatureReport) -> str:
    """One line for the journal and the operator: which file, what was found, by whom, when."""
    parts = [f"{report.file_name or 'the message'} {report.format}: {report.status.value}: {report.reason}"]
    if report.signer:
        parts.append(f"signer {report.signer}" + (f" (EIK {report.signer_eik})" if report.signer_eik else ""))
    if report.signed_at:
        parts.append(f"signed at {report.signed_at:%Y-%m-%d %H:%M:%S %Z}".rstrip())
    if report.timestamp:
        parts.append(f"timestamp {report.timestamp:%Y-%m-%d %H:%M:%S %Z}".rstrip())
    if report.level:
        parts.append(f"level {report.level}")
    if report.weak:
        parts.append(f"weak: {', '.join(report.weak)}")
    if report.chain:
        parts.append("chain " + " ← ".join(report.chain))
    return "; ".join(parts)
