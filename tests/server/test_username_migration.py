# ruff: noqa: RUF001  (full-width look-alikes are what these tests are about)
"""Migration 0006 keys existing usernames, and refuses, changing nothing, when two would become one."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import MetaData, text

from tests.conftest import BACKENDS, create_pg_database, drop_pg_database
from tokenward.server.store.sql.engine import create_sync_engine
from tokenward.server.store.sql.migrate import upgrade
from tokenward.server.store.sql.store import SqlStore

NOW = int(time.time())


@pytest.fixture(params=BACKENDS)
def db_at_0005(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    url = f"sqlite:///{tmp_path / 'u.db'}" if request.param == "sqlite" else create_pg_database()
    upgrade(url, "0005")
    try:
        yield url
    finally:
        if request.param == "postgresql":
            drop_pg_database(url)


def add_users(url: str, *names: str) -> None:
    engine = create_sync_engine(url)
    with engine.begin() as conn:
        for i, name in enumerate(names):
            conn.execute(text("INSERT INTO users (id, username, password_hash, created_at) VALUES (:i, :n, 'h', :t)"),
                         {"i": f"u{i}", "n": name, "t": NOW})
    engine.dispose()


def state(url: str) -> tuple[str, list[str], list[tuple[str, str]]]:
    engine = create_sync_engine(url)
    with engine.connect() as conn:
        version = conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
        meta = MetaData()
        meta.reflect(conn, only=["users"])
        columns = [c.name for c in meta.tables["users"].columns]
        rows = [(r.id, r.username) for r in conn.execute(text("SELECT id, username FROM users ORDER BY id"))]
    engine.dispose()
    return version, columns, rows


def test_existing_names_are_found_under_any_spelling_after_the_upgrade(db_at_0005: str) -> None:
    add_users(db_at_0005, "Alice", "Straße", "bob")
    upgrade(db_at_0005)

    async def lookups() -> dict[str, str | None]:
        store = SqlStore.from_url(db_at_0005)
        try:
            async with store.transaction() as tx:
                names = ("alice", "ＡＬＩＣＥ", "STRASSE", "Bob", "carol")
                found = {n: await tx.get_user_by_username(n) for n in names}
        finally:
            await store.close()
        return {n: u.id if u else None for n, u in found.items()}

    assert asyncio.run(lookups()) == {"alice": "u0", "ＡＬＩＣＥ": "u0", "STRASSE": "u1", "Bob": "u2", "carol": None}


def test_names_that_would_merge_stop_the_upgrade_and_nothing_changes(db_at_0005: str) -> None:
    add_users(db_at_0005, "alice", "ALICE", "ｂｏｂ", "bob", "carol")
    before = state(db_at_0005)
    with pytest.raises(RuntimeError) as refused:
        upgrade(db_at_0005)
    message = str(refused.value)
    assert "'ALICE' and 'alice'" in message and "'bob' and 'ｂｏｂ'" in message and "carol" not in message
    assert "tokenward users remove" in message
    assert state(db_at_0005) == before
    assert before[0] == "0005" and "username_key" not in before[1]


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_upgrade_that_fails_part_way_leaves_the_database_at_its_starting_revision(backend: str,
                                                                                    tmp_path: Path) -> None:
    """One transaction for the whole upgrade on both backends: 0005 applies, 0006 refuses, and 0005's index is
    rolled back with it. (Alembic commits after each revision on SQLite unless told DDL is transactional;
    a concurrent upgrade could then slip in between two revisions.)"""
    url = f"sqlite:///{tmp_path / 'p.db'}" if backend == "sqlite" else create_pg_database()
    try:
        upgrade(url, "0004")
        add_users(url, "alice", "ALICE")
        with pytest.raises(RuntimeError, match="would become one name"):
            upgrade(url)
        engine = create_sync_engine(url)
        with engine.connect() as conn:
            assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one() == "0004"
            meta = MetaData()
            meta.reflect(conn, only=["rate_limits"])
            assert "ix_rate_limits_locked_until" not in {i.name for i in meta.tables["rate_limits"].indexes}
        engine.dispose()
    finally:
        if backend == "postgresql":
            drop_pg_database(url)
