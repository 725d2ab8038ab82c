"""Kurier's own schema of the SEOS Message (``xsd/seos.xsd``): enforced on what Kurier receives.

The reference receiver validates against its XSD and only logs the result; Kurier refuses a message
that does not validate (a peer's policy may relax it), naming each error with its line.
"""

from __future__ import annotations

import functools
from importlib import resources

from lxml import etree

from schemas.errors import Refused

__all__ = ["schema_errors", "seos_schema", "validate"]


@functools.cache
def seos_schema() -> etree.XMLSchema:
    folder = resources.files("schemas.seos") / "xsd"
    with resources.as_file(folder / "seos.xsd") as path:
        # Parsed from its file so that the import of documenturi.xsd beside it resolves (no network).
        parser = etree.XMLParser(resolve_entities=False, no_network=True)
        return etree.XMLSchema(etree.parse(str(path), parser))


def schema_errors(root: etree._Element) -> list[str]:
    """What is wrong with ``root`` as a SEOS Message, one line each (empty: valid)."""
    schema = seos_schema()
    if schema.validate(root):
        return []
    return [f"line {e.line}: {e.message}" for e in schema.error_log]


def validate(root: etree._Element) -> None:
    """Raise :class:`Refused` (``invalid-seos``) listing the schema errors, if there are any."""
    errors = schema_errors(root)
    if errors:
        shown = "; ".join(errors[:5]) + (f"; and {len(errors) - 5} more" if len(errors) > 5 else "")
        raise Refused(f"SEOS message: not valid against the SEOS schema: {shown}", code="invalid-seos")
