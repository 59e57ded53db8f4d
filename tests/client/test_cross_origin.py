"""A token never leaves the origin it was attached for (issue #12 §2.3): an API that redirects to another
origin whose answer is a 401 ``invalid_token`` must neither receive the token there nor cause a refresh.

Two real HTTP servers on loopback: the API (127.0.0.1) redirects cross-origin to an "attacker" (127.0.0.2, another
host and port) that records every Authorization header it receives and answers 401 ``invalid_token``.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import httpx2
import pytest
import requests

from tests.client.kit import settled, sign_in, token_posts
from tests.support import ServerProcess
from tokenward.client import BearerAuth, MemoryTokenStore

pytestmark = pytest.mark.e2e

CHALLENGE = 'Bearer realm="evil", error="invalid_token"'


class Origin:
    """A tiny real HTTP server: ``/go`` redirects to ``target`` (if set); everything else answers 401
    ``invalid_token`` (or 200 when ``ok``); every request's Authorization header is recorded."""

    def __init__(self, host: str, *, ok: bool = False) -> None:
        self.seen: list[tuple[str, str | None]] = []
        self.target: str | None = None
        origin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                origin.seen.append((self.path, self.headers.get("Authorization")))
                if self.path == "/go" and origin.target is not None:
                    self.send_response(302)
                    self.send_header("Location", origin.target)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                body = json.dumps({"error": "invalid_token"} if not ok else {"ok": True}).encode()
                self.send_response(200 if ok else 401)
                if not ok:
                    self.send_header("WWW-Authenticate", CHALLENGE)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer((host, 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://{host}:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def origins() -> Iterator[tuple[Origin, Origin]]:
    """(the API, the attacker): the API's ``/go`` redirects to the attacker's ``/steal``."""
    api, attacker = Origin("127.0.0.1"), Origin("127.0.0.2")
    api.target = attacker.url + "/steal"
    yield api, attacker
    api.stop()
    attacker.stop()


def _requests(auth: BearerAuth, url: str) -> int:
    with requests.Session() as session:
        session.auth = auth.requests_auth()
        return session.get(url, timeout=10).status_code


def _sync(client_class: Any) -> Any:
    def call(auth: BearerAuth, url: str) -> int:
        with client_class(auth=auth, follow_redirects=True, timeout=10) as http:
            return int(http.get(url).status_code)
    return call


def _async(client_class: Any) -> Any:
    def call(auth: BearerAuth, url: str) -> int:
        async def go() -> int:
            async with client_class(auth=auth, follow_redirects=True, timeout=10) as http:
                return int((await http.get(url)).status_code)
        return asyncio.run(go())
    return call


ADAPTERS = pytest.mark.parametrize("call", [
    _requests, _sync(httpx2.Client), _async(httpx2.AsyncClient), _sync(httpx.Client), _async(httpx.AsyncClient),
], ids=["requests", "httpx2-sync", "httpx2-async", "httpx-sync", "httpx-async"])


@ADAPTERS
def test_token_is_not_sent_and_not_refreshed_when_a_redirect_lands_on_another_origin_answering_401(
        server: ServerProcess, origins: tuple[Origin, Origin], call: Any) -> None:
    api, attacker = origins
    client, token = sign_in(server)
    auth = BearerAuth(server.metadata()["token_endpoint"], client.client_id, store=MemoryTokenStore(token))
    before = settled(lambda: token_posts(server))
    assert call(auth, api.url + "/go") == 401  # the foreign 401 is handed back as it is
    assert api.seen == [("/go", f"Bearer {token.access_token}")]  # the configured origin got the token, once
    assert attacker.seen == [("/steal", None)]  # the other origin never saw any token
    assert settled(lambda: token_posts(server)) == before  # and its 401 caused no refresh
    assert auth.manager.current() == token


@ADAPTERS
def test_a_401_after_a_same_origin_redirect_still_refreshes_once(server: ServerProcess, call: Any) -> None:
    """The origin check keeps refresh-on-401 for the API's own redirects (same host and port)."""
    api = Origin("127.0.0.1")
    api.target = api.url + "/moved"
    try:
        client, token = sign_in(server)
        auth = BearerAuth(server.metadata()["token_endpoint"], client.client_id, store=MemoryTokenStore(token))
        before = settled(lambda: token_posts(server))
        assert call(auth, api.url + "/go") == 401
        assert settled(lambda: token_posts(server), before + 1) == before + 1
        renewed = auth.manager.current()
        assert renewed is not None and renewed.access_token != token.access_token
        assert api.seen[1] == ("/moved", f"Bearer {token.access_token}")
        assert api.seen[-1][1] == f"Bearer {renewed.access_token}"  # the retry carried the new token, here
    finally:
        api.stop()
