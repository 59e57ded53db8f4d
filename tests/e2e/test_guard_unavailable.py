"""When the guard cannot learn the issuer's keys — the authorization server is down, or answers garbage for its
metadata, JWKS or introspection — every adapter (ASGI middleware and FastAPI dependency under a real uvicorn,
the Flask decorator under werkzeug) answers 503 ``temporarily_unavailable`` with a JSON body and
``Cache-Control: no-store``, logs one warning without a stack trace, and works as soon as the issuer is back.
RFC 6750 §3.1 has no code for this: the token's fault is unknown, so 401 would be a lie and 500 a crash.

No ``from __future__ import annotations``: FastAPI must evaluate the local annotations of the app built here."""

import base64
import json
import logging
import threading
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Annotated, Any

import httpx2
import pytest
from fastapi import FastAPI
from flask import Flask, g
from werkzeug.serving import make_server

from tests.e2e.test_middleware_live import LiveAsgi, RecordingApp
from tests.resource.jwt_kit import claims_for, keyring
from tests.support import ServerProcess, authorize, exchange_code, free_port
from tokenward.resource import IntrospectionVerifier, JwtVerifier, Principal
from tokenward.resource.asgi import BearerAuthMiddleware
from tokenward.resource.fastapi import TokenwardBearer
from tokenward.resource.flask import FlaskGuard

pytestmark = pytest.mark.e2e

AUDIENCE = "urn:tokenward:api"
ADAPTERS = ("asgi", "fastapi", "flask")


def b64(value: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()


# Well-formed enough to need the issuer's keys: the guard cannot tell whether it is valid without them.
SOME_TOKEN = f"{b64({'alg': 'ES256', 'typ': 'at+jwt', 'kid': 'k-1'})}.{b64({'sub': 'x'})}.AAAA"


def fastapi_app(verifier: JwtVerifier) -> FastAPI:
    guard = TokenwardBearer(verifier, realm="fastapi-api")
    app = FastAPI()

    @app.get("/user/profile")
    async def profile(user: Annotated[Principal, guard.require_scopes("profile:read")]) -> dict[str, str]:
        return {"sub": user.subject}

    return app


@contextmanager
def flask_api(verifier: JwtVerifier) -> Iterator[str]:
    app = Flask("guarded")
    guard = FlaskGuard(verifier, realm="flask-api")

    @app.get("/user/profile")
    @guard.require_scopes("profile:read")
    def profile() -> dict[str, str]:
        return {"sub": g.principal.subject}

    http = make_server("127.0.0.1", free_port(), app, threaded=True)
    thread = threading.Thread(target=http.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{http.server_port}"
    finally:
        http.shutdown()
        thread.join(timeout=10)


@contextmanager
def guarded_apis(issuer: str) -> Iterator[dict[str, str]]:
    """The three adapters, each with its own JwtVerifier trusting ``issuer``; base URL by adapter name."""
    with ExitStack() as stack:
        def verifier() -> JwtVerifier:
            return JwtVerifier(issuer=issuer, audience=AUDIENCE)

        asgi = BearerAuthMiddleware(RecordingApp(), verifier(), realm="asgi-api", required_scopes=("profile:read",))
        yield {"asgi": stack.enter_context(LiveAsgi(asgi)).url,
               "fastapi": stack.enter_context(LiveAsgi(fastapi_app(verifier()))).url,
               "flask": stack.enter_context(flask_api(verifier()))}


def assert_unavailable(response: httpx2.Response) -> None:
    assert response.status_code == 503, (response.status_code, response.text)
    assert response.headers["content-type"] == "application/json"
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    error = body.get("detail", body)  # FastAPI wraps an HTTPException's detail
    assert error["error"] == "temporarily_unavailable"
    assert error["error_description"].startswith("The token issuer")
    assert "Traceback" not in response.text and SOME_TOKEN not in response.text


def assert_logged_without_stack_trace(caplog: pytest.LogCaptureFixture, count: int) -> None:
    warnings = [r for r in caplog.records if r.name == "tokenward.resource" and r.levelno == logging.WARNING
                and "answering 503" in r.getMessage()]
    assert len(warnings) == count, [r.getMessage() for r in caplog.records]
    assert not [r for r in caplog.records if r.exc_info], "a stack trace was logged"
    assert not [r for r in caplog.records if SOME_TOKEN in r.getMessage()]


def call(base: str, token: str) -> httpx2.Response:
    return httpx2.get(base + "/user/profile", headers={"Authorization": f"Bearer {token}"}, timeout=30)


def test_every_adapter_answers_503_while_issuer_is_down_and_200_once_it_is_up(
        fresh_server: ServerProcess, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    with guarded_apis(fresh_server.base_url) as apis:  # nothing listens at the issuer's address yet
        for name in ADAPTERS:
            assert_unavailable(call(apis[name], SOME_TOKEN))
            assert_unavailable(call(apis[name], SOME_TOKEN))  # a failed discovery is not remembered as success
        assert_logged_without_stack_trace(caplog, 2 * len(ADAPTERS))

        fresh_server.start()
        client = fresh_server.add_client()
        code = authorize(fresh_server, client, fresh_server.add_user())
        token = exchange_code(fresh_server, client, code).json()["access_token"]
        for name in ADAPTERS:
            ok = call(apis[name], token)
            assert ok.status_code == 200, (name, ok.text)
            assert ok.json()["sub"] if name != "asgi" else ok.json()["principal"]["subject"]


class GarbageIssuer:
    """A fake issuer on 127.0.0.1: ``routes`` maps a path to (status, content type, body)."""

    def __init__(self) -> None:
        self.routes: dict[str, tuple[int, str, bytes]] = {}
        self.requests: list[str] = []
        self.gate = threading.Event()  # cleared: every answer waits until the test opens it
        self.gate.set()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.requests.append(self.path)
                owner.gate.wait(timeout=30)
                status, kind, body = owner.routes.get(self.path.split("?")[0], (404, "text/plain", b"not found"))
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_POST = do_GET

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.http.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}"
        self.thread = threading.Thread(target=self.http.serve_forever, daemon=True)

    def metadata(self, **extra: str) -> tuple[int, str, bytes]:
        return 200, "application/json", json.dumps({"issuer": self.url, "jwks_uri": self.url + "/jwks",
                                                   **extra}).encode()


@pytest.fixture
def garbage_issuer() -> Iterator[GarbageIssuer]:
    issuer = GarbageIssuer()
    issuer.thread.start()
    yield issuer
    issuer.http.shutdown()
    issuer.http.server_close()


HTML = (200, "text/html", b"<html><body>Bad gateway, but said with a 200</body></html>")


@pytest.mark.parametrize("broken", ["metadata", "jwks", "jwks-5xx"])
def test_every_adapter_answers_503_when_issuer_answers_garbage(
        garbage_issuer: GarbageIssuer, caplog: pytest.LogCaptureFixture, broken: str) -> None:
    caplog.set_level(logging.WARNING)
    well_known = "/.well-known/oauth-authorization-server"
    if broken == "metadata":
        garbage_issuer.routes = {well_known: HTML, "/.well-known/openid-configuration": HTML}
    else:
        garbage_issuer.routes = {well_known: garbage_issuer.metadata(),
                                 "/jwks": HTML if broken == "jwks" else (502, "text/plain", b"upstream down")}
    with guarded_apis(garbage_issuer.url) as apis:
        for name in ADAPTERS:
            assert_unavailable(call(apis[name], SOME_TOKEN))
        assert_logged_without_stack_trace(caplog, len(ADAPTERS))

        signer = keyring().es256  # the issuer is repaired: the very next request discovers again and passes
        garbage_issuer.routes = {well_known: garbage_issuer.metadata(),
                                 "/jwks": (200, "application/json", json.dumps({"keys": [signer.jwk]}).encode())}
        token = signer.token(claims_for(time.time(), iss=garbage_issuer.url))
        for name in ADAPTERS:
            assert call(apis[name], token).status_code == 200, name


@pytest.mark.parametrize("broken", ["down", "garbage"])
def test_middleware_with_introspection_answers_503_when_issuer_is_down_or_answers_garbage(
        garbage_issuer: GarbageIssuer, caplog: pytest.LogCaptureFixture, broken: str) -> None:
    caplog.set_level(logging.WARNING)
    issuer = f"http://127.0.0.1:{free_port()}" if broken == "down" else garbage_issuer.url
    garbage_issuer.routes = {"/.well-known/oauth-authorization-server": garbage_issuer.metadata(
        introspection_endpoint=garbage_issuer.url + "/introspect"), "/introspect": HTML}
    verifier = IntrospectionVerifier(issuer=issuer, audience=AUDIENCE, client_id="api", client_secret="s3cret")
    with LiveAsgi(BearerAuthMiddleware(RecordingApp(), verifier)) as live:
        assert_unavailable(call(live.url, SOME_TOKEN))
    assert_logged_without_stack_trace(caplog, 1)


class CountingVerifier:
    """Delegates to ``inner``; ``all_in`` is set once ``expected`` requests have entered ``verify``."""

    def __init__(self, inner: JwtVerifier, expected: int) -> None:
        self.inner = inner
        self.expected = expected
        self.entered = 0
        self.all_in = threading.Event()

    async def verify(self, token: str, required_scopes: Iterable[str] = ()) -> Principal:
        self.entered += 1  # one event loop: no lock needed
        if self.entered == self.expected:
            self.all_in.set()
        return await self.inner.verify(token, required_scopes)

    def verify_sync(self, token: str, required_scopes: Iterable[str] = ()) -> Principal:
        return self.inner.verify_sync(token, required_scopes)


def test_requests_waiting_for_a_failed_discovery_share_its_503_instead_of_retrying_one_by_one(
        garbage_issuer: GarbageIssuer) -> None:
    """Against an issuer that hangs, N queued requests would otherwise wait N discovery timeouts in turn."""
    garbage_issuer.routes = {"/.well-known/oauth-authorization-server": HTML,
                             "/.well-known/openid-configuration": HTML}
    garbage_issuer.gate.clear()
    verifier = CountingVerifier(JwtVerifier(issuer=garbage_issuer.url, audience=AUDIENCE), expected=5)
    with LiveAsgi(BearerAuthMiddleware(RecordingApp(), verifier)) as live, ThreadPoolExecutor(5) as pool:
        answers = [pool.submit(call, live.url, SOME_TOKEN) for _ in range(5)]
        # All five are inside the guard: one is discovering, four wait for it. The issuer's answer can only be
        # read once the event loop runs again, that is once the fifth is waiting too.
        assert verifier.all_in.wait(timeout=20)
        garbage_issuer.gate.set()
        for answer in answers:
            assert_unavailable(answer.result(timeout=30))
        assert garbage_issuer.requests == ["/.well-known/oauth-authorization-server",
                                           "/.well-known/openid-configuration"]  # one discovery for all five
        assert_unavailable(call(live.url, SOME_TOKEN))  # a request after the failure tries again
        assert len(garbage_issuer.requests) == 4


def test_middleware_answers_503_when_a_configured_jwks_uri_has_never_answered(
        garbage_issuer: GarbageIssuer, caplog: pytest.LogCaptureFixture) -> None:
    """No discovery (``jwks_uri=`` given): an empty key set that was never fetched is not "unknown key"."""
    caplog.set_level(logging.WARNING)
    garbage_issuer.routes = {"/jwks": (503, "text/plain", b"maintenance")}
    verifier = JwtVerifier(issuer=garbage_issuer.url, audience=AUDIENCE, jwks_uri=garbage_issuer.url + "/jwks")
    with LiveAsgi(BearerAuthMiddleware(RecordingApp(), verifier)) as live:
        assert_unavailable(call(live.url, SOME_TOKEN))
    assert_logged_without_stack_trace(caplog, 1)
    assert garbage_issuer.requests == ["/jwks"]
