"""Scale-out and faults: two server processes on one database serve one flow; a database outage answers
503 and loses nothing; a server killed with SIGKILL mid-refresh never lets a refresh token work twice."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

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


IN_FLIGHT = 16  # refreshes the kill interrupts; with 2 workers, within one worker's 20 pooled connections


def wait_for(condition: Callable[[], bool], what: str, seconds: float = 20) -> None:
    """Poll ``condition`` (an observable state, not a guess at timing) until it holds."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not observed in {seconds} s: {what}")
        time.sleep(0.02)


def unanswered_connections(server: ServerProcess) -> int:
    """Server-side evidence: TCP connections to the server's port that one of its processes accepted and
    read everything from (receive queue empty) while nothing was sent back (send queue empty, and the client
    has no answer). Linux /proc: /proc/net/tcp rows matched to the sockets the server's processes hold."""
    assert server.process is not None
    inodes: set[str] = set()
    for proc in Path("/proc").iterdir():
        try:
            if not proc.name.isdigit() or os.getpgid(int(proc.name)) != server.process.pid:
                continue
            for fd in (proc / "fd").iterdir():
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
        except (ProcessLookupError, FileNotFoundError, PermissionError):
            continue
    port = f"{urlsplit(server.base_url).port:04X}"
    count = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, state, queues, inode = fields[1], fields[3], fields[4], fields[9]
        if local.endswith(":" + port) and state == "01" and queues == "00000000:00000000" and inode in inodes:
            count += 1
    return count


@contextmanager
def writes_held(server: ServerProcess) -> Iterator[Callable[[], int] | None]:
    """Hold back every refresh mid-way until the block exits; on PostgreSQL, yields a count of the refresh
    transactions the database shows waiting.

    PostgreSQL: ``LOCK TABLE access_tokens IN SHARE MODE`` lets a refresh lock its family, consume the
    presented token and insert its successor, then wait on the access-token INSERT: a half-written
    transaction, seen in pg_stat_activity. SQLite: the test holds the write lock (BEGIN IMMEDIATE), so a
    refresh waits before its first write (the server's loop retries without blocking); SQLite shows no
    waiters, and None is yielded."""
    if server.db_url.startswith("postgresql"):
        import psycopg

        with psycopg.connect(server.db_url, connect_timeout=5) as conn:
            conn.execute("LOCK TABLE access_tokens IN SHARE MODE")
            db = server.db_url.rsplit("/", 1)[1]

            def waiting() -> int:
                with psycopg.connect(server.db_url, autocommit=True, connect_timeout=5) as probe:
                    row = probe.execute(
                        "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND wait_event_type = 'Lock'"
                        " AND query LIKE 'INSERT INTO access_tokens%%' AND xact_start IS NOT NULL", (db,)).fetchone()
                return int(row[0]) if row else 0

            try:
                yield waiting
            finally:
                conn.rollback()
        return
    import sqlite3

    lock = sqlite3.connect(server.db_url.removeprefix("sqlite:///"), isolation_level=None, timeout=10)
    try:
        lock.execute("BEGIN IMMEDIATE")
        yield None
        lock.execute("ROLLBACK")
    finally:
        lock.close()


def test_sigkill_mid_refresh_never_accepts_a_refresh_token_twice(fresh_server: ServerProcess) -> None:
    """SIGKILL to the whole server (supervisor and both workers) while IN_FLIGHT refreshes are proven in
    flight: each one read by a worker and unanswered, and on PostgreSQL each one inside its transaction
    after consuming its token and inserting the successor. Nothing of them survives: afterwards each
    presented token works exactly once, and no refresh token is accepted twice."""
    server = fresh_server
    server.start(workers=2)
    client = server.add_client(public=True, redirect_uri="http://127.0.0.1/cb")
    user = server.add_user()
    with httpx2.Client(base_url=server.base_url, follow_redirects=False) as browser:
        families = [exchange_code(server, client, authorize(server, client, user, browser=browser,
                                                            redirect_uri="http://127.0.0.1:9/cb")).json()
                    for _ in range(IN_FLIGHT)]
    tokens = [f["refresh_token"] for f in families]
    state = ("SELECT (SELECT COUNT(*) FROM refresh_tokens), (SELECT COUNT(consumed_at) FROM refresh_tokens),"
             " (SELECT COUNT(*) FROM access_tokens)")
    before_kill = server.query(state)

    def refresh(token: str) -> str:
        """The outcome: the status code, or the exception when the server answered nothing."""
        try:
            return str(server.token(client, {"grant_type": "refresh_token", "refresh_token": token}).status_code)
        except httpx2.HTTPError as error:
            return type(error).__name__

    with writes_held(server) as waiting, ThreadPoolExecutor(IN_FLIGHT) as pool:
        futures = [pool.submit(refresh, token) for token in tokens]
        wait_for(lambda: unanswered_connections(server) == IN_FLIGHT, f"{IN_FLIGHT} requests read by the workers")
        if waiting is not None:
            wait_for(lambda: waiting() == IN_FLIGHT, f"{IN_FLIGHT} half-written refresh transactions")
        assert not any(f.done() for f in futures)  # no client has an answer: all in flight at the kill
        assert server.process is not None
        os.killpg(server.process.pid, signal.SIGKILL)
        first = Counter(f.result() for f in futures)
    server.process.wait()
    server.process = None
    # Every request was cut off: sent, read, and never answered (no status code at all).
    assert sum(first.values()) == IN_FLIGHT and not any(k.isdigit() for k in first), first
    if server.db_url.startswith("postgresql"):  # the killed server's transactions end (rolled back)
        wait_for(lambda: server.query("SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database()"
                                      " AND pid <> pg_backend_pid()") == [(0,)], "the killed server's sessions end")
    # No half-written state: no token consumed, no successor kept, no access token recorded.
    assert server.query(state) == before_kill
    server.start(workers=2)

    second = [refresh(token) for token in tokens]
    assert second == ["200"] * IN_FLIGHT, second  # the interrupted refresh left each token unused
    third = [refresh(token) for token in tokens]
    assert third == ["400"] * IN_FLIGHT, third  # ... and single use still holds: never accepted twice
    active = server.query("SELECT grant_id, COUNT(*) FROM refresh_tokens "
                          "WHERE consumed_at IS NULL AND revoked_at IS NULL GROUP BY grant_id")
    assert all(count <= 1 for _, count in active)
