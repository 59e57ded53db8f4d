"""Test kit for the client: a protected API that really verifies tokens, sign-in helpers and refresh counters.

The protected API stands in for the resource server: it verifies the bearer JWT against the issuer's JWKS
with joserfc (signature, ``iss``, ``exp``) and answers 401 ``error="invalid_token"`` when the token is bad,
expired, or one the test told it to reject.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx2
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from tests.support import ClientInfo, ServerProcess, authorize, exchange_code
from tokenward.client.flow import HttpResponse, Token, parse_token_response

ROOT = Path(__file__).resolve().parents[2]
LOOPBACK = "http://127.0.0.1/callback"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage"]


class ProtectedApi:
    """``GET /user/profile`` and ``POST /echo`` behind bearer tokens, on 127.0.0.1 and a free port."""

    def __init__(self, issuer: str, jwks_uri: str) -> None:
        self.issuer = issuer
        self.keys = KeySet.import_key_set(httpx2.get(jwks_uri).json())
        self.reject: set[str] = set()
        self.presented: list[str] = []
        self.lock = threading.Lock()
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _answer(self, status: int, body: dict[str, Any], challenge: str | None = None) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                if challenge:
                    self.send_header("WWW-Authenticate", challenge)
                self.end_headers()
                self.wfile.write(data)

            def _check(self) -> dict[str, Any] | None:
                header = self.headers.get("Authorization", "")
                if not header.startswith("Bearer "):
                    self._answer(401, {"error": "unauthorized"}, 'Bearer realm="test"')
                    return None
                token = header[len("Bearer "):]
                with api.lock:
                    api.presented.append(token)
                claims = api.verify(token)
                if claims is None:
                    self._answer(401, {"error": "invalid_token"},
                                 'Bearer realm="test", error="invalid_token", error_description="expired or revoked"')
                return claims

            def do_GET(self) -> None:
                claims = self._check()
                if claims is not None:
                    self._answer(200, {"sub": claims["sub"], "client_id": claims.get("client_id"),
                                       "scope": claims.get("scope")})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    body = self._read_chunked()
                claims = self._check()
                if claims is not None:
                    self._answer(200, {"sub": claims["sub"], "received": body.decode()})

            def _read_chunked(self) -> bytes:
                out = b""
                while True:
                    size = int(self.rfile.readline().strip() or b"0", 16)
                    if size == 0:
                        self.rfile.readline()
                        return out
                    out += self.rfile.read(size)
                    self.rfile.readline()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.request_queue_size = 128
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def verify(self, token: str) -> dict[str, Any] | None:
        if token in self.reject:
            return None
        try:
            decoded = jwt.decode(token, self.keys, algorithms=["ES256", "RS256", "EdDSA"])
            jwt.JWTClaimsRegistry(iss={"essential": True, "value": self.issuer},
                                  exp={"essential": True}).validate(decoded.claims)
        except (JoseError, ValueError):
            return None
        return dict(decoded.claims)

    def start(self) -> ProtectedApi:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


def token_from(response: httpx2.Response) -> Token:
    return parse_token_response(HttpResponse(response.status_code, dict(response.headers), response.content))


def sign_in(server: ServerProcess, *, ttl: int | None = None, scope: str = "profile:read",
            public: bool = True) -> tuple[ClientInfo, Token]:
    """A new client and user, and the tokens of a completed code flow (driven over HTTP)."""
    client = server.add_client(public=public, redirect_uri=LOOPBACK, access_token_ttl=ttl,
                               scope="profile:read profile:write")
    auth = authorize(server, client, server.add_user(), scope=scope, redirect_uri="http://127.0.0.1:9/callback")
    response = exchange_code(server, client, auth)
    assert response.status_code == 200, response.text
    return client, token_from(response)


def expired(token: Token) -> Token:
    """The same token as a client would see it after its expiry (the server's copy is unchanged)."""
    return replace(token, expires_at=time.time() - 1, obtained_at=time.time() - 601)


def token_posts(server: ServerProcess) -> int:
    """How many requests reached the server's token endpoint so far (its JSON access log)."""
    return sum(1 for line in server.log_text().splitlines()
               if '"logger": "tokenward.access"' in line and '"path": "/token"' in line)


def settled(count: Callable[[], int], at_least: int = 0, wait: float = 5.0) -> int:
    """``count()`` once the server's log has caught up (it writes the line after answering)."""
    deadline = time.monotonic() + wait
    value = count()
    while value < at_least and time.monotonic() < deadline:
        time.sleep(0.05)
        value = count()
    time.sleep(0.3)
    return count()


def audit_events(server: ServerProcess, client_id: str, event: str) -> int:
    """How many ``event`` audit lines the server wrote for ``client_id`` (e.g. ``token.refreshed``)."""
    n = 0
    for line in server.log_text().splitlines():
        if f'"event": "{event}"' in line:
            n += json.loads(line).get("client_id") == client_id
    return n


def browse_login(url: str, username: str, password: str, decision: str = "allow") -> httpx2.Response:
    """What a user does in the browser, over HTTP: open the authorization URL, sign in, decide, and follow
    the redirect to the loopback listener. Returns the listener's answer."""
    from tests.support import hidden_fields

    with httpx2.Client(follow_redirects=False, timeout=10) as browser:
        r = browser.get(url)
        assert r.status_code == 303, r.text
        base = f"{httpx2.URL(url).scheme}://{httpx2.URL(url).netloc.decode()}"
        login = browser.get(base + r.headers["location"])
        r = browser.post(base + "/login", data={**hidden_fields(login.text), "username": username,
                                                 "password": password})
        assert r.status_code == 303, r.text
        location = r.headers["location"]
        if location.startswith("/consent"):
            consent = browser.get(base + location)
            r = browser.post(base + "/consent", data={**hidden_fields(consent.text), "decision": decision})
            assert r.status_code == 303, r.text
            location = r.headers["location"]
        return browser.get(location)
