"""PostgreSQL transactions: reads run statement by statement (autocommit), writes in one transaction."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from sqlalchemy import text

from tests.conftest import create_pg_database, drop_pg_database
from tokenward.server.store.sql.migrate import upgrade
from tokenward.server.store.sql.store import SqlStore, SqlTransaction


@pytest.fixture
def pg_url() -> Iterator[str]:
    url = create_pg_database()
    upgrade(url)
    yield url
    drop_pg_database(url)


async def _statement_started_transaction(tx: SqlTransaction) -> bool:
    await asyncio.sleep(0.01)  # a gap, so a transaction begun by an earlier statement is visibly older
    row = (await tx._conn.execute(text("SELECT transaction_timestamp() = statement_timestamp()"))).one()
    return bool(row[0])


def test_reads_run_in_autocommit_and_writes_in_one_transaction(pg_url: str) -> None:
    async def go() -> tuple[list[bool], list[bool]]:
        store = SqlStore.from_url(pg_url)
        try:
            async with store.transaction() as tx:
                assert isinstance(tx, SqlTransaction)
                reads = [await _statement_started_transaction(tx) for _ in range(2)]
            async with store.transaction(write=True) as tx:  # the pooled connection has left autocommit
                assert isinstance(tx, SqlTransaction)
                writes = [await _statement_started_transaction(tx) for _ in range(2)]
            async with store.transaction() as tx:
                assert isinstance(tx, SqlTransaction)
                reads += [await _statement_started_transaction(tx)]
            return reads, writes
        finally:
            await store.close()

    reads, writes = asyncio.run(go())
    assert reads == [True, True, True]  # each read statement is its own transaction
    assert writes[1] is False  # the second write statement runs in the transaction the first one began
