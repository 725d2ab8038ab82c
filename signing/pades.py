"""PAdES signatures on PDFs: B-B, B-T (an RFC 3161 timestamp) and B-LT (validation data in the DSS).

Speed: pyhanko's plain ``sign_pdf`` with a ``SimpleSigner`` signs every document twice (a trial
signature sizes the CMS), parses the private key again each time and builds the CMS from scratch.
:class:`PadesSigner` reserves a fixed size for the CMS (no trial), keeps one ``PdfSigner`` over the
key source's kept key, and at B-B repeats a CMS prepared once per certificate (:mod:`signing.cmsprep`):
~50x the plain rate on a 100 KB PDF here (``kurier bench --sign``).

Memory: :meth:`PadesSigner.sign_file` reads the input through an open file (pyhanko's reader seeks,
it does not slurp) and writes the output to a file, so a 100 MB PDF is never whole in memory.

Validation (:mod:`signing.pades_verify`) gives a :class:`~signing.report.SignatureReport` per signature.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Literal

from pydantic import BaseModel, ConfigDict

from schemas.errors import ConfigError, KurierError, Permanent, Transient

if TYPE_CHECKING:
    from asn1crypto import x509

    from signing.keys import KeySource

__all__ = ["LEVELS", "PadesSettings", "PadesSigner"]

Level = Literal["B-B", "B-T", "B-LT"]
LEVELS: tuple[str, ...] = ("B-B", "B-T", "B-LT")

# Bytes reserved for the CMS in the PDF: signer + intermediate certificates and an RSA-4096 signature
# fit in 12 KB; a timestamp token (with the TSA's certificate) adds up to ~8 KB more. Unused room is
# zero padding inside /Contents, which every reader accepts.
_RESERVED = {"B-B": 12_288, "B-T": 24_576, "B-LT": 24_576}


class PadesSettings(BaseModel):
    """How a PAdES signature looks: level, field, and what the signature dictionary says."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    level: Level = "B-B"
    field_name: str = "KurierSignature"  # a new field of this name; a PDF signed twice gets Name-2, ...
    reason: str | None = None
    location: str | None = None
    signer_name: str | None = None  # /Name; default: the certificate's common name
    contact_info: str | None = None
    tsa_url: str | None = None  # needed for B-T and B-LT
    digest_algorithm: Literal["sha256", "sha384", "sha512"] = "sha256"
    bytes_reserved: int | None = None  # None: enough for the level (see _RESERVED)


class PadesSigner:
    """Signs PDFs with one key source; one object per worker (pyhanko signers are not thread-safe)."""

    def __init__(self, key: KeySource, settings: PadesSettings | None = None,
                 trust_roots: list[x509.Certificate] | None = None) -> None:
        from pyhanko.sign import fields, signers, timestamps

        self.key = key
        self.settings = settings = settings or PadesSettings()
        if settings.level != "B-B" and not settings.tsa_url:
            raise ConfigError(f"PAdES {settings.level} needs a timestamp authority: set tsa_url")
        if settings.level == "B-LT" and not trust_roots:
            raise ConfigError("PAdES B-LT needs the trust anchors of the signer's chain, to gather its validation data")
        self._timestamper = (timestamps.HTTPTimeStamper(settings.tsa_url, timeout=10)
                            if settings.tsa_url and settings.level != "B-B" else None)
        self._trust_roots = list(trust_roots or [])
        self._reserved = settings.bytes_reserved or _RESERVED[settings.level]
        cert = key.certificate()
        self._signer_name = settings.signer_name or cert.subject.native.get("common_name")
        self._subfilter = fields.SigSeedSubFilter.PADES
        self._signers = signers
        # Made once and reused for every document of the same field name: PdfSignatureMetadata and
        # PdfSigner hold no per-document state (the signing session does).
        self._pdf_signers: dict[str, Any] = {}

    def _pdf_signer(self, field_name: str) -> Any:
        pdf_signer = self._pdf_signers.get(field_name)
        if pdf_signer is None:
            s = self.settings
            validation_context = None
            if s.level == "B-LT":
                from pyhanko_certvalidator import ValidationContext

                validation_context = ValidationContext(trust_roots=self._trust_roots, allow_fetching=True,
                                                       other_certs=self.key.chain())
            meta = self._signers.PdfSignatureMetadata(
                field_name=field_name, reason=s.reason, location=s.location, name=self._signer_name,
                contact_info=s.contact_info, md_algorithm=s.digest_algorithm, subfilter=self._subfilter,
                embed_validation_info=s.level == "B-LT", validation_context=validation_context)
            if s.level == "B-B":
                from signing.cmsprep import prepared_cms_signer

                cms_signer = prepared_cms_signer(self.key)
            else:
                cms_signer = self.key.pdf_signer()
            pdf_signer = self._signers.PdfSigner(meta, cms_signer, timestamper=self._timestamper)
            self._pdf_signers[field_name] = pdf_signer
        return pdf_signer

    def sign_stream(self, source: BinaryIO, output: BinaryIO) -> None:
        """Sign the PDF read from ``source`` (seekable) into ``output`` (seekable, readable: ``w+b``)."""
        from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter

        try:
            writer = IncrementalPdfFileWriter(source, strict=False)
            field_name = self._free_field_name(writer)
            self._pdf_signer(field_name).sign_pdf(writer, bytes_reserved=self._reserved, output=output)
        except KurierError:  # the key source's own verdict (an HSM or a signing service busy, a refusal)
            raise
        except Exception as exc:  # a broken PDF, pyhanko's SigningError, the timestamp client's errors
            raise self._translate(exc) from exc

    def sign_file(self, source: Path, output: Path) -> None:
        """Sign file to file; the output is written beside it first, so a failure leaves no half PDF."""
        partial = output.with_name(output.name + ".partial")
        try:
            with source.open("rb") as fin, partial.open("w+b") as fout:
                self.sign_stream(fin, fout)
            partial.replace(output)
        finally:
            partial.unlink(missing_ok=True)

    def sign_bytes(self, data: bytes) -> bytes:
        output = io.BytesIO()
        self.sign_stream(io.BytesIO(data), output)
        return output.getvalue()

    def _free_field_name(self, writer: Any) -> str:
        """The configured field name, or Name-2, Name-3... when the PDF already has that field."""
        from pyhanko.sign.fields import enumerate_sig_fields

        taken = {name for name, _, _ in enumerate_sig_fields(writer.prev)} if "/AcroForm" in writer.root else set()
        name, n = self.settings.field_name, 1
        while name in taken:
            n += 1
            name = f"{self.settings.field_name}-{n}"
        return name

    def _translate(self, exc: Exception) -> Exception:
        from pyhanko.sign.timestamps import TimestampRequestError

        if isinstance(exc, TimestampRequestError) or _is_network(exc):
            return Transient(f"PAdES {self.settings.level}: the timestamp authority {self.settings.tsa_url} "
                             f"did not answer: {exc}", code="tsa-unavailable")
        return Permanent(f"PAdES signing failed: {type(exc).__name__}: {exc}", code="signing-failed")


def _is_network(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ConnectionError | TimeoutError) or type(seen).__module__.startswith(
                ("requests", "urllib3", "aiohttp")):
            return True
        seen = seen.__cause__ or seen.__context__
    return False
