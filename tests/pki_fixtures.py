"""The test PKI for the signing tests: built once per session in a temporary folder, its services running.

Use it from a test module with ``pytest_plugins = ["tests.pki_fixtures"]``; then ask for ``pki``
(where each file is), ``pki_server`` (the TSA, OCSP and CRL services on 127.0.0.1), ``trust_roots``
(the root, parsed) and ``pki_key`` (a PKCS#12 key source of one of the PKI's signers).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from signing.certs import read_certificates
from signing.pkcs12 import Pkcs12Key
from signing.pki import PkiFiles, build_pki
from signing.pkiserver import PkiServer

PKI_EIKS = ("000695235", "121759222")


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PkiFiles:
    return build_pki(tmp_path_factory.mktemp("pki"), PKI_EIKS)


@pytest.fixture(scope="session")
def pki_server(pki: PkiFiles) -> Iterator[PkiServer]:
    with PkiServer(pki) as server:
        yield server


@pytest.fixture(scope="session")
def trust_roots(pki: PkiFiles) -> list:
    return read_certificates(pki.root)


@pytest.fixture(scope="session")
def pki_key(pki: PkiFiles) -> Callable[[str], Pkcs12Key]:
    """``pki_key("signer-000695235")``: that signer's key source (one per label, kept for the session)."""
    made: dict[str, Pkcs12Key] = {}

    def key(label: str) -> Pkcs12Key:
        if label not in made:
            made[label] = pki.signers[label].key()
        return made[label]

    return key

