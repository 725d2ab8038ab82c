"""``kurier bench --sign``: PAdES B-B signing rate next to pyhanko's plain ``sign_pdf``, and memory on a big PDF.

Same run, same 100 KB document, same key (a fresh test PKI's RSA-2048 signer):

- plain: ``signers.sign_pdf`` with a ``SimpleSigner`` loaded once, pyhanko's defaults (a trial
  signature to size the CMS, the key parsed again for each signature, the CMS built from scratch);
- Kurier: :class:`signing.pades.PadesSigner` over the PKCS#12 key source, one object for the run;
- all cores: one Kurier signer per process, one process per core, the rates added up;
- memory: a PDF of ``big_mb`` MB generated on disk and signed file to file in a fresh process; its
  peak RSS (``ru_maxrss``) and what the same process held before signing.
"""

from __future__ import annotations

import contextlib
import io
import multiprocessing
import os
import resource
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from signing.csc_bench import CscRates
    from signing.pkcs12 import Pkcs12Key
    from signing.pki import SignerFiles

__all__ = ["SignBench", "report_sign", "run_sign_bench"]

DOC_SIZE = 100_000
EIK = "000695235"
LABEL = f"signer-{EIK}"


@dataclass(frozen=True)
class SignBench:
    kurier: float  # documents/s, one process
    plain: float  # documents/s, pyhanko sign_pdf + SimpleSigner, same process and run
    processes: int
    all_cores: float  # documents/s over all processes
    big_mb: int
    rss_before_mb: float  # the signing process after imports and generating the big PDF
    rss_peak_mb: float  # ... and its peak while signing it file to file
    csc: CscRates | None = None  # through a CSC v2 service on 127.0.0.1: one call per document vs batched

    @property
    def ratio(self) -> float:
        return self.kurier / self.plain if self.plain else 0.0


def _rate(step: Callable[[], object], seconds: float) -> float:
    step()  # warm: imports, the first (pyhanko-made) CMS, caches
    done, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds or done < 3:
        step()
        done += 1
    return done / elapsed


def _key(pki_dir: Path) -> tuple[SignerFiles, Pkcs12Key]:
    from signing.pki import load_pki

    files = load_pki(pki_dir).signers[LABEL]
    return files, files.key()


def kurier_rate(pki_dir: Path, seconds: float) -> float:
    from signing.pades import PadesSigner
    from signing.samplepdf import sample_pdf

    document = sample_pdf(DOC_SIZE)
    signer = PadesSigner(_key(pki_dir)[1])
    return _rate(lambda: signer.sign_bytes(document), seconds)


def plain_rate(pki_dir: Path, seconds: float) -> float:
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.sign import signers

    from signing.samplepdf import sample_pdf

    document = sample_pdf(DOC_SIZE)
    files, _ = _key(pki_dir)
    simple = signers.SimpleSigner.load_pkcs12(str(files.pkcs12), passphrase=files.password())
    meta = signers.PdfSignatureMetadata(field_name="Signature1")
    return _rate(lambda: signers.sign_pdf(IncrementalPdfFileWriter(io.BytesIO(document)), meta, signer=simple),
                 seconds)


def _memory_mb(field: str) -> float:
    """VmRSS (now) or VmHWM (peak) of this process, MiB; ru_maxrss where /proc is not there.

    Not ru_maxrss on Linux: it survives execve, so a spawned child would report its parent's peak.
    """
    try:
        for line in Path("/proc/self/status").read_text(encoding="ascii").splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def big_file_rss(pki_dir: Path, big_mb: int, folder: str) -> tuple[float, float]:
    """In a fresh process: (MiB resident before signing, peak MiB) for a ``big_mb`` MB PDF signed file to file."""
    from signing.pades import PadesSigner
    from signing.samplepdf import write_sample_pdf

    source = write_sample_pdf(Path(folder) / "big.pdf", big_mb * 1_000_000)
    signer = PadesSigner(_key(pki_dir)[1])
    before = _memory_mb("VmRSS")
    with contextlib.suppress(OSError):  # Linux: start the peak (VmHWM) from here, so it is the signing's peak
        Path("/proc/self/clear_refs").write_text("5", encoding="ascii")
    signer.sign_file(source, Path(folder) / "big-signed.pdf")
    return before, max(_memory_mb("VmHWM"), before)


def run_sign_bench(seconds: float = 5.0, big_mb: int = 100, processes: int | None = None) -> SignBench:
    from signing.pki import build_pki

    processes = processes or os.cpu_count() or 1
    spawn = multiprocessing.get_context("spawn")  # fresh interpreters: no inherited heap in the RSS figure
    with tempfile.TemporaryDirectory(prefix="kurier-bench-sign-") as tmp:
        pki_dir = Path(tmp) / "pki"
        build_pki(pki_dir, [EIK])
        plain = plain_rate(pki_dir, seconds)
        kurier = kurier_rate(pki_dir, seconds)
        with spawn.Pool(processes) as pool:
            all_cores = sum(pool.starmap(kurier_rate, [(pki_dir, seconds)] * processes))
        with spawn.Pool(1) as pool:
            before, peak = pool.apply(big_file_rss, (pki_dir, big_mb, tmp))
        from signing.csc_bench import csc_pades_rates
        from signing.samplepdf import write_sample_pdf

        pdf = write_sample_pdf(Path(tmp) / "csc.pdf", DOC_SIZE).read_bytes()
        csc = csc_pades_rates(pdf, documents=40, batch=10)
    return SignBench(kurier=kurier, plain=plain, processes=processes, all_cores=all_cores, big_mb=big_mb,
                     rss_before_mb=before, rss_peak_mb=peak, csc=csc)


def report_sign(console: Console, result: SignBench) -> None:
    table = Table(title=f"PAdES B-B signing, {DOC_SIZE // 1000} KB PDF, RSA-2048 (test PKI)")
    table.add_column("what")
    table.add_column("documents/s", justify="right")
    table.add_row("pyhanko sign_pdf + SimpleSigner (plain)", f"{result.plain:,.1f}")
    table.add_row("Kurier PadesSigner, one process", f"{result.kurier:,.1f}")
    table.add_row("ratio Kurier / plain", f"{result.ratio:,.1f}×")
    table.add_row(f"Kurier, one process per core ({result.processes})", f"{result.all_cores:,.1f}")
    if result.csc is not None:
        c = result.csc
        table.add_row(f"CSC v2 remote signer, one signHash call per document ({c.calls_per_document} calls)",
                      f"{c.per_document:,.1f}")
        table.add_row(f"CSC v2 remote signer, {c.batch} hashes per call ({c.calls_batched} calls)", f"{c.batched:,.1f}")
    console.print(table)
    console.print(f"{result.big_mb} MB PDF signed file to file: peak RSS {result.rss_peak_mb:,.0f} MiB "
                  f"(the process held {result.rss_before_mb:,.0f} MiB before signing)", soft_wrap=True)
