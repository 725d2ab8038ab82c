"""How fast PAdES B-B signing goes through a CSC service: one signHash call per document, or hashes batched.

``python -m signing.csc_bench [PDF] [--documents N] [--batch B]`` prints both rates. The service is
:class:`~signing.csc_testing.CscTestService` on 127.0.0.1 with a throwaway RSA-2048 key, so the figure
is Kurier's side of the work plus the HTTP round trips on loopback; a real service adds its network
latency and its HSM's time per round, which batching divides by the batch size.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

__all__ = ["CscRates", "csc_pades_rates"]

_TOKEN_ENV, _PIN_ENV = "KURIER_CSC_BENCH_TOKEN", "KURIER_CSC_BENCH_PIN"
_BYTES_RESERVED = 8192  # room for the signature set in advance: no dry-run signing to size it


@dataclass(frozen=True)
class CscRates:
    documents: int
    batch: int
    per_document: float  # documents/s, one credentials/authorize + signatures/signHash per document
    batched: float  # documents/s, `batch` documents' hashes per authorize + signHash
    calls_per_document: int  # signHash calls made by each run
    calls_batched: int


def _throwaway_credential() -> tuple[object, object]:
    from asn1crypto import x509 as asn1_x509
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Kurier CSC bench signer")])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=30)).sign(key, hashes.SHA256()))
    return key, asn1_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER))


def csc_pades_rates(pdf: bytes, *, documents: int = 40, batch: int = 10) -> CscRates:
    """Sign ``pdf`` ``documents`` times each way through a CSC v2 test service; the rates and call counts."""
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.sign import signers

    from signing.csc import CscKey, Settings
    from signing.csc_testing import CscTestService

    key, cert = _throwaway_credential()
    token, pin = secrets.token_urlsafe(16), secrets.token_hex(4)
    saved = {name: os.environ.get(name) for name in (_TOKEN_ENV, _PIN_ENV)}
    os.environ.update({_TOKEN_ENV: token, _PIN_ENV: pin})  # CscKey reads its secrets from the environment
    meta = signers.PdfSignatureMetadata(field_name="Signature1")
    try:
        with CscTestService(key, [cert], token=token, pin=pin, multisign=batch) as service:  # type: ignore[arg-type]
            csc = CscKey("bench", Settings(base_url=service.url, version=2, credential_id=service.credential_id,
                                           token_env=_TOKEN_ENV, pin_env=_PIN_ENV))
            signer = csc.pdf_signer()
            signers.sign_pdf(IncrementalPdfFileWriter(io.BytesIO(pdf)), meta, signer=signer,
                             output=io.BytesIO(), bytes_reserved=_BYTES_RESERVED)  # warm-up: imports, connection
            before = service.calls["signatures/signHash"]
            started = time.perf_counter()
            for _ in range(documents):
                signers.sign_pdf(IncrementalPdfFileWriter(io.BytesIO(pdf)), meta, signer=signer,
                                 output=io.BytesIO(), bytes_reserved=_BYTES_RESERVED)
            one_each = time.perf_counter() - started
            calls_one = service.calls["signatures/signHash"] - before

            async def in_batches() -> None:
                for start in range(0, documents, batch):
                    await asyncio.gather(*(
                        signers.async_sign_pdf(IncrementalPdfFileWriter(io.BytesIO(pdf)), meta, signer=signer,
                                               output=io.BytesIO(), bytes_reserved=_BYTES_RESERVED)
                        for _ in range(min(batch, documents - start))))

            before = service.calls["signatures/signHash"]
            started = time.perf_counter()
            asyncio.run(in_batches())
            batched = time.perf_counter() - started
            calls_batched = service.calls["signatures/signHash"] - before
            csc.close()
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    return CscRates(documents, batch, documents / one_each, documents / batched, calls_one, calls_batched)


def _sample_pdf(size: int = 100_000) -> bytes:
    """A one-page PDF padded with a stream to about ``size`` bytes (the bench's 100 KB document)."""
    from pyhanko.pdf_utils import generic
    from pyhanko.pdf_utils.writer import PdfFileWriter

    writer = PdfFileWriter()
    filler = writer.add_object(generic.StreamObject(stream_data=os.urandom(size)))
    writer.insert_page(generic.DictionaryObject({
        generic.pdf_name("/Type"): generic.pdf_name("/Page"),
        generic.pdf_name("/MediaBox"): generic.ArrayObject([generic.NumberObject(n) for n in (0, 0, 595, 842)]),
        generic.pdf_name("/PieceInfo"): filler,
    }))
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pdf", nargs="?", type=Path, help="the PDF to sign (default: a 100 KB one)")
    parser.add_argument("--documents", type=int, default=40)
    parser.add_argument("--batch", type=int, default=10)
    args = parser.parse_args(argv)
    pdf = args.pdf.read_bytes() if args.pdf else _sample_pdf()
    rates = csc_pades_rates(pdf, documents=args.documents, batch=args.batch)
    print(f"PAdES B-B through CSC v2 on 127.0.0.1, {len(pdf) // 1000} KB PDF, {rates.documents} documents:")
    print(f"  one signHash call per document: {rates.per_document:7.1f} documents/s ({rates.calls_per_document} calls)")
    print(f"  {rates.batch} hashes per signHash call:    {rates.batched:7.1f} documents/s "
          f"({rates.calls_batched} calls), x{rates.batched / rates.per_document:.2f}")


if __name__ == "__main__":
    main()
