"""Alembic environment: the database URL comes from the caller (see migrate.py), never from a file."""

from __future__ import annotations

from typing import Any

from alembic import context
from sqlalchemy import event, text

from tokenward.server.store.sql.engine import create_sync_engine, is_sqlite
from tokenward.server.store.sql.tables import metadata

config = context.config
db_url: str = config.attributes["tokenward_db_url"]
engine = create_sync_engine(db_url)


def _foreign_keys_off(dbapi_connection: Any, _record: Any) -> None:
    """Batch mode rebuilds a SQLite table as copy, DROP, rename; with foreign keys enforced, dropping a parent
    table (users, clients, grants) cascades and deletes every row that points at it. SQLite ignores this
    pragma inside a transaction, so it is set as the connection opens (after engine.py's pragmas), and the
    references are checked before the migration commits."""
    dbapi_connection.execute("PRAGMA foreign_keys=OFF")


if is_sqlite(db_url):
    event.listen(engine, "connect", _foreign_keys_off)

with engine.connect() as connection:
    connection = connection.execution_options(tokenward_write=True)
    # transactional_ddl: SQLite's DDL is transactional, but Alembic assumes not and commits after each
    # revision. A second process waiting for the write lock could then take it between two revisions and
    # apply the next one too, while the first still held its plan ("duplicate column", "expected to match
    # one row"). One transaction for the whole upgrade, taken with BEGIN IMMEDIATE, serialises concurrent
    # upgrades (a later one finds head) and makes an upgrade all or nothing, as on PostgreSQL.
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=is_sqlite(db_url),
                      transactional_ddl=True)
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            # Several processes may start at once: the first migrates, the others wait and find head.
            connection.execute(text("SELECT pg_advisory_xact_lock(7414727)"))
        context.run_migrations()
        if connection.dialect.name == "sqlite":
            broken = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
            if broken:
                raise RuntimeError(f"migration left {len(broken)} rows pointing at missing rows: rolled back")
    connection.commit()
engine.dispose()
