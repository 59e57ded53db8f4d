"""Fixtures for the client tests: a real server, a protected API in front of it, and an isolated user config
directory with the OS keyring switched off (tests that want a real keyring start their own Secret Service).

The client never sees the server's database, so its suite runs against one backend (the first of
``TOKENWARD_TEST_BACKENDS``, normally SQLite) instead of every one; ``TOKENWARD_CLIENT_TEST_BACKENDS=sqlite,postgresql``
runs it on both.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import keyring
import pytest
from keyring.backends import fail

from tests.client.kit import ProtectedApi
from tests.conftest import BACKENDS, dispose, new_server
from tests.support import ServerProcess

CLIENT_BACKENDS = [b for b in os.environ.get("TOKENWARD_CLIENT_TEST_BACKENDS", BACKENDS[0]).split(",") if b]


@pytest.fixture(scope="session", params=CLIENT_BACKENDS)
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """The client suite's own ``tokenward serve`` (tests create their own clients and users)."""
    proc = new_server(tmp_path_factory.mktemp(f"client-server-{request.param}"), request.param)
    proc.start()
    yield proc
    dispose(proc)


@pytest.fixture(autouse=True)
def no_os_keyring(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Never touch the developer's real keyring: in this process and in the CLI subprocesses we start."""
    previous = keyring.get_keyring()
    keyring.set_keyring(fail.Keyring())
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.fail.Keyring")
    monkeypatch.delenv("TOKENWARD_TOKEN_PASSPHRASE", raising=False)
    yield
    keyring.set_keyring(previous)


@pytest.fixture
def config_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``XDG_CONFIG_HOME`` for this test (the CLI keeps tokens in ``<it>/tokenward``)."""
    home = tmp_path / "config"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home))
    return home


@pytest.fixture
def api(server: ServerProcess) -> Iterator[ProtectedApi]:
    metadata = server.metadata()
    protected = ProtectedApi(metadata["issuer"], metadata["jwks_uri"]).start()
    yield protected
    protected.stop()
