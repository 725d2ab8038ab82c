"""Errors of the file-drop adapter, all within Kurier's tree (``router.errors``).

    Refused (code names the reason: hostile-xml, bad-encoding, malformed-xml, too-large,
    │        invalid-document, missing-attachment, sender-mismatch, too-many-attachments)
    └── ForeignXml   a well-formed XML that is not a file-drop document (maybe another
                     document's attachment that happens to end in .xml)

The destination raises ``DestinationUnavailable`` (transient) for file-system trouble and
``DeliveryFailed`` when an attachment is missing from the payload store.
"""

from __future__ import annotations

from router.errors import Refused

__all__ = ["ForeignXml"]


class ForeignXml(Refused):
    """The root element is not ``{urn:kurier:filedrop:1}Document``."""

    code = "invalid-document"
