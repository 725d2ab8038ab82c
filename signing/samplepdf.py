"""Sample PDFs of a chosen size for the tests, the bench and the demo, written without a PDF library.

One page whose content stream is padded with PDF comments to the size asked for, written in chunks
so a 100 MB file never sits in memory. The cross-reference table is computed, so readers (pyhanko,
poppler) accept the file as is.
"""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

__all__ = ["sample_pdf", "write_sample_pdf"]

_CHUNK = 1 << 20


def _write(out: BinaryIO, size: int, text: str) -> None:
    offsets: list[int] = []

    def obj(body: bytes) -> None:
        offsets.append(out.tell())
        out.write(f"{len(offsets)} 0 obj\n".encode() + body + b"\nendobj\n")

    out.write(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    obj(b"<< /Type /Catalog /Pages 2 0 R >>")
    obj(b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>")
    obj(b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>")
    safe = text.encode("latin-1", "replace").replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)")
    head = b"BT /F1 12 Tf 72 770 Td (" + safe + b") Tj ET\n"
    padding = max(0, size - len(head) - 600)  # the objects around the stream take ~600 bytes
    line = b"% " + b"Kurier sample padding " * 3 + b"\n"
    length = len(head) + padding
    offsets.append(out.tell())
    out.write(f"4 0 obj\n<< /Length {length} >>\nstream\n".encode() + head)
    block = line * (_CHUNK // len(line))
    left = padding
    while left > len(block):
        out.write(block)
        left -= len(block)
    if left:
        out.write(block[: left - 1] + b"\n")  # end on a newline: the padding stays a comment
    out.write(b"\nendstream\nendobj\n")
    obj(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    xref = out.tell()
    out.write(f"xref\n0 {len(offsets) + 1}\n0000000000 65535 f \n".encode())
    for offset in offsets:
        out.write(f"{offset:010d} 00000 n \n".encode())
    out.write(f"trailer\n<< /Size {len(offsets) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode())


def write_sample_pdf(path: Path, size: int = 100_000, text: str = "Kurier sample document") -> Path:
    """Write a one-page PDF of about ``size`` bytes to ``path``, in chunks."""
    with path.open("wb") as out:
        _write(out, size, text)
    return path


def sample_pdf(size: int = 10_000, text: str = "Kurier sample document") -> bytes:
    """A one-page PDF of about ``size`` bytes."""
    import io

    buffer = io.BytesIO()
    _write(buffer, size, text)
    return buffer.getvalue()
