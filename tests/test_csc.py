"""The CSC key source against real HTTP services on 127.0.0.1: Kurier's v2 test service, certomancer's v1 dummy."""

from __future__ import annotations

import asyncio
import hashlib
import io
from collections.abc import Iterator
from pathlib import Path

import pytest

from schemas.errors import ConfigError, Permanent, Transient
from signing.csc import CscKey, Settings
from signing.csc_testing import CscTestService
from signing.keys import load_key_type
from tests.hsm_fixtures import (
    CSC_PIN,
    CSC_TOKEN,
    CertomancerCscV1,
    HsmPki,
    minimal_pdf,
    pki,
    sign_pdf,
    tls_server,
    validate_pdf,
    verify,
)

__all__ = ["pki"]  # a fixture, imported for pytest

TOKEN_ENV, PIN_ENV = "KURIER_TEST_CSC_TOKEN", "KURIER_TEST_CSC_PIN"


@pytest.fixture(autouse=True)
def _secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TOKEN_ENV, CSC_TOKEN)
    monkeypatch.setenv(PIN_ENV, CSC_PIN)
    monkeypatch.setenv("KURIER_TEST_CSC_USER", "kurier")
    monkeypatch.setenv("KURIER_TEST_CSC_PASSWORD", "correct horse")


@pytest.fixture
def service(pki: HsmPki) -> Iterator[CscTestService]:
    with CscTestService(pki.signer_key, [pki.signer, pki.root], token=CSC_TOKEN, pin=CSC_PIN,
                        username="kurier", password="correct horse") as running:
        yield running


def _key(url: str, **overrides: object) -> CscKey:
    options: dict[str, object] = {"base_url": url, "version": 2, "credential_id": "kurier-test-signer",
                                  "token_env": TOKEN_ENV, "pin_env": PIN_ENV, "timeout": 5, **overrides}
    return CscKey("csc", Settings(**options))  # type: ignore[arg-type]


@pytest.fixture
def key(service: CscTestService) -> Iterator[CscKey]:
    k = _key(service.url)
    yield k
    k.close()


def test_the_key_type_table_finds_the_csc_key() -> None:
    assert load_key_type("csc") is CscKey


def test_settings_want_both_basic_credentials() -> None:
    with pytest.raises(ValueError, match="both username_env and password_env"):
        Settings(base_url="https://csc.example", username_env="U")


def test_v2_a_signed_pdf_validates_against_the_test_root(key: CscKey, service: CscTestService,
                                                         pki: HsmPki) -> None:
    # Given a v2 credential; When pyhanko signs a PDF through pdf_signer()
    signed = sign_pdf(key)
    # Then the signature is intact and trusted, from the credential's certificate; the chain came from the service
    validate_pdf(signed, pki.root)
    assert key.certificate().dump() == pki.signer.dump()
    assert [c.dump() for c in key.chain()] == [pki.root.dump()]
    assert service.calls["credentials/info"] == 1 and service.hashes_signed == [1]


def test_v2_three_hashes_go_in_one_sign_hash_call(key: CscKey, service: CscTestService, pki: HsmPki) -> None:
    digests = [hashlib.sha256(f"document {i}".encode()).digest() for i in range(3)]
    signatures = key.sign_hashes(digests)
    assert service.calls["signatures/signHash"] == 1 and service.calls["credentials/authorize"] == 1
    assert service.hashes_signed == [3]
    for digest, signature in zip(digests, signatures, strict=True):
        verify(pki.signer, signature, digest)


def test_v2_more_hashes_than_multisign_take_several_calls(pki: HsmPki) -> None:
    with CscTestService(pki.signer_key, [pki.signer, pki.root], token=CSC_TOKEN, pin=CSC_PIN,
                        multisign=2) as small:
        signatures = _key(small.url).sign_hashes([hashlib.sha256(bytes([i])).digest() for i in range(5)])
    assert small.hashes_signed == [2, 2, 1] and len(signatures) == 5


def test_v2_pdfs_signed_together_share_one_sign_hash_call(key: CscKey, service: CscTestService,
                                                          pki: HsmPki) -> None:
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.sign import signers

    signer = key.pdf_signer()
    outputs = [io.BytesIO() for _ in range(3)]

    async def sign_all() -> None:
        await asyncio.gather(*(
            signers.async_sign_pdf(IncrementalPdfFileWriter(io.BytesIO(minimal_pdf())),
                                   signers.PdfSignatureMetadata(field_name="Signature1"), signer=signer, output=out)
            for out in outputs))

    asyncio.run(sign_all())
    assert service.hashes_signed == [3]
    for out in outputs:
        validate_pdf(out.getvalue(), pki.root)


def test_v2_the_credential_is_found_by_listing_when_not_configured(service: CscTestService, pki: HsmPki) -> None:
    key = _key(service.url, credential_id=None)
    assert key.certificate().dump() == pki.signer.dump()
    assert service.calls["credentials/list"] == 1


def test_v2_basic_login_gets_a_token(service: CscTestService, pki: HsmPki) -> None:
    key = _key(service.url, token_env=None, username_env="KURIER_TEST_CSC_USER",
               password_env="KURIER_TEST_CSC_PASSWORD")
    verify(pki.signer, key.sign_raw(b"hello"), hashlib.sha256(b"hello").digest())
    assert service.calls["auth/login"] == 1


def test_v2_an_ec_credential_signs_der_ecdsa(pki: HsmPki) -> None:
    with CscTestService(pki.ec_signer_key, [pki.ec_signer, pki.root], token=CSC_TOKEN, pin=CSC_PIN) as ec_service:
        key = _key(ec_service.url)
        verify(pki.ec_signer, key.sign_raw(b"hello"), hashlib.sha256(b"hello").digest())
        validate_pdf(sign_pdf(key), pki.root)


def test_a_wrong_pin_is_permanent_with_the_services_words(service: CscTestService,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PIN_ENV, "999999")
    with pytest.raises(Permanent, match=r"credentials/authorize refused: HTTP 400 \(invalid_pin: The PIN is invalid\)"
                       ) as caught:
        _key(service.url).sign_raw(b"x")
    assert "999999" not in str(caught.value) and CSC_TOKEN not in str(caught.value)


def test_a_wrong_token_is_permanent(service: CscTestService, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TOKEN_ENV, "stale-token")
    with pytest.raises(Permanent, match="invalid_token") as caught:
        _key(service.url).certificate()
    assert "stale-token" not in str(caught.value)


def test_an_unknown_credential_is_permanent(service: CscTestService) -> None:
    with pytest.raises(Permanent, match="Invalid parameter credentialID"):
        _key(service.url, credential_id="nobody").certificate()


def test_a_missing_pin_variable_is_a_configuration_error(service: CscTestService) -> None:
    with pytest.raises(ConfigError, match="KURIER_TEST_NO_PIN is not set"):
        _key(service.url, pin_env="KURIER_TEST_NO_PIN").sign_raw(b"x")


def test_a_service_that_is_down_is_transient(key: CscKey, service: CscTestService) -> None:
    key.certificate()
    service.stop()
    with pytest.raises(Transient, match="the service does not answer"):
        key.sign_raw(b"x")
    with pytest.raises(Transient, match="the service does not answer"):
        sign_pdf(key)


@pytest.mark.parametrize("status", [503, 429])
def test_a_busy_service_is_transient(key: CscKey, service: CscTestService, status: int) -> None:
    key.certificate()
    service.fail_status = status
    with pytest.raises(Transient, match=rf"HTTP {status} \(temporarily_unavailable: simulated failure\)"):
        key.sign_hashes([hashlib.sha256(b"x").digest()])


# -- CSC v1, through certomancer's dummy service ------------------------------------------------------------


@pytest.fixture
def v1_service(pki: HsmPki) -> Iterator[CertomancerCscV1]:
    running = CertomancerCscV1(pki)
    yield running
    running.stop()


def _v1_key(service: CertomancerCscV1) -> CscKey:
    return _key(service.url, version=1, credential_id="kurier-hsm/signer", token_env=None, pin_env=None)


def test_v1_a_signed_pdf_validates_against_the_test_root(v1_service: CertomancerCscV1, pki: HsmPki) -> None:
    key = _v1_key(v1_service)
    validate_pdf(sign_pdf(key), pki.root)
    validate_pdf(sign_pdf(key), pki.root)  # the same signer object again, on a new event loop


def test_v1_sign_hashes_and_the_credential_list(v1_service: CertomancerCscV1, pki: HsmPki) -> None:
    key = _v1_key(v1_service)
    assert "kurier-hsm/signer" in key.client.list_credentials()
    digests = [hashlib.sha256(f"document {i}".encode()).digest() for i in range(3)]
    for digest, signature in zip(digests, key.sign_hashes(digests), strict=True):
        verify(pki.signer, signature, digest)


def test_v1_a_service_that_is_down_is_transient(v1_service: CertomancerCscV1) -> None:
    key = _v1_key(v1_service)
    signer = key.pdf_signer()
    v1_service.stop()
    assert key.pdf_signer() is signer
    with pytest.raises(Transient, match="does not answer"):
        sign_pdf(key)


def test_a_digest_of_the_wrong_length_is_refused_before_any_call(key: CscKey, service: CscTestService) -> None:
    with pytest.raises(ValueError, match="every sha256 digest is 32 bytes long"):
        key.sign_hashes([b"not a digest"])
    assert service.calls["signatures/signHash"] == 0


def test_an_expired_login_token_is_renewed_once(service: CscTestService, pki: HsmPki) -> None:
    key = _key(service.url, token_env=None, username_env="KURIER_TEST_CSC_USER",
               password_env="KURIER_TEST_CSC_PASSWORD")
    key.certificate()
    service.token = "a-new-token"  # the service forgot the old one
    verify(pki.signer, key.sign_raw(b"hello"), hashlib.sha256(b"hello").digest())
    assert service.calls["auth/login"] == 2


def test_the_bench_batches_hashes_per_call() -> None:
    from signing.csc_bench import csc_pades_rates

    rates = csc_pades_rates(minimal_pdf(), documents=4, batch=2)
    assert (rates.calls_per_document, rates.calls_batched) == (4, 2)
    assert rates.per_document > 0 and rates.batched > 0


def test_over_tls_the_service_is_trusted_through_ca_file(pki: HsmPki, tmp_path: Path) -> None:
    context, ca_file = tls_server(tmp_path)
    with CscTestService(pki.signer_key, [pki.signer, pki.root], token=CSC_TOKEN, pin=CSC_PIN, tls=context) as tls:
        assert tls.url.startswith("https://")
        key = _key(tls.url, ca_file=str(ca_file))
        verify(pki.signer, key.sign_raw(b"hello"), hashlib.sha256(b"hello").digest())
        validate_pdf(sign_pdf(key), pki.root)
        # Without the CA the certificate is not trusted: retrying cannot help, so it is permanent
        with pytest.raises(Permanent, match="TLS certificate is not trusted"):
            _key(tls.url).certificate()


def test_v1_over_tls_trusts_ca_file_too(pki: HsmPki, tmp_path: Path) -> None:
    context, ca_file = tls_server(tmp_path)
    v1 = CertomancerCscV1(pki, tls=context)
    try:
        key = _key(v1.url, version=1, credential_id="kurier-hsm/signer", token_env=None, pin_env=None,
                   ca_file=str(ca_file))
        validate_pdf(sign_pdf(key), pki.root)
    finally:
        v1.stop()
