"""The hub's limits on what it accepts: every package checks documents against the same numbers."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["Limits", "MiB"]

MiB = 1024 * 1024


class Limits(BaseModel):
    """``limits:`` in the configuration; anything beyond is refused with ``too-large``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_document_bytes: int = Field(100 * MiB, gt=0)  # all files of one document together
    max_xml_bytes: int = Field(10 * MiB, gt=0)  # one metadata/XML file (the SEOS reference caps at 10 MB)
    max_attachments: int = Field(500, gt=0)
