"""Shared test support: a real ``tokenward serve`` process on 127.0.0.1 and helpers to drive it.

Clients and users are created through the admin layer against the server's own SQLite file (the same code
the CLI runs), so each test gets fresh ones in milliseconds; tests of the CLI itself run the real command.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx2

from tokenward.protocol.pkce import new_verifier, s256
from tokenward.server import admin
from tokenward.server.store.sql.store import SqlStore

TOKENWARD = str(Path(sys.executable).with_name("tokenward"))
PASSWORD = "correct horse battery"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class ClientInfo:
    client_id: str
    client_secret: str | None
    redirect_uri: str | None
    public: bool


@dataclass
class ServerProcess:
    """A running ``tokenward serve``; ``log_path`` collects everything it writes."""

    base_url: str
    db_url: str
    log_path: Path
    workdir: Path
    process: subprocess.Popen[bytes] | None = None
    secrets_seen: list[str] = field(default_factory=list)
    # An https server's CA certificate (PEM) for its clients to trust; None for http or a public CA.
    ca_file: Path | None = None

    @property
    def verify(self) -> ssl.SSLContext | bool:
        """``verify=`` for httpx2 clients of this server: a context trusting only ``ca_file`` when set."""
        return ssl.create_default_context(cafile=str(self.ca_file)) if self.ca_file is not None else True

    # -- lifecycle
    def start(self, *extra: str, workers: int = 1, env: dict[str, str] | None = None) -> None:
        port = urlsplit(self.base_url).port
        assert port is not None
        log = open(self.log_path, "ab")  # noqa: SIM115 - closed by the process's exit
        self.process = subprocess.Popen(
            [TOKENWARD, "serve", "--host", "127.0.0.1", "--port", str(port), "--db", self.db_url,
             "--workers", str(workers), *extra],
            stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir,
            # Shared test servers see thousands of deliberate failures from 127.0.0.1: rate limits are off
            # unless a test turns them on (tests/e2e/test_rate_limits.py runs with the defaults).
            env={**os.environ, "TOKENWARD_KEK_FILE": str(self.workdir / "tokenward.kek"),
                 "TOKENWARD_RATE_LIMITS": "off", **(env or {})},
            start_new_session=True,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"tokenward serve exited: {self.log_path.read_text()[-2000:]}")
            try:
                r = httpx2.get(self.base_url + "/.well-known/oauth-authorization-server", timeout=1,
                               verify=self.verify)
                if r.status_code == 200 and self._all_workers_listen(port, workers):
                    return
            except httpx2.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError("tokenward serve did not start in 30 s")

    @staticmethod
    def _all_workers_listen(port: int, workers: int) -> bool:
        """With ``--workers N`` on Linux each worker listens on its own ``SO_REUSEPORT`` socket: the first
        answer comes from the first worker up, while the others may still be importing. Until all N listen
        the kernel gives every connection to the ones that do, so a test that starts loading at once sees
        one worker do everything. Counted from /proc/net/tcp{,6} (state 0A is LISTEN)."""
        if workers <= 1 or not sys.platform.startswith("linux"):
            return True
        listening = 0
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            try:
                lines = Path(table).read_text().splitlines()[1:]
            except OSError:
                continue
            for line in lines:
                fields = line.split()
                if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                    listening += 1
        return listening >= workers

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.process = None

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        """Rows of a read-only query on the server's database (SQLite or PostgreSQL)."""
        from sqlalchemy import create_engine, text

        url = self.db_url.replace("postgresql://", "postgresql+psycopg://", 1)
        engine = create_engine(url)
        try:
            with engine.connect() as conn:
                return [tuple(row) for row in conn.execute(text(sql))]
        finally:
            engine.dispose()

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    # -- admin, through the same layer as the CLI
    def _run(self, coro_factory: Any) -> Any:
        async def go() -> Any:
            store = SqlStore.from_url(self.db_url)
            try:
                return await coro_factory(store)
            finally:
                await store.close()
        return asyncio.run(go())

    def add_client(self, *, public: bool = False, redirect_uri: str | None = "https://app.example/cb",
                   grant_types: tuple[str, ...] = (), scope: str = "profile:read profile:write",
                   audiences: tuple[str, ...] = (), access_token_ttl: int | None = None,
                   signing_alg: str | None = None, redirect_uris: tuple[str, ...] | None = None,
                   **oidc: Any) -> ClientInfo:
        """A client through admin.add_client; ``oidc`` passes its OpenID Connect options (id_token_signing_alg,
        post_logout_redirect_uris, pkce_optional)."""
        uris = list(redirect_uris) if redirect_uris is not None else ([redirect_uri] if redirect_uri else [])
        if not grant_types:
            grant_types = ("authorization_code", "refresh_token") if public else (
                "authorization_code", "refresh_token", "client_credentials")
        created = self._run(lambda store: admin.add_client(
            store, f"test-{uuid.uuid4().hex[:8]}", public=public, redirect_uris=uris,
            grant_types=list(grant_types), scope=scope, audiences=list(audiences),
            access_token_ttl=access_token_ttl, signing_alg=signing_alg, **oidc))
        if created.client_secret:
            self.secrets_seen.append(created.client_secret)
        return ClientInfo(created.client.client_id, created.client_secret, uris[0] if uris else None, public)

    def add_user(self, username: str | None = None, password: str = PASSWORD) -> str:
        username = username or f"user-{uuid.uuid4().hex[:8]}"
        self._run(lambda store: admin.add_user(store, username, password))
        self.secrets_seen.append(password)
        return username

    # -- protocol helpers
    def metadata(self) -> dict[str, Any]:
        r = httpx2.get(self.base_url + "/.well-known/oauth-authorization-server", verify=self.verify)
        r.raise_for_status()
        data: dict[str, Any] = r.json()
        return data

    def token(self, client: ClientInfo | None, data: dict[str, str], *, basic: bool = True,
              headers: dict[str, str] | None = None) -> httpx2.Response:
        """POST /token, authenticating ``client`` with Basic (or post, or none for public clients)."""
        auth = None
        data = dict(data)
        if client is not None:
            if client.client_secret and basic:
                auth = httpx2.BasicAuth(client.client_id, client.client_secret)
            else:
                data["client_id"] = client.client_id
                if client.client_secret:
                    data["client_secret"] = client.client_secret
        r = httpx2.post(self.base_url + "/token", data=data, auth=auth, headers=headers, verify=self.verify)
        if r.status_code == 200:
            body = r.json()
            self.secrets_seen.extend(v for k, v in body.items() if k in ("access_token", "refresh_token"))
        return r


@dataclass
class Authorization:
    code: str
    verifier: str
    redirect_uri: str
    location: str
    params: dict[str, str]


def query_of(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query, keep_blank_values=True).items()}


def authorize(server: ServerProcess, client: ClientInfo, username: str, *, password: str = PASSWORD,
              scope: str | None = "profile:read", state: str = "st-123", redirect_uri: str | None = None,
              browser: httpx2.Client | None = None, decision: str = "allow",
              extra: dict[str, str] | None = None, pkce: bool = True) -> Authorization:
    """Drive /authorize → login → consent with a cookie-keeping HTTP client; returns the code.
    ``pkce=False`` sends no code_challenge (for clients registered with --pkce-optional)."""
    verifier = new_verifier()
    redirect_uri = redirect_uri or client.redirect_uri
    assert redirect_uri is not None
    params = {"response_type": "code", "client_id": client.client_id, "redirect_uri": redirect_uri,
              "state": state}
    if pkce:
        params.update({"code_challenge": s256(verifier), "code_challenge_method": "S256"})
    if scope is not None:
        params["scope"] = scope
    params.update(extra or {})
    own = browser is None
    browser = browser or httpx2.Client(base_url=server.base_url, follow_redirects=False, verify=server.verify)
    try:
        r = browser.get("/authorize", params=params)
        assert r.status_code == 303, r.text
        location = r.headers["location"]
        if location.startswith("/login"):
            page = browser.get(location)
            assert page.status_code == 200
            form = hidden_fields(page.text)
            r = browser.post("/login", data={**form, "username": username, "password": password})
            assert r.status_code == 303, r.text
            location = r.headers["location"]
        if location.startswith("/consent"):
            page = browser.get(location)
            if page.status_code == 200:
                form = hidden_fields(page.text)
                r = browser.post("/consent", data={**form, "decision": decision})
            assert r.status_code == 303 or page.status_code == 303, page.text
            location = r.headers["location"] if page.status_code == 200 else page.headers["location"]
        got = query_of(location)
        code = got.get("code", "")
        if code:
            server.secrets_seen.append(code)
        return Authorization(code=code, verifier=verifier, redirect_uri=redirect_uri, location=location,
                             params=got)
    finally:
        if own:
            browser.close()


def hidden_fields(html: str) -> dict[str, str]:
    return dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', html))


def exchange_code(server: ServerProcess, client: ClientInfo, auth: Authorization, **overrides: str
                  ) -> httpx2.Response:
    data = {"grant_type": "authorization_code", "code": auth.code, "redirect_uri": auth.redirect_uri,
            "code_verifier": auth.verifier}
    data.update(overrides)
    return server.token(client, {k: v for k, v in data.items() if v is not None})
