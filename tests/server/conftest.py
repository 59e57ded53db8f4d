"""Fixtures for the in-process store tests: a database migrated to head, on each backend."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import BACKENDS, create_pg_database, drop_pg_database
from tokenward.server.store.sql.migrate import upgrade


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh database at the head revision: an SQLite file, or a new database on the test PostgreSQL."""
    url = f"sqlite:///{tmp_path / 'store.db'}" if request.param == "sqlite" else create_pg_database()
    upgrade(url)
    yield url
    if request.param == "postgresql":
        drop_pg_database(url)
