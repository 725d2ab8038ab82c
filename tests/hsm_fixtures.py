"""Fixtures for the PKCS#11 and CSC key sources: a small certomancer PKI, a SoftHSM2 token, CSC services.

The PKI is this module's own (a root and one RSA signer), so these tests depend on no other part of the
project's test PKI. Keys are generated with ``cryptography``; certomancer issues the certificates, and
the same key and certificate go into the SoftHSM2 token, the CSC v2 test service and certomancer's
CSC v1 dummy service.
"""

from __future__ import annotations

import asyncio
import io
import ipaddress
import os
import shutil
import ssl
import subprocess
import threading
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from asn1crypto import keys as asn1_keys
from asn1crypto import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from cryptography.x509 import load_der_x509_certificate

SOFTHSM_MODULE = "/usr/lib/softhsm/libsofthsm2.so"
TOKEN_LABEL = "kurier-test"
USER_PIN = "4711-test"
SO_PIN = "0000-so"
PIN_ENV = "KURIER_TEST_HSM_PIN"
CSC_TOKEN = "csc-test-bearer-token"
CSC_PIN = "246810"

_VALIDITY = {"valid-from": "2020-01-01T00:00:00+0000", "valid-to": "2100-01-01T00:00:00+0000"}


@dataclass(frozen=True)
class HsmPki:
    root: x509.Certificate
    signer: x509.Certificate  # RSA-2048
    signer_key: PrivateKeyTypes
    ec_signer: x509.Certificate  # ECDSA P-256
    ec_signer_key: PrivateKeyTypes
    certomancer_config: object  # certomancer.registry.CertomancerConfig, for the CSC v1 dummy


def _write_key(path: Path, key: PrivateKeyTypes) -> None:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))


def _signer_cert(subject: str) -> dict[str, object]:
    return {
        "subject": subject, "issuer": "root", "validity": _VALIDITY,
        "extensions": [{"id": "key_usage", "critical": True,
                        "smart-value": {"schema": "key-usage", "params": ["digital_signature", "non_repudiation"]}}],
    }


def make_pki(directory: Path) -> HsmPki:
    from certomancer.registry import ArchLabel, CertLabel, CertomancerConfig

    generated: dict[str, PrivateKeyTypes] = {
        "root": rsa.generate_private_key(public_exponent=65537, key_size=2048),
        "signer": rsa.generate_private_key(public_exponent=65537, key_size=2048),
        "ecsigner": ec.generate_private_key(ec.SECP256R1()),
    }
    for label, key in generated.items():
        _write_key(directory / f"{label}.key.pem", key)
    config = {
        "keysets": {"kurier-hsm": {"keys": {label: {"path": f"{label}.key.pem"} for label in generated}}},
        "pki-architectures": {"kurier-hsm": {
            "keyset": "kurier-hsm",
            "entity-defaults": {"country-name": "BG", "organization-name": "Kurier HSM tests"},
            "entities": {"root": {"common-name": "Kurier HSM test root"},
                         "signer": {"common-name": "Kurier HSM test signer"},
                         "ecsigner": {"common-name": "Kurier HSM test EC signer"}},
            "certs": {
                "root": {"subject": "root", "issuer": "root", "validity": _VALIDITY, "profiles": ["simple-ca"]},
                "signer": _signer_cert("signer"),
                "ecsigner": _signer_cert("ecsigner"),
            },
        }},
    }
    cfg = CertomancerConfig(config, key_search_dir=str(directory))
    arch = cfg.get_pki_arch(ArchLabel("kurier-hsm"))
    return HsmPki(root=arch.get_cert(CertLabel("root")), signer=arch.get_cert(CertLabel("signer")),
                   signer_key=generated["signer"], ec_signer=arch.get_cert(CertLabel("ecsigner")),
                   ec_signer_key=generated["ecsigner"], certomancer_config=cfg)


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> HsmPki:
    return make_pki(tmp_path_factory.mktemp("hsm-pki"))


# -- SoftHSM2 --------------------------------------------------------------------------------------------------


def _import_key(session: object, key: PrivateKeyTypes, cert: x509.Certificate, label: str, key_id: bytes) -> None:
    from pkcs11 import Attribute, CertificateType, ObjectClass
    from pkcs11.util.ec import decode_ec_private_key
    from pkcs11.util.rsa import decode_rsa_private_key

    der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.TraditionalOpenSSL,
                            serialization.NoEncryption())
    if isinstance(key, rsa.RSAPrivateKey):
        attrs = decode_rsa_private_key(der)
    else:
        attrs = decode_ec_private_key(der)
        # decode_ec_private_key leaves out the curve: SoftHSM2 needs it to sign.
        attrs[Attribute.EC_PARAMS] = asn1_keys.ECDomainParameters({"named": "secp256r1"}).dump()
    attrs.update({Attribute.TOKEN: True, Attribute.PRIVATE: True, Attribute.SENSITIVE: True,
                  Attribute.SIGN: True, Attribute.LABEL: label, Attribute.ID: key_id})
    session.create_object(attrs)  # type: ignore[attr-defined]
    session.create_object({  # type: ignore[attr-defined]
        Attribute.CLASS: ObjectClass.CERTIFICATE, Attribute.CERTIFICATE_TYPE: CertificateType.X_509,
        Attribute.TOKEN: True, Attribute.LABEL: label, Attribute.ID: key_id,
        Attribute.SUBJECT: cert.subject.dump(), Attribute.VALUE: cert.dump(),
    })


@pytest.fixture(scope="session")
def softhsm(tmp_path_factory: pytest.TempPathFactory, pki: HsmPki) -> Iterator[str]:
    """A SoftHSM2 token (TOKEN_LABEL) holding the RSA signer ("signer", id 01) and the EC one ("ecsigner", 02).

    SoftHSM2 reads SOFTHSM2_CONF when the module is first initialised in the process, so this is set for
    the whole session. Yields the PKCS#11 module path.
    """
    if not Path(SOFTHSM_MODULE).exists() or shutil.which("softhsm2-util") is None:
        if os.environ.get("CI"):
            pytest.fail("SoftHSM2 is not installed: .ci/run installs Debian's softhsm2")
        pytest.skip("SoftHSM2 is not installed (apt-get install softhsm2)")
    import pkcs11

    base = tmp_path_factory.mktemp("softhsm")
    (base / "tokens").mkdir()
    conf = base / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {base / 'tokens'}\nobjectstore.backend = file\nlog.level = ERROR\n")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SOFTHSM2_CONF", str(conf))
        mp.setenv(PIN_ENV, USER_PIN)
        subprocess.run(["softhsm2-util", "--init-token", "--free", "--label", TOKEN_LABEL,
                        "--pin", USER_PIN, "--so-pin", SO_PIN], check=True, capture_output=True)
        token = pkcs11.lib(SOFTHSM_MODULE).get_token(token_label=TOKEN_LABEL)
        with token.open(rw=True, user_pin=USER_PIN) as session:
            _import_key(session, pki.signer_key, pki.signer, "signer", b"\x01")
            _import_key(session, pki.ec_signer_key, pki.ec_signer, "ecsigner", b"\x02")
        yield SOFTHSM_MODULE


# -- CSC services ----------------------------------------------------------------------------------------------


class CertomancerCscV1:
    """certomancer-csc-dummy (CSC v1) on 127.0.0.1 in a thread of its own, on its own event loop."""

    def __init__(self, pki: HsmPki, tls: ssl.SSLContext | None = None) -> None:
        from aiohttp import web
        from csc_dummy.csc_dummy_server import CSCWithCertomancer, DummyServiceParams

        with warnings.catch_warnings():  # it keys its aiohttp app by strings, which aiohttp now warns of
            warnings.simplefilter("ignore", web.NotAppKeyWarning)
            self._csc = CSCWithCertomancer(pki.certomancer_config,  # type: ignore[arg-type]
                                           service_params=DummyServiceParams(hash_pinning_required=True))
        self._csc.register_routes()
        self._tls = tls
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self.port = 0
        self._thread = threading.Thread(target=self._run, name="csc-v1-dummy", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the CSC v1 dummy service did not start")

    def _run(self) -> None:
        from aiohttp import web

        asyncio.set_event_loop(self._loop)
        self._runner = web.AppRunner(self._csc.app, access_log=None)
        self._loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=self._tls)
        self._loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self._ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(self._runner.cleanup())
        self._loop.close()

    @property
    def url(self) -> str:
        return f"{'https' if self._tls else 'http'}://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)


def minimal_pdf() -> bytes:
    """A one-page PDF, written by pyhanko."""
    from pyhanko.pdf_utils import generic
    from pyhanko.pdf_utils.writer import PdfFileWriter

    writer = PdfFileWriter()
    page = generic.DictionaryObject({
        generic.pdf_name("/Type"): generic.pdf_name("/Page"),
        generic.pdf_name("/MediaBox"): generic.ArrayObject([generic.NumberObject(n) for n in (0, 0, 595, 842)]),
    })
    writer.insert_page(page)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def verify(cert: x509.Certificate, signature: bytes, digest: bytes) -> None:
    """Raises InvalidSignature unless ``signature`` is the certificate key's signature of the SHA-256 ``digest``."""
    public = load_der_x509_certificate(cert.dump()).public_key()
    if isinstance(public, ec.EllipticCurvePublicKey):
        public.verify(signature, digest, ec.ECDSA(Prehashed(hashes.SHA256())))
    else:
        public.verify(signature, digest, padding.PKCS1v15(), Prehashed(hashes.SHA256()))  # type: ignore[union-attr]


def validate_pdf(signed: bytes, root: x509.Certificate) -> None:
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign.validation import validate_pdf_signature
    from pyhanko_certvalidator import ValidationContext

    reader = PdfFileReader(io.BytesIO(signed))
    (embedded,) = reader.embedded_signatures
    status = validate_pdf_signature(embedded, ValidationContext(trust_roots=[root], allow_fetching=False,
                                                                revocation_mode="soft-fail"))
    assert status.intact and status.valid and status.trusted, status.pretty_print_details()


def sign_pdf(key: object) -> bytes:
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.sign import signers

    out = io.BytesIO()
    signers.sign_pdf(IncrementalPdfFileWriter(io.BytesIO(minimal_pdf())),
                     signers.PdfSignatureMetadata(field_name="Signature1"),
                     signer=key.pdf_signer(), output=out)  # type: ignore[attr-defined]
    return out.getvalue()


def tls_server(directory: Path) -> tuple[ssl.SSLContext, Path]:
    """A server-side TLS context for 127.0.0.1 (a self-signed certificate), and that certificate's PEM file."""
    from cryptography import x509 as c_x509
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = c_x509.Name([c_x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    cert = (c_x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(c_x509.random_serial_number()).not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=1))
            .add_extension(c_x509.SubjectAlternativeName([c_x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(c_x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = directory / "tls.pem", directory / "tls.key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _write_key(key_file, key)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    return context, cert_file
