"""Schema migrations with Alembic, run programmatically (``tokenward db upgrade`` and ``serve``)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

MIGRATIONS = Path(__file__).with_name("migrations")


def alembic_config(db_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["tokenward_db_url"] = db_url
    return config


def upgrade(db_url: str, revision: str = "head") -> None:
    """Bring the schema to ``revision``; concurrent callers are serialised by the database lock."""
    command.upgrade(alembic_config(db_url), revision)
