"""Fixtures: a real ``tokenward serve`` on 127.0.0.1 with a real SQLite file, shared per test session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import ServerProcess, free_port


def new_server(tmp: Path) -> ServerProcess:
    port = free_port()
    tmp.mkdir(parents=True, exist_ok=True)
    return ServerProcess(base_url=f"http://127.0.0.1:{port}", db_url=f"sqlite:///{tmp / 'tokenward.db'}",
                         log_path=tmp / "server.log", workdir=tmp)


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One server for the session; tests create their own clients and users so they never interfere."""
    proc = new_server(tmp_path_factory.mktemp("server"))
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture
def fresh_server(tmp_path: Path) -> Iterator[ServerProcess]:
    """A server of the test's own (for tests that read the whole log or change settings)."""
    proc = new_server(tmp_path / "server")
    yield proc
    proc.stop()
