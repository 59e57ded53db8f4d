"""Engines for a Tokenward database URL: PostgreSQL async (psycopg) for the server; SQLite synchronous,
driven on the event loop by the store (a statement takes microseconds, a thread hop ~450 µs); sync
engines for migrations.

SQLite gets WAL, a busy timeout and ``BEGIN IMMEDIATE`` for write transactions: with ``BEGIN DEFERRED``
175 of 200 contended read-then-write transactions failed with "database is locked"; with IMMEDIATE none did.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

MIN_SQLITE = (3, 35, 0)  # RETURNING


def _url(db_url: str) -> URL:
    """The URL with our drivers: pysqlite, or psycopg 3 (sync and async)."""
    url = make_url(db_url)
    backend = url.get_backend_name()
    if backend == "sqlite":
        return url.set(drivername="sqlite")
    if backend == "postgresql":
        return url.set(drivername="postgresql+psycopg")
    raise ValueError(f"unsupported database backend {backend!r} (use sqlite:/// or postgresql://)")


def describe_url(db_url: str) -> str:
    """The URL with any password hidden, for log and status lines."""
    return make_url(db_url).render_as_string(hide_password=True)


def is_sqlite(db_url: str) -> bool:
    return make_url(db_url).get_backend_name() == "sqlite"


SQLITE_BUSY_TIMEOUT_MS = 10000


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")  # first: switching to WAL may wait
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _create_private_sqlite_file(url: URL) -> None:
    """Create a new SQLite database file with mode 0600 before SQLite does (it would use 0644 under the usual
    umask): the file holds password hashes and encrypted keys. SQLite gives the ``-wal`` and ``-shm`` files
    the database file's mode, so they are 0600 too. An existing file is left as its operator made it."""
    path = url.database
    if not path or path == ":memory:" or path.startswith("file:") or url.query.get("uri"):
        return
    # FileExistsError: exists already; FileNotFoundError: its directory does not (SQLite reports that)
    with contextlib.suppress(FileExistsError, FileNotFoundError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def _sqlite_begin(conn: Any) -> None:
    """Migrations write: take the write lock up front."""
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def _check_sqlite_version() -> None:
    if sqlite3.sqlite_version_info < MIN_SQLITE:
        raise RuntimeError(f"SQLite {sqlite3.sqlite_version} is too old; Tokenward needs 3.35 or newer")


def pgbouncer_from_env() -> bool:
    """``TOKENWARD_PGBOUNCER`` is set (``1``, ``true``, ``yes``), as ``Settings.from_env`` reads it."""
    return os.environ.get("TOKENWARD_PGBOUNCER", "").lower() in ("1", "true", "yes")


def _pg_connect_args(pgbouncer: bool) -> dict[str, Any]:
    """5 s connect timeout; 10 s statement timeout. Behind pgbouncer in transaction mode, no server-side
    prepared statements (pgbouncer < 1.21 cannot route them) and no startup options (it rejects them).

    ``TOKENWARD_PGBOUNCER`` in the environment turns pgbouncer mode on for every engine of the process,
    whatever the caller passed: ``serve`` creates its signing keys, and the admin commands do their work,
    through engines made without the flag, and pgbouncer refuses the startup options of those."""
    if pgbouncer or pgbouncer_from_env():
        return {"connect_timeout": 5, "prepare_threshold": None}
    return {"connect_timeout": 5, "options": "-c statement_timeout=10000 -c lock_timeout=10000"}


def create_sqlite_loop_engine(db_url: str) -> Engine:
    """The SQLite engine the server drives on its event loop; the store issues BEGIN itself.

    Its pool never blocks (unlimited overflow): a checkout that waited would stall the loop that must run
    the holders to completion.
    """
    url = _url(db_url)
    _check_sqlite_version()
    _create_private_sqlite_file(url)
    engine = create_engine(url, pool_size=4, max_overflow=-1)
    event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def create_server_engine(db_url: str, *, pgbouncer: bool = False) -> AsyncEngine:
    """The async engine the server uses on PostgreSQL."""
    url = _url(db_url)
    if url.get_backend_name() != "postgresql":
        raise ValueError("the async engine is for PostgreSQL; SQLite uses create_sqlite_loop_engine")
    engine = create_async_engine(url, pool_size=10, max_overflow=10, pool_timeout=5,
                                 connect_args=_pg_connect_args(pgbouncer))
    _ping_when_idle(engine.sync_engine)
    return engine


IDLE_PING_SECONDS = 1.0


def _ping_when_idle(engine: Engine) -> None:
    """Check a pooled connection before use only if it sat idle for a while.

    ``pool_pre_ping`` pings on every checkout (one extra round trip per request); a connection used a
    moment ago is almost surely alive, and one that is not fails that request with 503 and makes the pool
    drop every older connection. After a database restart or network cut, idle connections are pinged
    and replaced before use, so the first request after recovery succeeds.
    """

    @event.listens_for(engine, "checkin")
    def _checked_in(_dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checked_out(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.pop("idle_since", None)
        if idle_since is not None and time.monotonic() - idle_since > IDLE_PING_SECONDS:
            try:
                engine.dialect.do_ping(dbapi_connection)
            except Exception as exc:  # any failure: let the pool replace this connection
                raise DisconnectionError() from exc


def create_sync_engine(db_url: str) -> Engine:
    """A synchronous engine, for Alembic."""
    url = _url(db_url)
    if url.get_backend_name() == "sqlite":
        _check_sqlite_version()
        _create_private_sqlite_file(url)
        engine = create_engine(url)
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    # Migrations send no startup options; behind pgbouncer they prepare no statement either, which would
    # stay on the pooled server connection and collide with the next client's statement of the same name.
    args: dict[str, Any] = {"connect_timeout": 5}
    if pgbouncer_from_env():
        args["prepare_threshold"] = None
    return create_engine(url, connect_args=args)
