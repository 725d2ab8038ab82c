"""Alembic environment: runs migrations on the engine the journal handed over."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from router.journal.tables import metadata

config = context.config
engine = config.attributes.get("engine") or create_engine(config.get_main_option("sqlalchemy.url") or "")

with engine.begin() as connection:
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
    context.run_migrations()
