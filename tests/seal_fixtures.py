"""Fixtures of the sealed journal's tests: a journal with evidence rows, a test TSA on 127.0.0.1, tampering."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from asn1crypto import keys, tsp, x509
from cryptography import x509 as cx509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from pyhanko.sign.timestamps.dummy_client import DummyTimeStamper
from sqlalchemy import Engine, delete, func, insert, select, update

from router.journal import Journal, StageEvent
from router.journal.seal import block_head
from router.journal.tables import events, journal_seals, status_changes, wire_messages
from tests.helpers import envelope

__all__ = ["LocalCa", "LocalTsa", "add_documents", "event_ids", "insert_event", "make_ca", "rechain_from", "start_tsa",
           "wipe_seals"]


def wipe_seals(journal: Journal) -> None:
    """The shared test databases keep tables between tests (conftest empties the others)."""
    with journal.engine.begin() as conn:
        conn.execute(delete(journal_seals))
        conn.execute(delete(wire_messages))


def add_documents(journal: Journal, count: int) -> None:
    """``count`` documents through the journal's own intake: a status row and a stage event each."""
    envs = [envelope(subject=f"Заповед № {i}") for i in range(count)]
    journal.accept(envs, [StageEvent("receive", "ok", detail="прието")])


def event_ids(engine: Engine) -> list[int]:
    with engine.connect() as conn:
        return [int(i) for i in conn.execute(select(events.c.id).order_by(events.c.id)).scalars()]


def insert_event(engine: Engine, row_id: int | None = None, at: datetime | None = None) -> None:
    values: dict[str, Any] = {"envelope_id": "x" * 32, "at": at or datetime.now(UTC), "stage": "deliver",
                              "outcome": "ok", "actor": "intruder", "detail": "подправено"}
    if row_id is not None:
        values["id"] = row_id
    with engine.begin() as conn:
        conn.execute(insert(events).values(**values))


def rechain_from(engine: Engine, block: int) -> None:
    """What an intruder who can write the seal table does after changing a row: recompute every row
    hash and head from ``block`` on, so that the chain agrees with the changed journal again."""
    from router.journal.canonical import EVIDENCE, row_hash

    with engine.begin() as conn:
        prev = conn.execute(select(journal_seals.c.head).where(journal_seals.c.block == block - 1)).scalar()
        for b in conn.execute(select(journal_seals).where(journal_seals.c.block >= block)
                              .order_by(journal_seals.c.block)).all():
            meta = json.loads(b.meta)
            blob = b""
            for ev in EVIDENCE:
                for lo, hi in meta["rows"].get(ev.name, []):
                    rows = conn.execute(select(*ev.columns).where(ev.key >= lo, ev.key <= hi).order_by(ev.key)).all()
                    blob += b"".join(row_hash(ev, r) for r in rows)
            prev_head = prev or "0" * 64
            head = block_head(prev_head, b.meta.encode(), blob)
            conn.execute(update(journal_seals).where(journal_seals.c.block == b.block)
                         .values(prev_head=prev_head, head=head, row_hashes=blob))
            prev = head


@dataclass
class LocalCa:
    cert_pem: Path
    cert: cx509.Certificate
    key: rsa.RSAPrivateKey


def _name(cn: str) -> cx509.Name:
    return cx509.Name([cx509.NameAttribute(NameOID.COUNTRY_NAME, "BG"),
                       cx509.NameAttribute(NameOID.ORGANIZATION_NAME, "Kurier test PKI"),
                       cx509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_ca(folder: Path, cn: str = "Kurier Test Root CA") -> LocalCa:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = datetime.now(UTC)
    cert = (cx509.CertificateBuilder().subject_name(_name(cn)).issuer_name(_name(cn)).public_key(key.public_key())
            .serial_number(cx509.random_serial_number()).not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=365))
            .add_extension(cx509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(cx509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                          data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                          crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .sign(key, hashes.SHA256()))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{cn.replace(' ', '-').lower()}.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return LocalCa(path, cert, key)


def _tsa_stamper(ca: LocalCa) -> DummyTimeStamper:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = datetime.now(UTC)
    cert = (cx509.CertificateBuilder().subject_name(_name("Kurier Test TSA")).issuer_name(ca.cert.subject)
            .public_key(key.public_key()).serial_number(cx509.random_serial_number())
            .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=365))
            .add_extension(cx509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), critical=True)
            .add_extension(cx509.KeyUsage(digital_signature=True, content_commitment=True, key_encipherment=False,
                                          data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                          crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
            .sign(ca.key, hashes.SHA256()))
    der_key = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return DummyTimeStamper(tsa_cert=x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER)),
                            tsa_key=keys.PrivateKeyInfo.load(der_key))


@dataclass
class LocalTsa:
    url: str
    requests: int = 0


@contextmanager
def start_tsa(ca: LocalCa) -> Iterator[LocalTsa]:
    """An RFC 3161 service over HTTP on 127.0.0.1 (pyhanko's DummyTimeStamper signs), for as long as the test."""
    stamper = _tsa_stamper(ca)
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            with lock:  # asn1crypto objects are not thread-safe
                response = stamper.request_tsa_response(tsp.TimeStampReq.load(body)).dump()
                tsa.requests += 1
            self.send_response(200)
            self.send_header("Content-Type", "application/timestamp-reply")
            self.send_header("Content-Length", str(len(response)))
            self.end_headers()
            self.wfile.write(response)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    tsa = LocalTsa(f"http://127.0.0.1:{server.server_address[1]}/tsa")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield tsa
    finally:
        server.shutdown()
        server.server_close()


def sealed_rows(journal: Journal) -> int:
    """How many evidence rows the journal's seal blocks cover."""
    with journal.engine.connect() as conn:
        return int(conn.execute(select(func.coalesce(func.sum(journal_seals.c.row_count), 0))).scalar() or 0)


def all_sealed(journal: Journal) -> bool:
    """Whether every evidence row (stage events, statuses) is in a seal block."""
    with journal.engine.connect() as conn:
        rows = sum(conn.execute(select(func.count()).select_from(t)).scalar() or 0
                   for t in (events, status_changes, wire_messages))
    return sealed_rows(journal) == rows

@pytest.fixture
def sealed_journal(journal_url: str) -> Iterator[Journal]:
    """The journal on each database, migrated, its seal blocks and SEOS messages emptied."""
    j = Journal(journal_url)
    j.upgrade()
    wipe_seals(j)
    yield j
    j.dispose()
