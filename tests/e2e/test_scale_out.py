"""Scale-out and faults: two server processes on one database serve one flow; a database outage answers
503 and loses nothing; a server killed with SIGKILL mid-refresh never lets a refresh token work twice."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx2
import pytest

from tests.conftest import BACKENDS, create_pg_database, drop_pg_database
from tests.support import ClientInfo, ServerProcess, authorize, exchange_code, free_port, hidden_fields, query_of
from tokenward.protocol import pkce


def test_flow_steps_served_by_two_processes_sharing_the_database(fresh_server: ServerProcess, tmp_path: Path) -> None:
    a = fresh_server
    a.start()
    b = ServerProcess(base_url=f"http://127.0.0.1:{free_port()}", db_url=a.db_url, log_path=tmp_path / "b.log",
                      workdir=a.workdir)
    b.start("--issuer", a.base_url)
    try:
        client = a.add_client(public=True, redirect_uri="http://127.0.0.1/cb")
        user = a.add_user()
        verifier = pkce.new_verifier()
        with httpx2.Client(follow_redirects=False) as browser:  # cookies are per host, not per port
            r = browser.get(a.base_url + "/authorize", params={
                "response_type": "code", "client_id": client.client_id, "redirect_uri": "http://127.0.0.1:7/cb",
                "state": "s", "code_challenge": pkce.s256(verifier), "code_challenge_method": "S256"})
            login_page = browser.get(b.base_url + r.headers["location"])  # step 2 on the other process
            r = browser.post(b.base_url + "/login", data={**hidden_fields(login_page.text), "username": user,
                                                           "password": "correct horse battery"})
            assert r.status_code == 303, r.text
            consent_page = browser.get(a.base_url + r.headers["location"])
            r = browser.post(a.base_url + "/consent", data={**hidden_fields(consent_page.text), "decision": "allow"})
        params = query_of(r.headers["location"])
        assert params["iss"] == a.base_url
        tokens = httpx2.post(b.base_url + "/token", data={
            "grant_type": "authorization_code", "code": params["code"], "redirect_uri": "http://127.0.0.1:7/cb",
            "code_verifier": verifier, "client_id": client.client_id}).json()
        refreshed = httpx2.post(a.base_url + "/token", data={
            "grant_type": "refresh_token", "refresh_token": tokens["refresh_token"], "client_id": client.client_id})
        assert refreshed.status_code == 200
        reuse = httpx2.post(b.base_url + "/token", data={
            "grant_type": "refresh_token", "refresh_token": tokens["refresh_token"], "client_id": client.client_id})
        assert reuse.status_code == 400 and reuse.json()["error"] == "invalid_grant"
    finally:
        b.stop()


class TcpProxy:
    """A loopback TCP proxy to PostgreSQL that can be cut and restored: a real network outage."""

    def __init__(self, target_port: int = 5432) -> None:
        self.port = free_port()
        self.target_port = target_port
        self.loop = asyncio.new_event_loop()
        self.server: asyncio.Server | None = None
        self.writers: set[asyncio.StreamWriter] = set()
        threading.Thread(target=self.loop.run_forever, daemon=True).start()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        self.writers |= {writer, up_writer}
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))

    def start(self) -> None:
        async def go() -> None:
            self.server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        asyncio.run_coroutine_threadsafe(go(), self.loop).result(5)

    def cut(self) -> None:
        async def go() -> None:
            assert self.server is not None
            self.server.close()
            for w in self.writers:
                w.transport.abort()
            self.writers.clear()
            await self.server.wait_closed()
        asyncio.run_coroutine_threadsafe(go(), self.loop).result(5)


@dataclass
class ProxiedServer:
    server: ServerProcess
    proxy: TcpProxy
    client: ClientInfo
    refresh_token: str

    def refresh(self) -> httpx2.Response:
        return self.server.token(self.client, {"grant_type": "refresh_token", "refresh_token": self.refresh_token})


@pytest.fixture
def proxied(tmp_path: Path) -> Iterator[ProxiedServer]:
    """A server on a fresh PostgreSQL database reached through a TCP proxy the test can cut, with a
    signed-in public client's refresh token."""
    if "postgresql" not in BACKENDS:
        pytest.fail("this test needs the PostgreSQL backend (TOKENWARD_TEST_BACKENDS includes postgresql)")
    direct = create_pg_database()
    proxy = TcpProxy()
    proxy.start()
    server = ServerProcess(base_url=f"http://127.0.0.1:{free_port()}",
                           db_url=direct.replace(":5432/", f":{proxy.port}/"), log_path=tmp_path / "s.log",
                           workdir=tmp_path)
    try:
        server.start()
        client = server.add_client(public=True, redirect_uri="http://127.0.0.1/cb")
        tokens = exchange_code(server, client, authorize(server, client, server.add_user(),
                                                         redirect_uri="http://127.0.0.1:9/cb")).json()
        yield ProxiedServer(server, proxy, client, tokens["refresh_token"])
    finally:
        server.stop()
        drop_pg_database(direct)


def test_database_outage_answers_503_fast_and_loses_nothing(proxied: ProxiedServer) -> None:
    proxied.proxy.cut()
    started = time.monotonic()
    r = proxied.refresh()
    elapsed = time.monotonic() - started
    assert r.status_code == 503 and r.json()["error"] == "temporarily_unavailable"
    assert r.headers["cache-control"] == "no-store" and r.headers["retry-after"]
    assert elapsed < 7, elapsed
    proxied.proxy.start()
    assert proxied.refresh().status_code == 200  # nothing was consumed during the outage


def test_connections_broken_while_idle_are_replaced_before_use(proxied: ProxiedServer) -> None:
    """No pre-ping on every checkout: a pooled connection idle for over a second is pinged, and one the
    network cut while nobody used it is replaced, so the first request afterwards succeeds."""
    proxied.proxy.cut()  # every pooled connection dies while idle ...
    proxied.proxy.start()  # ... and the database is reachable again before the next request
    time.sleep(1.5)
    r = proxied.refresh()
    assert r.status_code == 200, r.text


def test_sigkill_mid_refresh_never_accepts_a_refresh_token_twice(fresh_server: ServerProcess) -> None:
    server = fresh_server
    server.start()
    client = server.add_client(public=True, redirect_uri="http://127.0.0.1/cb")
    user = server.add_user()
    with httpx2.Client(base_url=server.base_url, follow_redirects=False) as browser:
        families = [exchange_code(server, client, authorize(server, client, user, browser=browser,
                                                            redirect_uri="http://127.0.0.1:9/cb")).json()
                    for _ in range(24)]

    def refresh(token: str) -> int:
        try:
            return server.token(client, {"grant_type": "refresh_token", "refresh_token": token}).status_code
        except httpx2.HTTPError:
            return 0  # the server died under this request

    with ThreadPoolExecutor(24) as pool:
        futures = [pool.submit(refresh, f["refresh_token"]) for f in families]
        time.sleep(0.05)
        assert server.process is not None
        os.killpg(server.process.pid, signal.SIGKILL)
        first = [f.result() for f in futures]
    server.process.wait()
    server.process = None
    server.start()

    second = [refresh(f["refresh_token"]) for f in families]
    for before, after in zip(first, second, strict=True):
        assert not (before == 200 and after == 200), (before, after)  # never accepted twice
        assert after in (200, 400)
    active = server.query("SELECT grant_id, COUNT(*) FROM refresh_tokens "
                          "WHERE consumed_at IS NULL AND revoked_at IS NULL GROUP BY grant_id")
    assert all(count <= 1 for _, count in active)
