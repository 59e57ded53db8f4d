"""Single-flight refresh, counted at the authorization server: 50 threads → 1 refresh request, 50 asyncio tasks
→ 1, two processes sharing one encrypted file store → 1.

Each caller holds an access token that the client sees as expired *and* the API refuses, so every one of them
needs a new token at the same moment; the server's access log counts the requests that reach ``/token``.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import httpx2
import pytest

from tests.client.kit import ROOT, ProtectedApi, audit_events, expired, settled, sign_in, token_posts
from tests.support import ServerProcess
from tokenward.client import BearerAuth, EncryptedFileTokenStore, KeyFileKey, MemoryTokenStore

pytestmark = pytest.mark.e2e
CALLERS = 50


def test_fifty_threads_send_one_refresh_request_when_token_expired_together(
        server: ServerProcess, api: ProtectedApi) -> None:
    client, token = sign_in(server)
    api.reject.add(token.access_token)
    auth = BearerAuth(server.metadata()["token_endpoint"], client.client_id, store=MemoryTokenStore(expired(token)))
    auth.manager.current()
    barrier = threading.Barrier(CALLERS)
    statuses: list[int] = []
    before = settled(lambda: token_posts(server))

    with httpx2.Client(auth=auth, limits=httpx2.Limits(max_connections=CALLERS)) as http:
        def call() -> None:
            barrier.wait()
            statuses.append(http.get(api.url + "/user/profile").status_code)

        threads = [threading.Thread(target=call) for _ in range(CALLERS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)

    assert statuses == [200] * CALLERS
    assert settled(lambda: token_posts(server), before + 1) - before == 1
    assert audit_events(server, client.client_id, "token.refreshed") == 1
    assert token.access_token not in api.presented  # nobody used the stale token
    assert len(set(api.presented)) == 1


def test_fifty_asyncio_tasks_send_one_refresh_request_when_token_expired_together(
        server: ServerProcess, api: ProtectedApi) -> None:
    client, token = sign_in(server)
    api.reject.add(token.access_token)
    auth = BearerAuth(server.metadata()["token_endpoint"], client.client_id, store=MemoryTokenStore(expired(token)))
    before = settled(lambda: token_posts(server))

    async def run() -> list[int]:
        async with httpx2.AsyncClient(auth=auth, limits=httpx2.Limits(max_connections=CALLERS)) as http:
            responses = await asyncio.gather(*(http.get(api.url + "/user/profile") for _ in range(CALLERS)))
        return [r.status_code for r in responses]

    assert asyncio.run(run()) == [200] * CALLERS
    assert settled(lambda: token_posts(server), before + 1) - before == 1
    assert audit_events(server, client.client_id, "token.refreshed") == 1
    assert len(set(api.presented)) == 1


def test_two_processes_sharing_a_file_store_send_one_refresh_request_when_token_expired(
        server: ServerProcess, api: ProtectedApi, tmp_path: Path) -> None:
    client, token = sign_in(server)
    api.reject.add(token.access_token)
    store_path, key_path, go = tmp_path / "tokens.json", tmp_path / "store.key", tmp_path / "go"
    EncryptedFileTokenStore(store_path, key=KeyFileKey(key_path)).save(expired(token))
    before = settled(lambda: token_posts(server))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    children = [subprocess.Popen(
        [sys.executable, "-m", "tests.client.child", "call", "--token-endpoint", server.metadata()["token_endpoint"],
         f"--client-id={client.client_id}", "--store", str(store_path), "--key", str(key_path),
         "--url", api.url + "/user/profile", "--threads", "5", "--go", str(go)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    try:
        for child in children:  # both hold the stale token before either starts
            assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        go.touch()
        results = [child.communicate(timeout=60) for child in children]
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()
    for child, (out, err) in zip(children, results, strict=True):
        assert child.returncode == 0, err
        assert json.loads(out)["statuses"] == [200] * 5
    assert settled(lambda: token_posts(server), before + 1) - before == 1
    assert audit_events(server, client.client_id, "token.refreshed") == 1
    assert audit_events(server, client.client_id, "refresh.reuse_detected") == 0
    assert len(set(api.presented)) == 1 and token.access_token not in api.presented
