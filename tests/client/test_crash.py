"""Crash safety: a client killed right after a refresh keeps a working refresh token, and a write interrupted
before the rename leaves the previous tokens intact."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.client.kit import ROOT, ProtectedApi, audit_events, expired, sign_in
from tests.support import ServerProcess
from tokenward.client import EncryptedFileTokenStore, KeyFileKey

pytestmark = pytest.mark.e2e


def child(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tests.client.child", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT)})


def test_next_run_has_working_refresh_token_when_client_was_killed_right_after_refresh(
        server: ServerProcess, api: ProtectedApi, tmp_path: Path) -> None:
    client, token = sign_in(server)
    store_path, key_path = tmp_path / "tokens.json", tmp_path / "store.key"
    store = EncryptedFileTokenStore(store_path, key=KeyFileKey(key_path))
    store.save(expired(token))
    common = ["--token-endpoint", server.metadata()["token_endpoint"], f"--client-id={client.client_id}",
              "--store", str(store_path), "--key", str(key_path), "--url", api.url + "/user/profile"]

    killed = child("call", *common, "--crash-after-refresh")
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert killed.stdout.strip() == "ready"  # it died before making its API call
    assert audit_events(server, client.client_id, "token.refreshed") == 1  # the server did rotate

    persisted = EncryptedFileTokenStore(store_path, key=KeyFileKey(key_path)).load()
    assert persisted is not None and persisted.refresh_token not in (None, token.refresh_token)
    assert api.presented == []

    # Next run: the API refuses the access token, so the new process must use the persisted refresh token.
    api.reject.add(persisted.access_token)
    again = child("call", *common)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout.splitlines()[-1])["statuses"] == [200]
    assert audit_events(server, client.client_id, "token.refreshed") == 2
    assert audit_events(server, client.client_id, "refresh.reuse_detected") == 0


def test_previous_tokens_survive_when_process_is_killed_between_fsync_and_rename(tmp_path: Path) -> None:
    store_path, key_path = tmp_path / "tokens.json", tmp_path / "store.key"
    result = child("store-crash", "--store", str(store_path), "--key", str(key_path))
    assert result.returncode == -signal.SIGKILL and result.stdout.strip() == "saved A"
    token = EncryptedFileTokenStore(store_path, key=KeyFileKey(key_path)).load()
    assert token is not None and (token.access_token, token.refresh_token) == ("access-A", "refresh-A")
    leftovers = [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    assert len(leftovers) == 1 and oct(leftovers[0].stat().st_mode & 0o777) == "0o600"
