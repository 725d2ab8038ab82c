"""The transform stage: XSLT on a document's XML files, the result checked against an XSD.

Stylesheets and schemas are compiled once at start-up (a broken one stops the start with its file
named); the stylesheet may not touch files or the network. The transformed file is stored as a new
attachment in place of the original, so the journal keeps both by hash.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from lxml import etree

from router.config import TransformConfig
from router.routing import fits
from schemas.envelope import AttachmentRef, Envelope
from schemas.errors import ConfigError, Permanent, Refused
from schemas.payloads import PayloadStore
from schemas.xmlsafe import parse_xml, safe_parser, safe_xslt

__all__ = ["Transformer", "compile_transforms"]


@dataclass(frozen=True)
class _Compiled:
    config: TransformConfig
    xslt: etree.XSLT
    schema: etree.XMLSchema | None


def _load(path: Path, what: str) -> etree._Element:
    try:
        return etree.parse(str(path), parser=safe_parser()).getroot()
    except (OSError, etree.XMLSyntaxError) as exc:
        raise ConfigError(f"{what}: cannot read {path}: {exc}") from exc


def compile_transforms(configs: Sequence[TransformConfig], resolve: Callable[[Path], Path]) -> list[_Compiled]:
    """Compile every stylesheet and schema; a broken one raises :class:`ConfigError` naming its file."""
    compiled: list[_Compiled] = []
    for index, cfg in enumerate(configs):
        where = f"transforms[{index}] {cfg.name!r}"
        try:
            xslt = safe_xslt(_load(resolve(cfg.xslt), where))
        except etree.XSLTParseError as exc:
            raise ConfigError(f"{where}: {cfg.xslt} is not a valid XSLT: {exc}") from exc
        schema = None
        if cfg.xsd is not None:
            try:
                schema = etree.XMLSchema(_load(resolve(cfg.xsd), where))
            except etree.XMLSchemaParseError as exc:
                raise ConfigError(f"{where}: {cfg.xsd} is not a valid XSD: {exc}") from exc
        compiled.append(_Compiled(cfg, xslt, schema))
    return compiled


class Transformer:
    def __init__(self, configs: Sequence[TransformConfig], resolve: Callable[[Path], Path], store: PayloadStore,
                 max_xml_bytes: int) -> None:
        self.store = store
        self.max_xml_bytes = max_xml_bytes
        self._compiled = compile_transforms(configs, resolve)

    def apply(self, env: Envelope) -> tuple[Envelope, str, str]:
        """Return the (possibly new) envelope, the outcome ("ok"/"skipped") and a detail for the journal."""
        applied: list[str] = []
        attachments = list(env.attachments)
        for compiled in self._compiled:
            if not fits(compiled.config.match, env):
                continue
            for i, att in enumerate(attachments):
                if not fnmatch.fnmatch(att.file_name.lower(), compiled.config.files.lower()):
                    continue
                attachments[i] = self._transform(compiled, att)
                applied.append(f"{compiled.config.name}({att.file_name})")
        if not applied:
            return env, "skipped", "no transform applies"
        return env.model_copy(update={"attachments": attachments}), "ok", "applied " + ", ".join(applied)

    def _transform(self, compiled: _Compiled, att: AttachmentRef) -> AttachmentRef:
        name = compiled.config.name
        if att.size > self.max_xml_bytes:
            # Checked before reading: the file would otherwise be loaded whole only to be refused.
            raise Refused(f"transform {name!r}: {att.file_name} is {att.size} bytes, more than the "
                          f"{self.max_xml_bytes} bytes allowed for XML (limits.max_xml_bytes)", code="too-large")
        root = parse_xml(self.store.read_bytes(att.sha256), what=att.file_name, max_bytes=self.max_xml_bytes)
        try:
            result = compiled.xslt(root)
        except etree.XSLTApplyError as exc:
            raise Permanent(f"transform {name!r} failed on {att.file_name}: {exc}", code="transform-failed") from exc
        if result.getroot() is None:
            raise Permanent(f"transform {name!r} produced no XML element for {att.file_name}", code="transform-failed")
        if compiled.schema is not None and not compiled.schema.validate(result):
            errors = "; ".join(f"line {e.line}: {e.message}" for e in list(compiled.schema.error_log)[:3])
            raise Permanent(f"transform {name!r}: the result for {att.file_name} is not valid against "
                            f"{compiled.config.xsd}: {errors}", code="schema-invalid")
        data = etree.tostring(result, xml_declaration=True, encoding="UTF-8")
        stored = self.store.put_bytes(data)
        return att.model_copy(update={"sha256": stored.sha256, "size": stored.size, "mime_type": "application/xml"})
