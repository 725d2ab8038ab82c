"""A file-drop connection's settings: an inbox the AIS writes into, an outbox it reads from, or both."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from adapters.filedrop.format import Encoding
from schemas.identifiers import normalize_guid, validate_eik

__all__ = ["Settings"]


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    inbox: str | None = None  # where the AIS drops documents (the source role); relative to data_dir
    outbox: str | None = None  # where Kurier writes documents for the AIS (the destination role)
    encoding: Encoding = "utf-8"  # of the AIS's files; legacy AIS write and read windows-1251
    # -- the inbox --
    settle_seconds: float = Field(2.0, ge=0)  # unchanged this long = completely copied
    poll_interval: float = Field(1.0, gt=0)
    sender_eik: str | None = None  # the AIS this inbox speaks for: other senders are refused
    sender_guid: str | None = None
    sender_name: str | None = None
    require_marker: bool = False  # ready only once <stem>.ready exists beside <stem>.xml
    status_files: bool = True  # write a status file into <inbox>/status/ at each status change (FORMAT.md §6)
    # -- the outbox --
    fsync: bool = True  # off only for tests and throw-away demos

    @field_validator("sender_guid")
    @classmethod
    def _guid(cls, value: str | None) -> str | None:
        return normalize_guid(value) if value else None

    @field_validator("sender_eik")
    @classmethod
    def _eik(cls, value: str | None) -> str | None:
        return validate_eik(value) if value else None  # a typo here would refuse every document

    @model_validator(mode="after")
    def _a_folder(self) -> Settings:
        if not self.inbox and not self.outbox:
            raise ValueError("give an inbox (documents from the AIS), an outbox (documents to it), or both")
        if self.inbox and self.outbox and self.inbox.rstrip("/") == self.outbox.rstrip("/"):
            raise ValueError("inbox and outbox must be different folders")
        return self
