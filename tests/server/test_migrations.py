"""Migrations create exactly the schema the code uses, on both backends, and concurrent upgrades are safe."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from tests.conftest import BACKENDS, create_pg_database, drop_pg_database
from tests.support import TOKENWARD
from tokenward.server.store.sql.engine import create_sync_engine
from tokenward.server.store.sql.tables import metadata


@pytest.mark.parametrize("backend", BACKENDS)
def test_migrations_match_tables_when_upgraded_concurrently(backend: str, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'm.db'}" if backend == "sqlite" else create_pg_database()
    try:
        # three processes migrate one empty database at once, as three workers or hosts starting together
        runs = [subprocess.Popen([TOKENWARD, "db", "upgrade", "--db", url], stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, text=True) for _ in range(3)]
        for run in runs:
            output, _ = run.communicate(timeout=120)
            assert run.returncode == 0, output
        engine = create_sync_engine(url)
        with engine.connect() as conn:
            assert compare_metadata(MigrationContext.configure(conn), metadata) == []
        engine.dispose()
    finally:
        if backend == "postgresql":
            drop_pg_database(url)
