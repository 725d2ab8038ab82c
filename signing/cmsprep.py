"""A pyhanko Signer that prepares the CMS around a PAdES B-B signature once per certificate.

pyhanko builds every CMS SignedData from scratch: the signer's certificates are copied and
re-encoded by asn1crypto (pure Python) for each document, which costs more than the RSA signature.
For a B-B signature (no timestamp, no revocation data) only two things differ from one document to
the next: the messageDigest attribute and the signature value. So the first document is signed by
pyhanko itself, and its CMS becomes the template: the certificate set, digest algorithms, signer
identifier and the constant signed attributes are kept as parsed DER (asn1crypto re-dumps parsed,
unchanged values as the bytes it read), and each later document only builds the new attributes.

Anything else (a timestamp, B-LT, a signing-time or an unknown signed attribute in the template)
goes through pyhanko's own path unchanged.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from signing.keys import KeySource

__all__ = ["prepared_cms_signer"]

# Signed attributes that depend only on the certificate and the algorithms, never on the document.
_CONSTANT_ATTRS = {"content_type", "signing_certificate_v2", "signing_certificate", "cms_algorithm_protection"}


class _Template:
    """The parts of one pyhanko-made SignedData that every later signature repeats."""

    def __init__(self, content_info: Any) -> None:
        from asn1crypto import cms

        # Round-trip through DER: every part below is then a parsed value that dumps its bytes as read.
        self.content_info = cms.ContentInfo.load(content_info.dump())
        signed_data = self.content_info["content"]
        (signer_info,) = signed_data["signer_infos"]
        self.signed_data = signed_data
        self.signer_info = signer_info
        attrs = list(signer_info["signed_attrs"])
        self.attrs = attrs
        self.digest_index = next(i for i, a in enumerate(attrs) if a["type"].native == "message_digest")
        self.usable = (signer_info["unsigned_attrs"].native is None
                       and {a["type"].native for a in attrs} - {"message_digest"} <= _CONSTANT_ATTRS)

    def signed_attrs(self, digest: bytes) -> Any:
        from asn1crypto import cms

        attrs = list(self.attrs)
        attrs[self.digest_index] = cms.CMSAttribute({"type": "message_digest", "values": [digest]})
        return cms.CMSAttributes(attrs)

    def content(self, signed_attrs: Any, signature: bytes) -> Any:
        from asn1crypto import cms

        t = self.signer_info
        signer_info = cms.SignerInfo({
            "version": t["version"], "sid": t["sid"], "digest_algorithm": t["digest_algorithm"],
            "signed_attrs": signed_attrs, "signature_algorithm": t["signature_algorithm"], "signature": signature,
        })
        s = self.signed_data
        signed_data = cms.SignedData({
            "version": s["version"], "digest_algorithms": s["digest_algorithms"],
            "encap_content_info": s["encap_content_info"], "certificates": s["certificates"],
            "signer_infos": cms.SignerInfos([signer_info]),
        })
        return cms.ContentInfo({"content_type": "signed_data", "content": signed_data})


def _plain_b_b(timestamper: Any, dry_run: bool, use_pades: bool, is_pdf_sig: bool, encap: Any,
               settings: Any) -> bool:
    if timestamper is not None or dry_run or not use_pades or not is_pdf_sig or encap is not None:
        return False
    return settings is None or (settings.adobe_revinfo_attr is None and settings.cades_signed_attrs is None)


def prepared_cms_signer(key: KeySource) -> Any:
    """A pyhanko Signer over ``key`` (signs through ``key.pdf_signer()``) with the prepared B-B path."""
    from pyhanko.sign.signers import Signer

    class PreparedCmsSigner(Signer):
        def __init__(self, base: Any) -> None:
            super().__init__(signing_cert=base.signing_cert, cert_registry=base.cert_registry,
                             signature_mechanism=base.signature_mechanism, prefer_pss=base.prefer_pss,
                             embed_roots=base.embed_roots)
            self._base = base
            self._templates: dict[str, _Template] = {}

        async def async_sign_raw(self, data: bytes, digest_algorithm: str, dry_run: bool = False) -> bytes:
            signature: bytes = await self._base.async_sign_raw(data, digest_algorithm, dry_run)
            return signature

        async def async_sign(self, data_digest: bytes, digest_algorithm: str, dry_run: bool = False,
                             use_pades: bool = False, timestamper: Any = None, signed_attr_settings: Any = None,
                             is_pdf_sig: bool = True, encap_content_info: Any = None) -> Any:
            args = (data_digest, digest_algorithm, dry_run, use_pades, timestamper, signed_attr_settings,
                    is_pdf_sig, encap_content_info)
            if not _plain_b_b(timestamper, dry_run, use_pades, is_pdf_sig, encap_content_info, signed_attr_settings):
                return await super().async_sign(*args)
            template = self._templates.get(digest_algorithm)
            if template is None:  # the first document: pyhanko signs it, and shows what to repeat
                result = await super().async_sign(*args)
                self._templates[digest_algorithm] = _Template(result)
                return result
            if not template.usable:
                return await super().async_sign(*args)
            signed_attrs = template.signed_attrs(data_digest)
            signature = await self._base.async_sign_raw(signed_attrs.dump(), digest_algorithm)
            return template.content(signed_attrs, signature)

    return PreparedCmsSigner(key.pdf_signer())
