"""Fixtures: a real ``tokenward serve`` on 127.0.0.1 on a real database — an SQLite file, and a fresh
database on the PostgreSQL server at 127.0.0.1:5432 — so every end-to-end test runs on both backends.

``TOKENWARD_TEST_BACKENDS=sqlite`` (or ``postgresql``) narrows the run while developing; ``make test`` and CI
run both, and a PostgreSQL that cannot be reached is an error, never a skip.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import ServerProcess, free_port

BACKENDS = [b for b in os.environ.get("TOKENWARD_TEST_BACKENDS", "sqlite,postgresql").split(",") if b]
PG_ADMIN_URL = os.environ.get("TOKENWARD_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


def create_pg_database() -> str:
    """A fresh, empty database on the test PostgreSQL server; returns its URL."""
    import psycopg

    name = f"tw_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"


def drop_pg_database(url: str) -> None:
    import psycopg

    name = url.rsplit("/", 1)[1]
    with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def new_server(tmp: Path, backend: str = "sqlite") -> ServerProcess:
    tmp.mkdir(parents=True, exist_ok=True)
    db_url = f"sqlite:///{tmp / 'tokenward.db'}" if backend == "sqlite" else create_pg_database()
    return ServerProcess(base_url=f"http://127.0.0.1:{free_port()}", db_url=db_url, log_path=tmp / "server.log",
                         workdir=tmp)


def dispose(proc: ServerProcess) -> None:
    proc.stop()
    if proc.db_url.startswith("postgresql"):
        drop_pg_database(proc.db_url)


@pytest.fixture(scope="session", params=BACKENDS)
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One server per backend for the session; tests create their own clients and users."""
    proc = new_server(tmp_path_factory.mktemp(f"server-{request.param}"), request.param)
    proc.start()
    yield proc
    dispose(proc)


@pytest.fixture(params=BACKENDS)
def fresh_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ServerProcess]:
    """A server of the test's own (not started: the test passes its own options to ``start``)."""
    proc = new_server(tmp_path / "server", request.param)
    yield proc
    dispose(proc)
