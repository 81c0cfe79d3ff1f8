"""Alembic driven from code, so operators run `hookyard db upgrade` and need no alembic.ini."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(database_url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return cfg


def upgrade(database_url: str, revision: str = "head") -> None:
    # SQLite's file (and its folder) are created, private to the user, by hookyard.db.make_engine.
    command.upgrade(alembic_config(database_url), revision)


def current_heads(database_url: str) -> tuple:
    from alembic.runtime.migration import MigrationContext

    from .db import make_engine

    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_heads()
    finally:
        engine.dispose()
