"""The QES signer kind (``kind: qes``): signs a document's files as they pass, each in its own format.

Which format a file gets is decided by its name: PDFs PAdES (at the configured level), XML files XAdES
(enveloped: the signed file replaces the original; detached: a signature file is added beside it), any
other file a detached CAdES signature added as ``<name>.p7s``. The key is any key source
(``key.type``: pkcs12, pkcs11, csc; see :mod:`signing.keys`), so the same configuration signs with a
file in a test, an HSM or a qualified trust service's remote signing in production.

A signing service that is down (the key source or the TSA raising :class:`Transient`) is retried for
that document alone by the stage; a file that cannot be signed (a broken PDF, XML that does not parse)
fails the document with the reason, for an operator.

One object per processing worker: the key source it builds holds a loaded key or a session.
"""

from __future__ import annotations

import fnmatch
import tempfile
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from schemas.envelope import AttachmentRef, Envelope
from schemas.errors import ConfigError, KurierError, Permanent
from schemas.payloads import PayloadStore
from signing.base import SignResult
from signing.keys import KeySource, load_key_type

__all__ = ["QesSigner", "Settings"]

Format = Literal["pades", "xades", "cades", "none"]
_DEFAULT_FORMATS: dict[str, Format] = {"*.pdf": "pades", "*.xml": "xades", "*": "cades"}


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    key: dict[str, Any]  # {"type": "pkcs12" | "pkcs11" | "csc", ...that type's settings}
    # File name pattern → format, first match wins; a file no pattern matches is left unsigned.
    formats: dict[str, Format] = Field(default_factory=lambda: dict(_DEFAULT_FORMATS))
    level: Literal["B-B", "B-T", "B-LT"] = "B-B"  # PAdES level; B-T and B-LT need tsa_url
    tsa_url: str | None = None
    xades_packaging: Literal["enveloped", "detached"] = "enveloped"
    reason: str | None = None  # what the PDF signature says: why, where, who, in which field
    location: str | None = None
    signer_name: str | None = None
    field_name: str | None = None
    trust: list[Path] = []  # trust anchors whose validation data B-LT embeds

    @model_validator(mode="after")
    def _check(self) -> Settings:
        options = dict(self.key)
        kind = options.pop("type", None)
        if not kind:
            raise ValueError("key.type: say where the key is (pkcs12, pkcs11 or csc)")
        try:
            load_key_type(str(kind)).Settings(**options)
        except ConfigError as exc:
            raise ValueError(f"key.type: {exc}") from None
        except ValidationError as exc:
            first = exc.errors()[0]
            raise ValueError(f"key.{'.'.join(map(str, first['loc']))}: {first['msg']}") from None
        if self.level != "B-B" and not self.tsa_url:
            raise ValueError(f"level {self.level} needs a timestamp authority: set tsa_url")
        return self

    def format_of(self, file_name: str) -> Format:
        lowered = file_name.lower()
        for pattern, fmt in self.formats.items():
            if fnmatch.fnmatchcase(lowered, pattern.lower()):
                return fmt
        return "none"


class QesSigner:
    Settings: ClassVar[type[BaseModel]] = Settings

    def __init__(self, name: str, settings: BaseModel) -> None:
        assert isinstance(settings, Settings)
        self.name = name
        self.settings = settings
        self._key: KeySource | None = None
        self._pades: Any = None

    def key(self) -> KeySource:
        if self._key is None:
            options = dict(self.settings.key)
            kind = str(options.pop("type"))
            cls = load_key_type(kind)
            self._key = cls(self.name, cls.Settings(**options))  # type: ignore[assignment]
        assert self._key is not None
        return self._key

    def _pades_signer(self) -> Any:
        if self._pades is None:  # kept: it prepares the CMS around the signature once per certificate
            from signing.certs import read_certificates
            from signing.formats import SignOptions, pades_signer

            s = self.settings
            roots = tuple(cert for path in s.trust for cert in read_certificates(path))
            self._pades = pades_signer(self.key(), SignOptions(
                level=s.level, tsa_url=s.tsa_url, trust_roots=roots, reason=s.reason, location=s.location,
                signer_name=s.signer_name, field_name=s.field_name))
        return self._pades

    def sign(self, envelope: Envelope, store: PayloadStore) -> SignResult:
        attachments: list[AttachmentRef] = []
        done: list[str] = []
        with tempfile.TemporaryDirectory(prefix="kurier-sign-") as tmp:
            for i, att in enumerate(envelope.attachments):
                fmt = self.settings.format_of(att.file_name)
                if fmt == "none":
                    attachments.append(att)
                    continue
                source, output = Path(tmp) / f"{i}.in", Path(tmp) / f"{i}.out"
                store.copy_to(att.sha256, source)
                try:
                    attachments += self._sign_one(fmt, att, source, output, store)
                except KurierError:
                    raise  # the key source's or TSA's own Transient/Permanent: the stage decides
                except Exception as exc:
                    raise Permanent(f"cannot sign {att.file_name!r} ({fmt}): {exc}", code="signing-failed") from exc
                done.append(f"{att.file_name} {self._label(fmt)}")
        if not done:
            return SignResult(envelope, "skipped", f"signer {self.name!r}: no file of this document is to be signed")
        signed = envelope.model_copy(update={"attachments": attachments})
        return SignResult(signed, "ok", f"signer {self.name!r} ({self.key().certificate().subject.human_friendly}): "
                                        + "; ".join(done))

    def _label(self, fmt: str) -> str:
        if fmt == "pades":
            return f"PAdES {self.settings.level}"
        if fmt == "xades":
            return f"XAdES-B {self.settings.xades_packaging}"
        return "CAdES-B detached"

    def _sign_one(self, fmt: str, att: AttachmentRef, source: Path, output: Path,
                  store: PayloadStore) -> list[AttachmentRef]:
        if fmt == "pades":
            self._pades_signer().sign_file(source, output)
            stored = store.put_file(output)
            return [att.model_copy(update={"size": stored.size, "sha256": stored.sha256})]
        if fmt == "xades":
            from signing.xades import sign_xades

            packaging = self.settings.xades_packaging
            result = sign_xades(source.read_bytes(), self.key(), packaging, file_name=att.file_name)
            stored = store.put_bytes(result)
            if packaging == "enveloped":
                return [att.model_copy(update={"size": stored.size, "sha256": stored.sha256})]
            return [att, AttachmentRef(file_name=f"{att.file_name}.xades.xml", mime_type="application/xml",
                                       size=stored.size, sha256=stored.sha256,
                                       comment=f"XAdES signature of {att.file_name}")]
        from signing.cades import sign_cades

        stored = store.put_bytes(sign_cades(source, self.key()))
        return [att, AttachmentRef(file_name=f"{att.file_name}.p7s", mime_type="application/pkcs7-signature",
                                   size=stored.size, sha256=stored.sha256,
                                   comment=f"CAdES signature of {att.file_name}")]

    def close(self) -> None:
        if self._key is not None:
            self._key.close()
