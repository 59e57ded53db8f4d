"""SqlStore: transactions on SQLAlchemy Core, for SQLite and PostgreSQL.

What runs inside a transaction lives in one module per aggregate (``clients``, ``users``, ``grants``, …),
composed into ``SqlTransaction``. Single-use operations are one conditional ``UPDATE … WHERE consumed_at IS
NULL``: the database decides the one winner, whatever the number of worker processes.
"""

from __future__ import annotations

import asyncio
import random
import sqlite3
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from typing import Any

from sqlalchemy import Connection, CursorResult, Engine, Executable
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import AsyncEngine

from tokenward.server.store.protocols import StoreUnavailableError, Transaction
from tokenward.server.store.sql.engine import (
    SQLITE_BUSY_TIMEOUT_MS,
    create_server_engine,
    create_sqlite_loop_engine,
    is_sqlite,
)
from tokenward.server.store.sql.transaction import SqlTransaction

__all__ = ["PostgresStore", "SqlStore", "SqlTransaction", "SqliteStore"]


class SqlStore:
    """The Store protocol on SQLAlchemy Core: SQLite on the event loop, or PostgreSQL through psycopg."""

    @classmethod
    def from_url(cls, db_url: str, *, pgbouncer: bool = False) -> SqlStore:
        if is_sqlite(db_url):
            return SqliteStore(create_sqlite_loop_engine(db_url))
        return PostgresStore(create_server_engine(db_url, pgbouncer=pgbouncer))

    @asynccontextmanager
    async def transaction(self, *, write: bool = False) -> AsyncIterator[Transaction]:
        try:
            async with self._transaction(write) as tx:
                yield tx
        except (OperationalError, InterfaceError, PoolTimeoutError, TimeoutError, sqlite3.OperationalError) as exc:
            cause = getattr(exc, "orig", None) or exc
            raise StoreUnavailableError(f"{type(cause).__name__}: {str(cause).splitlines()[0][:200]}") from exc

    def _transaction(self, write: bool) -> AbstractAsyncContextManager[Transaction]:
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError


class PostgresStore(SqlStore):
    """PostgreSQL through an async engine (psycopg 3): row locks and conditional updates serialise writers."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    @asynccontextmanager
    async def _transaction(self, write: bool) -> AsyncIterator[Transaction]:
        async with self.engine.connect() as conn:
            if not write:
                # Reads (write=False never writes) run in autocommit: one round trip a statement instead of
                # BEGIN, statement, COMMIT. Nothing is lost: under READ COMMITTED, PostgreSQL's default,
                # every statement of a transaction takes its own snapshot anyway.
                await conn.execution_options(isolation_level="AUTOCOMMIT")
                yield SqlTransaction(conn)
                return
            trans = await conn.begin()
            tx = SqlTransaction(conn)
            try:
                yield tx
            except BaseException:
                await (trans.commit() if tx.keeps_on_error else trans.rollback())
                raise
            else:
                await trans.commit()

    async def close(self) -> None:
        await self.engine.dispose()


class _LoopConnection:
    """A synchronous SQLite connection used directly on the event loop, with the async ``execute`` that
    SqlTransaction awaits. A transaction never yields to the loop between statements, so it holds
    SQLite's write lock for its own statements only (0.1 to 0.5 ms)."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self.dialect = conn.dialect

    async def execute(self, statement: Executable, parameters: Mapping[str, Any] | None = None
                      ) -> CursorResult[Any]:
        return self._conn.execute(statement, parameters)


class SqliteStore(SqlStore):
    """SQLite in WAL mode. Writers queue on an asyncio lock in this process and take the database's write
    lock with ``BEGIN IMMEDIATE``; while another process holds it the loop keeps serving (asyncio.sleep
    between attempts) instead of blocking in SQLite's busy handler."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._writer = asyncio.Lock()

    @asynccontextmanager
    async def _transaction(self, write: bool) -> AsyncIterator[Transaction]:
        async with self._writer if write else nullcontext():
            with self.engine.connect() as conn:
                trans = conn.begin()
                driver = conn.connection.driver_connection
                assert isinstance(driver, sqlite3.Connection)
                if write:
                    await _begin_immediate(driver)
                else:
                    driver.execute("BEGIN")
                tx = SqlTransaction(_LoopConnection(conn))
                try:
                    yield tx
                except BaseException:
                    trans.commit() if tx.keeps_on_error else trans.rollback()
                    raise
                else:
                    trans.commit()

    async def close(self) -> None:
        self.engine.dispose()


async def _begin_immediate(driver: sqlite3.Connection) -> None:
    """Take SQLite's write lock, retrying without blocking the loop while another process holds it."""
    driver.execute("PRAGMA busy_timeout=0")
    try:
        give_up = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
        delay = 0.0002
        while True:
            try:
                driver.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if exc.sqlite_errorcode != sqlite3.SQLITE_BUSY or time.monotonic() > give_up:
                    raise
            await asyncio.sleep(delay * random.uniform(0.5, 1.5))
            delay = min(delay * 2, 0.002)
    finally:
        driver.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
