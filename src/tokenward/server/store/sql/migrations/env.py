"""Alembic environment: the database URL comes from the caller (see migrate.py), never from a file."""

from __future__ import annotations

from alembic import context
from sqlalchemy import text

from tokenward.server.store.sql.engine import create_sync_engine, is_sqlite
from tokenward.server.store.sql.tables import metadata

config = context.config
db_url: str = config.attributes["tokenward_db_url"]
engine = create_sync_engine(db_url)
with engine.connect() as connection:
    connection = connection.execution_options(tokenward_write=True)
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=is_sqlite(db_url))
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            # Several processes may start at once: the first migrates, the others wait and find head.
            connection.execute(text("SELECT pg_advisory_xact_lock(7414727)"))
        context.run_migrations()
    connection.commit()
engine.dispose()
