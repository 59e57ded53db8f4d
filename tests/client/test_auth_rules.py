"""The auth adapters' rules against in-process transports (httpx2 and httpx MockTransport), and the flow
generator driven by hand: one refresh and one retry per 401, no retry of a body that cannot be replayed,
transient refresh failures, invalid_grant, client credentials."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import httpx
import httpx2
import pytest

from tokenward.client import BearerAuth, ClientConfig, LoginRequiredError, MemoryTokenStore, Token
from tokenward.client.errors import TokenEndpointError

TOKEN_URL = "https://auth.example/token"
INVALID = {"WWW-Authenticate": 'Bearer realm="api", error="invalid_token"'}


@dataclass
class FakeServer:
    """A token endpoint and an API in one handler; the API accepts only ``valid`` access tokens."""

    valid: set[str] = field(default_factory=set)
    token_calls: list[dict[str, str]] = field(default_factory=list)
    api_calls: list[str] = field(default_factory=list)
    token_status: int = 200
    token_error: str | None = None
    counter: int = 0
    challenge: dict[str, str] = field(default_factory=lambda: dict(INVALID))

    def handle(self, method: str, url: str, headers: Any, body: bytes) -> tuple[int, dict[str, str], bytes]:
        if url == TOKEN_URL:
            form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
            self.token_calls.append(form)
            if self.token_error:
                return self.token_status, {}, json.dumps({"error": self.token_error}).encode()
            if self.token_status != 200:
                return self.token_status, {}, b"unavailable"
            self.counter += 1
            access = f"at-{self.counter}"
            self.valid.add(access)
            return 200, {"Content-Type": "application/json"}, json.dumps({
                "access_token": access, "token_type": "Bearer", "expires_in": 600,
                "refresh_token": f"rt-{self.counter}"}).encode()
        token = headers.get("authorization", "").removeprefix("Bearer ")
        self.api_calls.append(token)
        if token in self.valid:
            return 200, {}, body or b"ok"
        return 401, self.challenge, b""


class Httpx2Transport(httpx2.BaseTransport):
    """Like MockTransport, but consumes a streamed body as a network transport does (MockTransport calls
    ``request.read()``, which buffers the body and so makes every request replayable)."""

    def __init__(self, fake: FakeServer) -> None:
        self.fake = fake

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        body = b"".join(request.stream)  # type: ignore[arg-type]
        status, headers, content = self.fake.handle(request.method, str(request.url), request.headers, body)
        return httpx2.Response(status, headers=headers, content=content)


class HttpxTransport(httpx.BaseTransport):
    def __init__(self, fake: FakeServer) -> None:
        self.fake = fake

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        body = b"".join(request.stream)  # type: ignore[arg-type]
        status, headers, content = self.fake.handle(request.method, str(request.url), request.headers, body)
        return httpx.Response(status, headers=headers, content=content)


def httpx2_client(fake: FakeServer, auth: Any) -> httpx2.Client:
    return httpx2.Client(transport=Httpx2Transport(fake), auth=auth)


def httpx_client(fake: FakeServer, auth: Any) -> httpx.Client:
    return httpx.Client(transport=HttpxTransport(fake), auth=auth)


CLIENTS: dict[str, Callable[[FakeServer, Any], Any]] = {"httpx2": httpx2_client, "httpx": httpx_client}


def fresh(access: str = "at-0", refresh: str | None = "rt-0", ttl: float = 600) -> Token:
    now = time.time()
    return Token(access, expires_at=now + ttl, refresh_token=refresh, obtained_at=now)


@pytest.fixture(params=sorted(CLIENTS))
def make_client(request: pytest.FixtureRequest) -> Callable[[FakeServer, Any], Any]:
    return CLIENTS[request.param]


@pytest.fixture
def fake() -> FakeServer:
    return FakeServer(valid={"at-0"})


def test_api_call_uses_stored_token_without_refresh_when_it_is_fresh(fake: FakeServer, make_client: Any) -> None:
    auth = BearerAuth(TOKEN_URL, "cli", store=MemoryTokenStore(fresh()))
    with make_client(fake, auth) as http:
        assert http.get("https://api.example/x").status_code == 200
    assert fake.token_calls == [] and fake.api_calls == ["at-0"]


def test_401_invalid_token_refreshes_once_and_retries_once_when_token_was_revoked(
        fake: FakeServer, make_client: Any) -> None:
    store = MemoryTokenStore(fresh("revoked"))
    auth = BearerAuth(TOKEN_URL, "cli", store=store)
    with make_client(fake, auth) as http:
        response = http.post("https://api.example/x", content=b"payload")
    assert response.status_code == 200 and response.content == b"payload"
    assert [c["grant_type"] for c in fake.token_calls] == ["refresh_token"]
    assert fake.api_calls == ["revoked", "at-1"]
    saved = store.load()
    assert saved is not None and saved.refresh_token == "rt-1"


def test_401_after_refresh_is_returned_and_never_loops_when_api_keeps_refusing(
        fake: FakeServer, make_client: Any) -> None:
    fake.valid.clear()
    fake.valid.add("nothing")  # the API refuses every token we can get
    auth = BearerAuth(TOKEN_URL, "cli", store=MemoryTokenStore(fresh("revoked")))
    original = fake.handle

    def refusing(method: str, url: str, headers: Any, body: bytes) -> tuple[int, dict[str, str], bytes]:
        status, h, b = original(method, url, headers, body)
        fake.valid.discard(f"at-{fake.counter}")
        return status, h, b

    fake.handle = refusing  # type: ignore[method-assign]
    with make_client(fake, auth) as http:
        response = http.get("https://api.example/x")
    assert response.status_code == 401
    assert len(fake.token_calls) == 1 and len(fake.api_calls) == 2


def test_401_without_invalid_token_error_is_returned_when_challenge_is_bare(
        fake: FakeServer, make_client: Any) -> None:
    fake.challenge = {"WWW-Authenticate": 'Bearer realm="api"'}
    auth = BearerAuth(TOKEN_URL, "cli", store=MemoryTokenStore(fresh("revoked")))
    with make_client(fake, auth) as http:
        assert http.get("https://api.example/x").status_code == 401
    assert fake.token_calls == [] and len(fake.api_calls) == 1


def test_401_is_not_retried_when_request_body_is_a_stream(fake: FakeServer, make_client: Any) -> None:
    auth = BearerAuth(TOKEN_URL, "cli", store=MemoryTokenStore(fresh("revoked")))

    def body() -> Iterator[bytes]:
        yield b"once"

    with make_client(fake, auth) as http:
        response = http.post("https://api.example/x", content=body())
    assert response.status_code == 401
    assert fake.token_calls == [] and fake.api_calls == ["revoked"]


def test_expired_token_is_refreshed_before_the_call_when_past_leeway(fake: FakeServer, make_client: Any) -> None:
    store = MemoryTokenStore(fresh("at-0", ttl=30))
    auth = BearerAuth(TOKEN_URL, "cli", store=store, clock=lambda: time.time() + 23)  # 22.5 s is due
    with make_client(fake, auth) as http:
        assert http.get("https://api.example/x").status_code == 200
    assert len(fake.token_calls) == 1 and fake.api_calls == ["at-1"]


def test_transient_refresh_failure_keeps_using_token_when_it_has_not_expired(
        fake: FakeServer, make_client: Any) -> None:
    fake.token_status = 503
    store = MemoryTokenStore(fresh("at-0", ttl=30))
    auth = BearerAuth(TOKEN_URL, "cli", store=store, clock=lambda: time.time() + 25)
    with make_client(fake, auth) as http:
        assert http.get("https://api.example/x").status_code == 200
    assert len(fake.token_calls) == 1 and fake.api_calls == ["at-0"]
    kept = store.load()
    assert kept is not None and kept.access_token == "at-0" and kept.refresh_token == "rt-0"


def test_transient_refresh_failure_raises_when_token_has_expired(fake: FakeServer, make_client: Any) -> None:
    fake.token_status = 503
    store = MemoryTokenStore(fresh("at-0", ttl=30))
    auth = BearerAuth(TOKEN_URL, "cli", store=store, clock=lambda: time.time() + 31)
    with make_client(fake, auth) as http, pytest.raises(TokenEndpointError) as info:
        http.get("https://api.example/x")
    assert info.value.transient and store.load() is not None
    assert fake.api_calls == []


def test_invalid_grant_clears_store_and_raises_login_required_when_refresh_is_refused(
        fake: FakeServer, make_client: Any) -> None:
    fake.token_status, fake.token_error = 400, "invalid_grant"
    store = MemoryTokenStore(fresh("revoked"))
    auth = BearerAuth(TOKEN_URL, "cli", store=store)
    with make_client(fake, auth) as http, pytest.raises(LoginRequiredError):
        http.get("https://api.example/x")
    assert store.load() is None
    with make_client(fake, auth) as http, pytest.raises(LoginRequiredError):  # and it stays that way
        http.get("https://api.example/x")
    assert len(fake.token_calls) == 1


def test_no_stored_token_raises_login_required_without_any_request(fake: FakeServer, make_client: Any) -> None:
    auth = BearerAuth(TOKEN_URL, "cli", store=MemoryTokenStore())
    with make_client(fake, auth) as http, pytest.raises(LoginRequiredError):
        http.get("https://api.example/x")
    assert fake.token_calls == [] and fake.api_calls == []


def test_client_credentials_fetches_new_token_when_missing_or_expired(fake: FakeServer, make_client: Any) -> None:
    now = [time.time()]
    auth = BearerAuth(TOKEN_URL, ClientConfig("svc", "secret"), grant="client_credentials", scope="jobs",
                      clock=lambda: now[0])
    with make_client(fake, auth) as http:
        assert http.get("https://api.example/x").status_code == 200
        assert http.get("https://api.example/x").status_code == 200
        now[0] += 600
        assert http.get("https://api.example/x").status_code == 200
    assert [c["grant_type"] for c in fake.token_calls] == ["client_credentials"] * 2
    assert all(c["scope"] == "jobs" and "refresh_token" not in c for c in fake.token_calls)
    assert fake.api_calls == ["at-1", "at-1", "at-2"]


def test_flow_generator_yields_refresh_then_request_then_one_retry_when_driven_by_hand() -> None:
    store = MemoryTokenStore(fresh("revoked", ttl=600))
    auth = BearerAuth(TOKEN_URL, "cli", store=store)
    request = httpx2.Request("GET", "https://api.example/x")
    flow = auth.sync_auth_flow(request)
    first = next(flow)
    assert first is request and first.headers["Authorization"] == "Bearer revoked"
    refresh = flow.send(httpx2.Response(401, headers=INVALID, request=first))
    assert str(refresh.url) == TOKEN_URL and refresh.method == "POST"
    assert parse_qs(refresh.content.decode())["refresh_token"] == ["rt-0"]
    retry = flow.send(httpx2.Response(200, json={"access_token": "new", "token_type": "Bearer", "expires_in": 60,
                                                 "refresh_token": "rt-new"}, request=refresh))
    assert retry is request and retry.headers["Authorization"] == "Bearer new"
    with pytest.raises(StopIteration):
        flow.send(httpx2.Response(401, headers=INVALID, request=retry))  # a second 401 ends the flow
    saved = store.load()
    assert saved is not None and saved.refresh_token == "rt-new"


def test_bearer_auth_is_accepted_as_auth_by_both_httpx_libraries_when_constructed() -> None:
    auth = BearerAuth(TOKEN_URL, "cli")
    assert isinstance(auth, httpx2.Auth) and isinstance(auth, httpx.Auth)
    assert "cli" in repr(auth)
