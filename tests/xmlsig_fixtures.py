"""A small test PKI for the XML and CMS signature tests: a root, an intermediate, signers under them.

Built with ``cryptography`` once per test session (RSA-2048 keys, a fraction of a second each). The
signers carry their EIK as Bulgarian QES certificates do (``organizationIdentifier = NTRBG-<EIK>``).
Besides the good signer: one whose certificate has expired, one under a root nobody trusts, and an
ECDSA one. Files (PEM) are written for the command-line tools (xmlsec1, openssl).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from lxml import etree

from signing.rawkey import LocalKey

if TYPE_CHECKING:
    from pyhanko.sign.signers import Signer as PdfSigner

EIK = "000695089"  # a valid 9-digit EIK (check digit 9)

def _seos_schemas() -> Path:
    """The official SEOS schemas: read where they are, never copied into the repository.

    ``$KURIER_SEOS_SCHEMAS``, else ``shared/seos`` beside the checkout, else this workplace's copy (a clean
    clone that CI makes elsewhere has no ``shared`` beside it).
    """
    candidates = [Path(p) for p in [os.environ.get("KURIER_SEOS_SCHEMAS")] if p]
    candidates += [Path(__file__).resolve().parents[2] / "shared" / "seos", Path("/work/shared/seos")]
    return next((c for c in candidates if (c / "EGovMessaging.xsd").is_file()), candidates[0])


SEOS_XSD_DIR = _seos_schemas()

_NOW = datetime.now(UTC)
CRL_URL = "http://127.0.0.1:9/kurier-test-issuing-ca.crl"


def _name(cn: str, eik: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COUNTRY_NAME, "BG"),
             x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Община Тест")]
    if eik:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_IDENTIFIER, f"NTRBG-{eik}"))
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
    return x509.Name(attrs)


def _cert(subject: x509.Name, key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey,
          issuer: x509.Name, issuer_key: rsa.RSAPrivateKey, *, ca: bool,
          not_before: datetime | None = None, not_after: datetime | None = None) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or _NOW - timedelta(days=1))
        .not_valid_after(not_after or _NOW + timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False)
    )
    if ca:
        builder = builder.add_extension(x509.KeyUsage(
            digital_signature=False, content_commitment=False, key_encipherment=False, data_encipherment=False,
            key_agreement=False, key_cert_sign=True, crl_sign=True, encipher_only=False, decipher_only=False,
        ), critical=True)
    else:
        builder = builder.add_extension(x509.KeyUsage(
            digital_signature=True, content_commitment=True, key_encipherment=False, data_encipherment=False,
            key_agreement=False, key_cert_sign=False, crl_sign=False, encipher_only=False, decipher_only=False,
        ), critical=True).add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION, ExtendedKeyUsageOID.CLIENT_AUTH]),
            critical=False,
        ).add_extension(  # never fetched (validation has no network): the CRL is handed to the verifier
            x509.CRLDistributionPoints([x509.DistributionPoint(
                [x509.UniformResourceIdentifier(CRL_URL)], relative_name=None, reasons=None, crl_issuer=None)]),
            critical=False,
        )
    return builder.sign(issuer_key, hashes.SHA256())


def _asn1(cert: x509.Certificate) -> asn1_x509.Certificate:
    return asn1_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER))


def _pem(*certs: x509.Certificate) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


@dataclass(frozen=True)
class SignerPki:
    dir: Path
    root: asn1_x509.Certificate
    other_root: asn1_x509.Certificate
    ca_pem: Path  # the trusted root, for xmlsec1 --trusted-pem and openssl -CAfile
    intermediate_pem: Path
    signer_pem: Path  # the RSA signer's certificate and (unencrypted) key, for openssl to sign with
    signer_key_pem: Path
    signer: LocalKey  # RSA, under root → intermediate, with EIK
    ec_signer: LocalKey  # ECDSA P-256, same chain
    expired: LocalKey  # chain fine, its own certificate expired yesterday
    untrusted: LocalKey  # under a root that is not a trust anchor
    revoked: LocalKey  # chain fine, revoked an hour ago in `crl`
    crl: bytes  # DER, from the issuing CA: lists `revoked`


def build_pki(directory: Path) -> SignerPki:
    def rsa_key() -> rsa.RSAPrivateKey:
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)

    root_key, inter_key, other_key = rsa_key(), rsa_key(), rsa_key()
    root_name, inter_name, other_name = (_name("Kurier Test Root CA"), _name("Kurier Test Issuing CA"),
                                         _name("Somebody Else's Root CA"))
    root = _cert(root_name, root_key, root_name, root_key, ca=True, not_after=_NOW + timedelta(days=3650))
    inter = _cert(inter_name, inter_key, root_name, root_key, ca=True, not_after=_NOW + timedelta(days=1825))
    other = _cert(other_name, other_key, other_name, other_key, ca=True)

    def signer(name: str, key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey, *, issuer: x509.Certificate,
               issuer_key: rsa.RSAPrivateKey, **validity: datetime) -> LocalKey:
        cert = _cert(_name(name, EIK), key, issuer.subject, issuer_key, ca=False, **validity)
        chain = [_asn1(issuer)] if issuer is inter else []
        return LocalKey(name, key, _asn1(cert), chain)

    revoked = signer("Отменен Подписващ", rsa_key(), issuer=inter, issuer_key=inter_key)
    crl = (
        x509.CertificateRevocationListBuilder().issuer_name(inter.subject)
        .last_update(_NOW - timedelta(hours=2)).next_update(_NOW + timedelta(days=7))
        .add_revoked_certificate(x509.RevokedCertificateBuilder().serial_number(revoked.certificate().serial_number)
                                 .revocation_date(_NOW - timedelta(hours=1)).build())
        .add_extension(x509.CRLNumber(1), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(inter_key.public_key()), critical=False)
        .sign(inter_key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "ca.pem").write_bytes(_pem(root))
    (directory / "intermediate.pem").write_bytes(_pem(inter))
    signer_key = rsa_key()
    main = signer("Иван Петров", signer_key, issuer=inter, issuer_key=inter_key)
    (directory / "signer.pem").write_bytes(x509.load_der_x509_certificate(main.certificate().dump()).public_bytes(
        serialization.Encoding.PEM))
    (directory / "signer.key").write_bytes(signer_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return SignerPki(
        dir=directory, root=_asn1(root), other_root=_asn1(other),
        ca_pem=directory / "ca.pem", intermediate_pem=directory / "intermediate.pem",
        signer_pem=directory / "signer.pem", signer_key_pem=directory / "signer.key",
        signer=main,
        ec_signer=signer("Мария Иванова", ec.generate_private_key(ec.SECP256R1()), issuer=inter,
                         issuer_key=inter_key),
        expired=signer("Стефан Старев", rsa_key(), issuer=inter, issuer_key=inter_key,
                       not_before=_NOW - timedelta(days=400), not_after=_NOW - timedelta(days=1)),
        untrusted=signer("Neznaen Chovek", rsa_key(), issuer=other, issuer_key=other_key),
        revoked=revoked, crl=crl.public_bytes(serialization.Encoding.DER),
    )


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> SignerPki:
    return build_pki(tmp_path_factory.mktemp("xmlsig-pki"))


def seos_message(comment: str = "Моля, регистрирайте.") -> bytes:
    """A SEOS registration request as a peer sends it (schema-valid, unsigned), in UTF-8."""
    return f"""<?xml version="1.0" encoding="utf-8"?>
<Message xmlns="http://schemas.egov.bg/messaging/v1">
  <Header>
    <Version>1.0</Version>
    <MessageType>MSG_DocumentRegistrationRequest</MessageType>
    <MessageDate>2026-12-01T10:00:00</MessageDate>
    <Sender>
      <Identifier>{EIK}</Identifier>
      <AdministrativeBodyName>Община Тест</AdministrativeBodyName>
      <GUID>{{0f3a2c5e-8d41-4b7e-9c2a-1d5e6f708192}}</GUID>
    </Sender>
    <Recipient>
      <Identifier>000695114</Identifier>
      <AdministrativeBodyName>Областна администрация Тест</AdministrativeBodyName>
      <GUID>{{6a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d}}</GUID>
    </Recipient>
    <MessageGUID>{{11111111-2222-4333-8444-555555555555}}</MessageGUID>
  </Header>
  <Body>
    <DocumentRegistrationRequest>
      <Document>
        <DocID>
          <DocumentNumber><DocNumber>ОА-01-123</DocNumber><DocDate>2026-12-01</DocDate></DocumentNumber>
          <DocumentGUID>{{aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee}}</DocumentGUID>
        </DocID>
        <DocKind>Молба</DocKind>
        <DocAttachmentList>
          <Attachment>
            <AttFileName>molba.pdf</AttFileName>
            <AttBody>JVBERi0xLjQKJcfsj6IKMSAwIG9iago8PD4+CmVuZG9iagp0cmFpbGVyCjw8Pj4KJSVFT0YK</AttBody>
            <AttMIMEType>application/pdf</AttMIMEType>
          </Attachment>
        </DocAttachmentList>
        <DocAbout>Молба за издаване на удостоверение</DocAbout>
      </Document>
      <Comment>{comment}</Comment>
    </DocumentRegistrationRequest>
  </Body>
</Message>
""".encode()


_IMPORTS = {
    "http://www.w3.org/2000/09/xmldsig#": "xmldsig-core-schema.xsd",
    "http://ereg.egov.bg/segment/0009-000001": "0009-000001_DocumentURI.xsd",
    "http://ereg.egov.bg/value/0008-000001": "0008-000001_BatchNumber.xsd",
    "http://ereg.egov.bg/value/0008-000002": "0008-000002_RegisterIndex.xsd",
    "http://ereg.egov.bg/value/0008-000003": "0008-000003_DocumentSequenceNumber.xsd",
    "http://ereg.egov.bg/value/0008-000004": "0008-000004_DocumentReceiptOrSigningDate.xsd",
}


def seos_schema(directory: Path) -> etree.XMLSchema:
    """The official SEOS schema set, loaded as the reference does (one set; imports mapped to local files).

    The published XSDs import by namespace only; copies in ``directory`` get a schemaLocation each.
    """
    if not (SEOS_XSD_DIR / "EGovMessaging.xsd").is_file():
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"the official SEOS schemas are not in {SEOS_XSD_DIR}")
        pytest.skip(f"the official SEOS schemas are not in {SEOS_XSD_DIR}")
    directory.mkdir(parents=True, exist_ok=True)
    for source in SEOS_XSD_DIR.glob("*.xsd"):
        text = source.read_text(encoding="utf-8")
        for namespace, file in _IMPORTS.items():
            text = text.replace(f'<xsd:import namespace="{namespace}" />',
                                f'<xsd:import namespace="{namespace}" schemaLocation="{file}" />')
        (directory / source.name).write_text(text, encoding="utf-8")
    # The W3C schema's internal DTD subset declares entities it uses: a trusted local file, no network.
    parser = etree.XMLParser(no_network=True, load_dtd=False, resolve_entities=True)
    return etree.XMLSchema(etree.parse(str(directory / "EGovMessaging.xsd"), parser))


def require_tool(name: str) -> str:
    """The path of a command-line tool; missing is a skip on a laptop, a failure in CI (.ci/run installs it)."""
    path = shutil.which(name)
    if path:
        return path
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{name} is not installed: .ci/run must apt-get install it")
    pytest.skip(f"{name} is not installed (Debian package {name})")


class CountingKey:
    """A key source that signs through another and counts the calls: a stand-in for an HSM's interface.

    It hands out no private key object at all, so whatever signs through it can only use sign_raw /
    sign_hashes (proving that signxml goes through :func:`signing.rawkey.as_private_key`).
    """

    def __init__(self, inner: LocalKey) -> None:
        self.name, self._inner, self.calls = f"counting-{inner.name}", inner, 0

    def certificate(self) -> asn1_x509.Certificate:
        return self._inner.certificate()

    def chain(self) -> list[asn1_x509.Certificate]:
        return self._inner.chain()

    def pdf_signer(self) -> PdfSigner:
        return self._inner.pdf_signer()

    def sign_raw(self, data: bytes, digest_algorithm: str = "sha256") -> bytes:
        self.calls += 1
        return self._inner.sign_raw(data, digest_algorithm)

    def sign_hashes(self, digests: list[bytes], digest_algorithm: str = "sha256") -> list[bytes]:
        self.calls += 1
        return self._inner.sign_hashes(digests, digest_algorithm)

    def close(self) -> None:
        self._inner.close()
