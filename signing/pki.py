"""A test PKI built with certomancer: root and intermediate CA, a TSA, an OCSP responder, CRLs, signers.

Each administration gets a signing certificate whose subject carries ``organizationIdentifier``
``NTRBG-<EIK>`` (OID 2.5.4.97), as Bulgarian qualified certificates do, and a PKCS#12 file. Two more
signers exist for the tests of validation: one whose certificate has expired, one revoked.

The PKI lives in a directory: the certomancer configuration (with absolute dates, so reloading it
rebuilds byte-identical certificates for :mod:`signing.pkiserver`), the keys, PEM certificates, CRLs,
the PKCS#12 files and ``pki.json``, which :func:`load_pki` reads back. The services' URLs (OCSP, CRL,
TSA) are baked into the certificates, so the port is chosen when the PKI is built and kept.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from schemas.errors import ConfigError
from schemas.identifiers import InvalidIdentifier, validate_eik

if TYPE_CHECKING:
    from certomancer.registry import PKIArchitecture

    from signing.pkcs12 import Pkcs12Key

__all__ = ["ARCH", "DEMO_EIKS", "PASSWORD_ENV", "PkiFiles", "SignerFiles", "build_pki", "free_port", "load_pki",
           "pki_architecture"]

ARCH = "kurier-test"
DEMO_EIKS = ("000695235", "121759222")
PASSWORD_ENV = "KURIER_PKI_PASSWORD"  # when set, the password of every PKCS#12 file; else one generated per file
MANIFEST = "pki.json"
_DATE = "%Y-%m-%dT%H:%M:%S+0000"


@dataclass(frozen=True)
class SignerFiles:
    label: str
    eik: str
    status: str  # "valid", "expired" or "revoked": what validation must find
    cert: Path
    pkcs12: Path
    password_file: Path | None  # None: the password is in $KURIER_PKI_PASSWORD

    def key(self) -> Pkcs12Key:
        """This signer's PKCS#12 key source."""
        from signing.pkcs12 import Pkcs12Key, Settings

        if self.password_file is None:
            return Pkcs12Key(self.label, Settings(path=self.pkcs12, password_env=PASSWORD_ENV))
        return Pkcs12Key(self.label, Settings(path=self.pkcs12, password_file=self.password_file))

    def password(self) -> bytes:
        if self.password_file is None:
            value = os.environ.get(PASSWORD_ENV)
            if value is None:
                raise ConfigError(f"{self.pkcs12}: its password is in ${PASSWORD_ENV}, which is not set")
            return value.encode()
        return self.password_file.read_text(encoding="utf-8").strip().encode()


@dataclass(frozen=True)
class PkiFiles:
    """Where each file of a test PKI is."""

    directory: Path
    service_url: str  # http://127.0.0.1:<port>: where pkiserver serves OCSP, CRLs and the TSA
    root: Path
    intermediate: Path
    tsa: Path
    ocsp: Path
    crls: dict[str, Path]
    signers: dict[str, SignerFiles] = field(default_factory=dict)

    @property
    def config(self) -> Path:
        return self.directory / "certomancer.yml"

    @property
    def tsa_url(self) -> str:
        return f"{self.service_url}/{ARCH}/tsa/tsa"

    @property
    def port(self) -> int:
        return int(self.service_url.rsplit(":", 1)[1])

    def valid_signers(self) -> list[SignerFiles]:
        return [s for s in self.signers.values() if s.status == "valid"]

    def files(self) -> dict[str, Path]:
        """Every file by what it is, for ``kurier pki init`` to print."""
        out = {"root CA": self.root, "intermediate CA": self.intermediate, "TSA": self.tsa,
               "OCSP responder": self.ocsp, **{f"CRL {k}": v for k, v in self.crls.items()}}
        for s in self.signers.values():
            out[f"signer {s.label} ({s.status}, EIK {s.eik})"] = s.cert
            out[f"PKCS#12 {s.label}"] = s.pkcs12
            if s.password_file:
                out[f"password {s.label}"] = s.password_file
        return out


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _ext(ext_id: str, value: Any = None, *, critical: bool = False, smart: tuple[str, Any] | None = None) -> dict:
    out: dict[str, Any] = {"id": ext_id, "critical": critical}
    if smart is not None:
        out["smart-value"] = {"schema": smart[0], "params": smart[1]}
    elif value is not None:
        out["value"] = value
    return out


def _signer_spec(valid_from: datetime, valid_to: datetime) -> dict[str, Any]:
    return {
        "issuer": "interm",
        "validity": {"valid-from": valid_from.strftime(_DATE), "valid-to": valid_to.strftime(_DATE)},
        "extensions": [
            _ext("key_usage", critical=True, smart=("key-usage", ["digital_signature", "non_repudiation"])),
            _ext("crl_distribution_points", smart=("crl-dist-url", {"crl-repo-names": ["interm"]})),
            _ext("authority_information_access", smart=("aia-urls", {"ocsp-responder-names": ["interm"]})),
        ],
    }


def _config(eiks: list[str], url: str, now: datetime) -> tuple[dict[str, Any], list[tuple[str, str, str]]]:
    """The certomancer configuration and the signers (label, EIK, status)."""
    day = timedelta(days=1)
    ca_from, ca_to = now - 3650 * day, now + 3650 * day
    signers = [(f"signer-{eik}", eik, "valid") for eik in eiks]
    signers += [("signer-expired", eiks[0], "expired"), ("signer-revoked", eiks[0], "revoked")]
    entities: dict[str, Any] = {
        "root": {"common-name": "Kurier Test Root CA"},
        "interm": {"common-name": "Kurier Test Qualified CA"},
        "tsa": {"common-name": "Kurier Test Time Stamping Authority"},
        "ocsp": {"common-name": "Kurier Test OCSP Responder"},
    }
    for label, eik, status in signers:
        entities[label] = {"common-name": f"Signer {eik}" + ("" if status == "valid" else f" ({status})"),
                           "organization-name": f"Administration {eik}",
                           "organization-identifier": f"NTRBG-{eik}"}
    ca_validity = {"valid-from": ca_from.strftime(_DATE), "valid-to": ca_to.strftime(_DATE)}
    certs: dict[str, Any] = {
        "root": {"subject": "root", "issuer": "root", "validity": ca_validity,
                 "profiles": [{"id": "simple-ca"}]},
        "interm": {"issuer": "root", "validity": ca_validity,
                   "profiles": [{"id": "simple-ca", "params": {"max-path-len": 0, "crl-repo": "root"}}]},
        "tsa": {"issuer": "root", "validity": ca_validity, "extensions": [
            _ext("key_usage", critical=True, smart=("key-usage", ["digital_signature"])),
            _ext("extended_key_usage", ["time_stamping"], critical=True),
            _ext("crl_distribution_points", smart=("crl-dist-url", {"crl-repo-names": ["root"]})),
        ]},
        "ocsp": {"issuer": "interm", "validity": ca_validity, "profiles": ["ocsp-responder"]},
    }
    for label, _, status in signers:
        if status == "expired":
            certs[label] = _signer_spec(now - 730 * day, now - 365 * day)
        else:
            certs[label] = _signer_spec(now - 30 * day, now + 730 * day)
        if status == "revoked":
            # Before the newest CRL's thisUpdate (the interm CRL is issued daily), so the CRL lists it too.
            certs[label]["revocation"] = {"revoked-since": (now - 3 * day).strftime(_DATE), "reason": "key_compromise"}
    keys = {label: {"path": f"{label}.key.pem"} for label in [*entities]}
    config = {
        "external-url-prefix": url,
        "keysets": {ARCH: {"path-prefix": "keys", "keys": keys}},
        "pki-architectures": {ARCH: {
            "keyset": ARCH,
            "entity-defaults": {"country-name": "BG", "organization-name": "Kurier Test PKI"},
            "entities": entities,
            "certs": certs,
            "services": {
                "ocsp": {"interm": {"for-issuer": "interm", "responder-cert": "ocsp", "signing-key": "ocsp"}},
                "crl-repo": {
                    "root": {"for-issuer": "root", "signing-key": "root", "simulated-update-schedule": "P30D"},
                    "interm": {"for-issuer": "interm", "signing-key": "interm", "simulated-update-schedule": "P1D"},
                },
                "time-stamping": {"tsa": {"signing-key": "tsa", "signing-cert": "tsa"}},
            },
        }},
    }
    return config, signers


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def _new_key(path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    # RSA-2048: what Bulgarian QES certificates carry today, and what every verifier (pdfsig, xmlsec1) knows.
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    _write_private(path, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))


def pki_architecture(directory: Path) -> PKIArchitecture:
    """The certomancer architecture of a built PKI (what the services answer from)."""
    from certomancer.registry import CertomancerConfig

    config = CertomancerConfig.from_file(str(directory / "certomancer.yml"), key_search_dir=str(directory))
    return config.get_pki_arch(ARCH)  # type: ignore[arg-type]


def build_pki(directory: Path, eiks: list[str] | tuple[str, ...] = DEMO_EIKS, *, port: int | None = None,
              now: datetime | None = None) -> PkiFiles:
    """Build a test PKI in ``directory`` (replacing one there) and return where each file is."""
    from asn1crypto import pem

    try:  # a wrong EIK in a certificate would only surface later, as a signer no route matches
        eiks = list(dict.fromkeys(validate_eik(e) for e in eiks))
    except InvalidIdentifier as exc:
        raise ConfigError(f"pki: {exc}") from exc
    if not eiks:
        raise ConfigError("pki: at least one EIK is needed")
    now = (now or datetime.now(UTC)).replace(microsecond=0)
    url = f"http://127.0.0.1:{port or free_port()}"
    config, signers = _config(eiks, url, now)
    for sub in ("keys", "certs", "crls", "signers"):
        (directory / sub).mkdir(parents=True, exist_ok=True)
    for label in config["keysets"][ARCH]["keys"]:
        _new_key(directory / "keys" / f"{label}.key.pem")
    (directory / "certomancer.yml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    arch = pki_architecture(directory)
    for label in config["pki-architectures"][ARCH]["certs"]:
        cert = arch.get_cert(label)
        (directory / "certs" / f"{label}.cert.pem").write_bytes(pem.armor("CERTIFICATE", cert.dump()))
    for repo in ("root", "interm"):
        crl = arch.service_registry.get_crl(repo, at_time=now)  # type: ignore[arg-type]
        (directory / "crls" / f"{repo}.crl").write_bytes(crl.dump())
    shared = os.environ.get(PASSWORD_ENV)
    manifest_signers = []
    for label, eik, status in signers:
        password = shared or secrets.token_urlsafe(18)
        p12 = directory / "signers" / f"{label}.p12"
        _write_private(p12, arch.package_pkcs12(label, password=password.encode()))  # type: ignore[arg-type]
        if shared is None:
            _write_private(directory / "signers" / f"{label}.p12.password", (password + "\n").encode())
        manifest_signers.append({"label": label, "eik": eik, "status": status, "password_file": shared is None})
    manifest = {"service_url": url, "created": now.isoformat(), "signers": manifest_signers}
    (directory / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return load_pki(directory)


def load_pki(directory: Path) -> PkiFiles:
    """The files of a PKI that :func:`build_pki` made; :class:`ConfigError` when there is none."""
    try:
        manifest = json.loads((directory / MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"no test PKI in {directory} (make one with `kurier pki init`)") from None
    certs = directory / "certs"
    signers = {
        s["label"]: SignerFiles(
            label=s["label"], eik=s["eik"], status=s["status"], cert=certs / f"{s['label']}.cert.pem",
            pkcs12=directory / "signers" / f"{s['label']}.p12",
            password_file=directory / "signers" / f"{s['label']}.p12.password" if s["password_file"] else None)
        for s in manifest["signers"]
    }
    return PkiFiles(directory=directory, service_url=manifest["service_url"], root=certs / "root.cert.pem",
                    intermediate=certs / "interm.cert.pem", tsa=certs / "tsa.cert.pem", ocsp=certs / "ocsp.cert.pem",
                    crls={"root": directory / "crls" / "root.crl", "interm": directory / "crls" / "interm.crl"},
                    signers=signers)
