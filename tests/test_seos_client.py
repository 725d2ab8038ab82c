"""Kurier calling a peer's SEOS endpoint over mutual TLS: answers, faults, and the peer being away."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from adapters.seos.client import ClientTls, SeosClient
from adapters.seos.endpoint import SeosEndpoint, SoapFault, SubmitCall, TlsFiles
from schemas.errors import Permanent, Transient
from tests.tls_fixtures import TlsSet, tls_set  # noqa: F401 (the fixture)

PEER = "121759222"


class Peer:
    def __init__(self) -> None:
        self.calls: list[SubmitCall] = []
        self.fault: str | None = None
        self.delay = threading.Event()

    def __call__(self, call: SubmitCall) -> bytes:
        self.calls.append(call)
        if self.fault:
            raise SoapFault(self.fault)
        if self.delay.is_set():
            threading.Event().wait(3)
        return "<Отговор>прието</Отговор>".encode() + call.message.read_bytes()


def _endpoint(tls_set: TlsSet, tmp_path: Path, peer: Peer, server: str = "server") -> SeosEndpoint:  # noqa: F811
    pair = tls_set.server if server == "server" else tls_set.stranger
    return SeosEndpoint("127.0.0.1", 0, TlsFiles(pair.certificate, pair.key, tls_set.ca), {PEER: "Пир"}, peer,
                        spool=tmp_path)


@pytest.fixture()
def peer(tls_set: TlsSet, tmp_path: Path) -> Iterator[tuple[SeosEndpoint, Peer]]:  # noqa: F811
    handler = Peer()
    server = _endpoint(tls_set, tmp_path, handler)
    server.start()
    try:
        yield server, handler
    finally:
        server.stop()


def _client(tls_set: TlsSet, timeout: float = 10.0) -> SeosClient:  # noqa: F811
    return SeosClient(ClientTls(tls_set.client.certificate, tls_set.client.key, tls_set.ca), timeout=timeout)


def test_kurier_submits_to_a_peer_and_reads_its_answer(peer: tuple[SeosEndpoint, Peer],
                                                        tls_set: TlsSet) -> None:  # noqa: F811
    server, handler = peer
    client = _client(tls_set)
    try:
        # When Kurier submits a message, Then it gets the peer's answer, and the peer saw Kurier's certificate
        answer = client.submit(server.url(PEER), "<Message>Писмо</Message>".encode())
        assert answer == "<Отговор>прието</Отговор><Message>Писмо</Message>".encode()
        assert handler.calls[0].peer_certificate == tls_set.client.der
    finally:
        client.close()


def test_a_soap_fault_is_final_with_the_peers_words(peer: tuple[SeosEndpoint, Peer],
                                                     tls_set: TlsSet) -> None:  # noqa: F811
    server, handler = peer
    handler.fault = "невалиден формат на съобщението"
    client = _client(tls_set)
    try:
        with pytest.raises(Permanent, match="SOAP fault: невалиден формат на съобщението"):
            client.submit(server.url(PEER), b"<Message/>")
    finally:
        client.close()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_peer_that_is_away_or_slow_is_worth_a_retry(peer: tuple[SeosEndpoint, Peer],
                                                       tls_set: TlsSet) -> None:  # noqa: F811
    server, handler = peer
    client = _client(tls_set, timeout=1.0)
    try:
        # nobody listening
        with pytest.raises(Transient, match="is unreachable"):
            client.submit(f"https://127.0.0.1:{_closed_port()}/seos/{PEER}", b"<Message/>")
        # listening, but not answering in time
        handler.delay.set()
        with pytest.raises(Transient, match="is unreachable"):
            client.submit(server.url(PEER), b"<Message/>")
    finally:
        client.close()


def test_a_peer_whose_certificate_is_not_trusted_is_not_sent_anything(
        tls_set: TlsSet, tmp_path: Path) -> None:  # noqa: F811
    handler = Peer()
    server = _endpoint(tls_set, tmp_path, handler, server="stranger")
    server.start()
    client = _client(tls_set)
    try:
        with pytest.raises(Transient, match="TLS failed"):
            client.submit(server.url(PEER), b"<Message>secret</Message>")
        assert handler.calls == []
    finally:
        client.close()
        server.stop()
