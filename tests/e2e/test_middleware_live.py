"""``BearerAuthMiddleware`` under a real uvicorn on 127.0.0.1, trusting a real ``tokenward serve`` (both
backends): valid tokens reach the app with the verified Principal in ``scope["tokenward.principal"]``; missing,
malformed, tampered, expired, wrong-audience and under-scoped tokens get the RFC 6750 §3.1 answers from the
middleware, and the app is never called for them."""

from __future__ import annotations

import base64
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx2
import pytest
import uvicorn

from tests.support import ServerProcess, authorize, exchange_code
from tokenward.resource import JwtVerifier, Principal
from tokenward.resource.asgi import PRINCIPAL_KEY, ASGIApp, BearerAuthMiddleware, Receive, Scope, Send

pytestmark = pytest.mark.e2e

AUDIENCE = "urn:tokenward:api"
REALM = "live-api"


class LiveAsgi:
    """An ASGI app under a real uvicorn ``Server`` in a thread. The listening socket is bound and listening
    before uvicorn starts, so a request sent at once waits in the kernel's backlog instead of racing start-up.
    uvicorn leaves logging alone (``log_config=None``): its records reach the root logger, and so ``caplog``."""

    def __init__(self, app: ASGIApp) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn.Config(app, lifespan="on", log_level="warning", access_log=False,
                                                    log_config=None))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> LiveAsgi:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()


@dataclass
class RecordingApp:
    """The protected app: answers with what the middleware put in its scope, and counts its calls."""

    calls: list[str] = field(default_factory=list)
    lifespan: list[str] = field(default_factory=list)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":  # the middleware passes non-HTTP scopes through untouched
            while True:
                message = await receive()
                self.lifespan.append(message["type"])
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        self.calls.append(scope["path"])
        principal = scope.get(PRINCIPAL_KEY)
        seen: dict[str, Any] | None = None
        if isinstance(principal, Principal):
            seen = {"subject": principal.subject, "client_id": principal.client_id,
                    "scopes": sorted(principal.scopes), "audience": list(principal.audience),
                    "expires_at": principal.expires_at, "issuer": principal.issuer, "token_id": principal.token_id,
                    "claims": principal.claims}
        body = json.dumps({"path": scope["path"], "principal": seen}).encode()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


@dataclass
class GuardedApi:
    url: str
    app: RecordingApp


@pytest.fixture(scope="module")
def guarded(server: ServerProcess) -> Iterator[GuardedApi]:
    """Needs ``profile:read`` everywhere but ``/health``; no clock leeway, so a 1-second token expires at once."""
    app = RecordingApp()
    verifier = JwtVerifier(issuer=server.base_url, audience=AUDIENCE, leeway=0)
    middleware = BearerAuthMiddleware(app, verifier, realm=REALM, required_scopes=("profile:read",),
                                      public_paths=("/health",))
    with LiveAsgi(middleware) as live:
        yield GuardedApi(live.url, app)
    assert app.lifespan == ["lifespan.startup", "lifespan.shutdown"]


def tokens(server: ServerProcess, scope: str = "profile:read", **client_options: Any) -> dict[str, Any]:
    client = server.add_client(**client_options)
    response = exchange_code(server, client, authorize(server, client, server.add_user(), scope=scope))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def payload_of(jwt: str) -> dict[str, Any]:
    segment = jwt.split(".")[1]
    claims: dict[str, Any] = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    return claims


def get(api: GuardedApi, token: str | None = None, path: str = "/user/profile", **kwargs: Any) -> httpx2.Response:
    headers = dict(kwargs.pop("headers", {}))
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return httpx2.get(api.url + path, headers=headers, timeout=10, **kwargs)


def assert_refused(api: GuardedApi, response: httpx2.Response, status: int, error: str | None) -> dict[str, Any]:
    """The middleware's own RFC 6750 answer: status, challenge, JSON body, no-store, and the app not called."""
    assert response.status_code == status, response.text
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith(f'Bearer realm="{REALM}"')
    body: dict[str, Any] = response.json()
    if error is None:
        assert challenge == f'Bearer realm="{REALM}"' and body["error"] == "unauthorized"
    else:
        assert f'error="{error}"' in challenge and body["error"] == error
    assert response.headers["content-type"] == "application/json"
    assert response.headers["cache-control"] == "no-store"
    assert "/user/profile" not in api.app.calls
    return body


def test_valid_token_reaches_app_with_verified_principal_in_scope(server: ServerProcess, guarded: GuardedApi) -> None:
    issued = tokens(server, scope="profile:read profile:write")
    response = get(guarded, issued["access_token"])
    assert response.status_code == 200, response.text
    seen = response.json()["principal"]
    claims = payload_of(issued["access_token"])
    assert seen["claims"] == claims
    assert seen["subject"] == claims["sub"] and seen["client_id"] == claims["client_id"]
    assert seen["token_id"] == claims["jti"] and seen["expires_at"] == claims["exp"]
    assert seen["issuer"] == server.base_url == claims["iss"]
    assert seen["scopes"] == ["profile:read", "profile:write"]
    assert AUDIENCE in seen["audience"]
    assert guarded.app.calls == ["/user/profile"]
    guarded.app.calls.clear()


def test_public_path_reaches_app_without_token(guarded: GuardedApi) -> None:
    response = get(guarded, path="/health")
    assert response.status_code == 200 and response.json() == {"path": "/health", "principal": None}
    guarded.app.calls.remove("/health")


def test_missing_credentials_get_bare_challenge_from_middleware(server: ServerProcess, guarded: GuardedApi) -> None:
    assert_refused(guarded, get(guarded), 401, None)
    assert_refused(guarded, get(guarded, headers={"Authorization": "Basic dXNlcjpwYXNz"}), 401, None)
    token = tokens(server)["access_token"]
    assert_refused(guarded, get(guarded, params={"access_token": token}), 401, None)  # never from the URL


def test_malformed_requests_get_invalid_request_from_middleware(server: ServerProcess, guarded: GuardedApi) -> None:
    token = tokens(server)["access_token"]
    assert_refused(guarded, get(guarded, headers={"Authorization": "Bearer"}), 400, "invalid_request")
    assert_refused(guarded, get(guarded, token, params={"access_token": token}), 400, "invalid_request")


def test_tampered_token_gets_invalid_token_from_middleware(server: ServerProcess, guarded: GuardedApi) -> None:
    token = tokens(server)["access_token"]
    tampered = token[:-3] + ("AAA" if not token.endswith("AAA") else "BBB")
    body = assert_refused(guarded, get(guarded, tampered), 401, "invalid_token")
    assert token not in json.dumps(body)


def test_expired_token_gets_invalid_token_from_middleware(server: ServerProcess, guarded: GuardedApi) -> None:
    # 3 s, not 1: exp is a whole second, so a 1 s token can expire before a loaded machine makes the first call
    token = tokens(server, access_token_ttl=3)["access_token"]
    exp = payload_of(token)["exp"]
    assert get(guarded, token).status_code == 200  # valid, and now in the verifier's cache
    guarded.app.calls.clear()
    time.sleep(max(0.0, exp - time.time()) + 0.1)  # the token's own lifetime has to pass: nothing to await
    body = assert_refused(guarded, get(guarded, token), 401, "invalid_token")
    assert body["error_description"] == "The access token has expired."


def test_token_for_another_audience_gets_invalid_token_from_middleware(server: ServerProcess,
                                                                        guarded: GuardedApi) -> None:
    token = tokens(server, audiences=("https://other-api.example",))["access_token"]
    assert AUDIENCE not in payload_of(token)["aud"]
    body = assert_refused(guarded, get(guarded, token), 401, "invalid_token")
    assert body["error_description"] == "The access token is meant for another audience."


def test_token_without_required_scope_gets_insufficient_scope_from_middleware(server: ServerProcess,
                                                                              guarded: GuardedApi) -> None:
    response = get(guarded, tokens(server, scope="profile:write")["access_token"])
    assert_refused(guarded, response, 403, "insufficient_scope")
    assert 'scope="profile:read"' in response.headers["www-authenticate"]
