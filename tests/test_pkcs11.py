"""The PKCS#11 key source, through a real SoftHSM2 token: PDFs and hashes signed by the token verify."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import pytest

from schemas.errors import ConfigError, Permanent, Transient
from signing.keys import load_key_type
from signing.pkcs11 import Pkcs11Key, Settings
from tests.hsm_fixtures import PIN_ENV, TOKEN_LABEL, HsmPki, pki, sign_pdf, softhsm, validate_pdf, verify

__all__ = ["pki", "softhsm"]  # fixtures, imported for pytest


def _key(module: str, **overrides: object) -> Pkcs11Key:
    options: dict[str, object] = {"module": module, "token_label": TOKEN_LABEL, "key_label": "signer",
                                  "pin_env": PIN_ENV, **overrides}
    return Pkcs11Key("hsm", Settings(**options))  # type: ignore[arg-type]


@pytest.fixture
def key(softhsm: str) -> Iterator[Pkcs11Key]:
    k = _key(softhsm)
    yield k
    k.close()


def test_the_key_type_table_finds_the_pkcs11_key() -> None:
    assert load_key_type("pkcs11") is Pkcs11Key


def test_settings_need_a_key_name() -> None:
    with pytest.raises(ValueError, match="key_label or key_id"):
        Settings(token_label="t")


def test_a_pdf_signed_through_softhsm_validates_against_the_test_root(key: Pkcs11Key, pki: HsmPki) -> None:
    # Given a key on the token; When pyhanko signs a PDF with the key's pdf_signer()
    signed = sign_pdf(key)
    # Then pyhanko's validator finds the signature intact and trusted, by the token's certificate
    validate_pdf(signed, pki.root)
    assert key.certificate().dump() == pki.signer.dump()
    assert key.pdf_signer() is key.pdf_signer()  # made once and kept


def test_sign_hashes_signs_each_digest_with_the_token_key(key: Pkcs11Key, pki: HsmPki) -> None:
    digests = [hashlib.sha256(f"document {i}".encode()).digest() for i in range(3)]
    signatures = key.sign_hashes(digests)
    assert len(signatures) == 3
    for digest, signature in zip(digests, signatures, strict=True):
        verify(pki.signer, signature, digest)


def test_sign_raw_hashes_locally_and_verifies(key: Pkcs11Key, pki: HsmPki) -> None:
    data = b"<SignedInfo>...</SignedInfo>"
    verify(pki.signer, key.sign_raw(data), hashlib.sha256(data).digest())


def test_an_ec_key_by_id_signs_der_ecdsa(softhsm: str, pki: HsmPki) -> None:
    key = _key(softhsm, key_label=None, key_id="02")
    try:
        data = b"ecdsa over a precomputed hash"
        verify(pki.ec_signer, key.sign_raw(data), hashlib.sha256(data).digest())
        assert key.certificate().dump() == pki.ec_signer.dump()
        validate_pdf(sign_pdf(key), pki.root)
    finally:
        key.close()


def test_a_wrong_pin_is_permanent_and_says_so_without_the_pin(softhsm: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KURIER_TEST_WRONG_PIN", "9999-wrong")
    key = _key(softhsm, pin_env="KURIER_TEST_WRONG_PIN")
    with pytest.raises(Permanent, match="refused the PIN from KURIER_TEST_WRONG_PIN") as caught:
        key.certificate()
    assert "9999-wrong" not in str(caught.value)
    assert caught.value.code == "hsm-wrong-pin"


def test_a_missing_pin_variable_is_a_configuration_error(softhsm: str) -> None:
    with pytest.raises(ConfigError, match="KURIER_TEST_NO_SUCH_VARIABLE is not set"):
        _key(softhsm, pin_env="KURIER_TEST_NO_SUCH_VARIABLE").certificate()


def test_a_token_that_is_not_there_is_permanent(softhsm: str) -> None:
    with pytest.raises(Permanent, match="no token labelled 'no-such-token' is present"):
        _key(softhsm, token_label="no-such-token").sign_raw(b"x")


def test_a_key_that_is_not_on_the_token_is_permanent(softhsm: str) -> None:
    with pytest.raises(Permanent, match="no private key with label 'nobody'"):
        _key(softhsm, key_label="nobody").sign_raw(b"x")


def test_a_lost_session_is_transient_and_the_next_try_reopens_it(key: Pkcs11Key, pki: HsmPki) -> None:
    # Given a key whose session was closed under it (the HSM restarted, the token was pulled)
    key.certificate()
    key._session.close()
    # When it signs, Then the failure is transient...
    with pytest.raises(Transient, match="session was lost"):
        key.sign_raw(b"first try")
    # ...and the next try opens a new session and signs
    verify(pki.signer, key.sign_raw(b"second try"), hashlib.sha256(b"second try").digest())
