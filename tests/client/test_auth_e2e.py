"""The auth adapters against a real ``tokenward serve`` and a protected API that verifies tokens for real."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest
import requests

from tests.client.kit import LOOPBACK, ProtectedApi, audit_events, expired, settled, sign_in, token_posts
from tests.support import ServerProcess
from tokenward.client import (
    BearerAuth,
    EncryptedFileTokenStore,
    KeyFileKey,
    LoginRequiredError,
    MemoryTokenStore,
    Token,
)
from tokenward.client.discovery import discover

pytestmark = pytest.mark.e2e


def file_store(tmp_path: Path, token: Token | None = None) -> EncryptedFileTokenStore:
    store = EncryptedFileTokenStore(tmp_path / "tokens.json", key=KeyFileKey(tmp_path / "key"))
    if token is not None:
        store.save(token)
    return store


def test_token_is_refreshed_before_expiry_when_within_leeway(server: ServerProcess, api: ProtectedApi) -> None:
    client, token = sign_in(server, ttl=2)
    auth = BearerAuth(server.metadata()["token_endpoint"], client.client_id, store=MemoryTokenStore(token))
    with httpx2.Client(auth=auth) as http:
        assert http.get(api.url + "/user/profile").status_code == 200
        before = settled(lambda: token_posts(server))
        # Due at 1.5 s (a quarter of a 2 s life), expired at 2 s: the refresh must come before the API refuses.
        time.sleep(max(0.0, (token.expires_at or 0) - 0.35 - time.time()))
        response = http.get(api.url + "/user/profile")
    assert response.status_code == 200
    assert settled(lambda: token_posts(server), before + 1) == before + 1
    assert api.presented == [token.access_token, api.presented[-1]] and api.presented[-1] != token.access_token
    assert auth.manager.current() is not None and auth.manager.current() != token


def test_401_invalid_token_refreshes_once_and_retries_once_when_api_rejects_token(
        server: ServerProcess, api: ProtectedApi) -> None:
    client, token = sign_in(server)
    api.reject.add(token.access_token)  # e.g. revoked: still unexpired by the clock
    auth = BearerAuth(server.metadata()["token_endpoint"], client.client_id, store=MemoryTokenStore(token))
    before = token_posts(server)
    with httpx2.Client(auth=auth) as http:
        response = http.post(api.url + "/echo", json={"hello": "world"})
    assert response.status_code == 200 and response.json()["received"] == '{"hello":"world"}'
    assert len(api.presented) == 2 and api.presented[0] == token.access_token != api.presented[1]
    assert settled(lambda: token_posts(server), before + 1) == before + 1
    assert [r.status_code for r in response.history] == [401, 200]  # the refused call, then the refresh


def test_second_401_is_returned_when_api_refuses_the_new_token_too(server: ServerProcess, api: ProtectedApi) -> None:
    client, token = sign_in(server)
    auth = BearerAuth(server.metadata()["token_endpoint"], client.client_id, store=MemoryTokenStore(token))
    api.reject.add(token.access_token)
    original = api.verify
    api.verify = lambda t: None  # type: ignore[method-assign]  # refuse everything from now on
    before = token_posts(server)
    try:
        with httpx2.Client(auth=auth) as http:
            response = http.get(api.url + "/user/profile")
    finally:
        api.verify = original  # type: ignore[method-assign]
    assert response.status_code == 401
    assert len(api.presented) == 2  # one call, one retry, no loop
    assert settled(lambda: token_posts(server), before + 1) == before + 1


def test_rotated_refresh_token_is_persisted_when_refreshed(server: ServerProcess, api: ProtectedApi,
                                                           tmp_path: Path) -> None:
    client, token = sign_in(server)
    store = file_store(tmp_path, expired(token))
    auth = BearerAuth(server.metadata()["token_endpoint"], client.client_id, store=store)
    with httpx2.Client(auth=auth) as http:
        assert http.get(api.url + "/user/profile").status_code == 200
    on_disk = file_store(tmp_path).load()  # a new reader: what another process would see
    assert on_disk is not None and on_disk.refresh_token and on_disk.refresh_token != token.refresh_token
    assert on_disk == auth.manager.current()
    # the persisted refresh token is the live one: a fresh manager from the file refreshes with it
    again = BearerAuth(server.metadata()["token_endpoint"], client.client_id, store=file_store(tmp_path))
    again.manager.store.save(expired(on_disk))
    with httpx2.Client(auth=again) as http:
        assert http.get(api.url + "/user/profile").status_code == 200
    assert audit_events(server, client.client_id, "token.refreshed") == 2
    assert audit_events(server, client.client_id, "refresh.reuse_detected") == 0


def test_invalid_grant_clears_tokens_and_raises_login_required_when_grant_was_revoked(
        server: ServerProcess, api: ProtectedApi, tmp_path: Path) -> None:
    client, token = sign_in(server)
    revoked = httpx2.post(server.metadata()["revocation_endpoint"],
                          data={"token": token.refresh_token, "client_id": client.client_id})
    assert revoked.status_code == 200
    store = file_store(tmp_path, expired(token))
    auth = BearerAuth(server.metadata()["token_endpoint"], client.client_id, store=store)
    with httpx2.Client(auth=auth) as http, pytest.raises(LoginRequiredError) as info:
        http.get(api.url + "/user/profile")
    assert info.value.error == "invalid_grant"
    assert store.load() is None and not store.path.exists()
    assert api.presented == []  # nothing was sent with a token known to be dead


def _sync_call(client_class: Any, auth: BearerAuth, url: str) -> int:
    with client_class(auth=auth) as http:
        return int(http.get(url).status_code)


def _async_call(client_class: Any, auth: BearerAuth, url: str) -> int:
    async def go() -> int:
        async with client_class(auth=auth) as http:
            return int((await http.get(url)).status_code)
    return asyncio.run(go())


@pytest.mark.parametrize(("client_class", "call"), [
    (httpx2.Client, _sync_call), (httpx2.AsyncClient, _async_call),
    (httpx.Client, _sync_call), (httpx.AsyncClient, _async_call),
], ids=["httpx2-sync", "httpx2-async", "httpx-sync", "httpx-async"])
def test_same_auth_class_refreshes_on_expiry_and_on_401_when_used_by_each_httpx_client(
        server: ServerProcess, api: ProtectedApi, client_class: Any, call: Any) -> None:
    client, token = sign_in(server)
    auth = BearerAuth(server.metadata()["token_endpoint"], client.client_id, store=MemoryTokenStore(expired(token)))
    assert call(client_class, auth, api.url + "/user/profile") == 200  # proactive
    first = auth.manager.current()
    assert first is not None and first.access_token != token.access_token
    api.reject.add(first.access_token)
    assert call(client_class, auth, api.url + "/user/profile") == 200  # 401-driven
    assert api.presented == [first.access_token, first.access_token, api.presented[-1]]
    assert audit_events(server, client.client_id, "token.refreshed") == 2


def test_requests_adapter_refreshes_on_expiry_and_retries_once_on_401_when_used_by_a_session(
        server: ServerProcess, api: ProtectedApi) -> None:
    client, token = sign_in(server)
    auth = BearerAuth(server.metadata()["token_endpoint"], client.client_id, store=MemoryTokenStore(expired(token)))
    with requests.Session() as session:
        session.auth = auth.requests_auth()
        assert session.get(api.url + "/user/profile", timeout=10).status_code == 200
        current = auth.manager.current()
        assert current is not None and current.access_token != token.access_token
        api.reject.add(current.access_token)
        response = session.post(api.url + "/echo", data=b"again", timeout=10)
    assert response.status_code == 200 and response.json()["received"] == "again"
    assert [r.status_code for r in response.history] == [401]
    assert api.presented == [current.access_token, current.access_token, api.presented[-1]]
    assert audit_events(server, client.client_id, "token.refreshed") == 2


def test_requests_adapter_does_not_retry_when_body_is_a_generator(server: ServerProcess, api: ProtectedApi) -> None:
    client, token = sign_in(server)
    api.reject.add(token.access_token)
    auth = BearerAuth(server.metadata()["token_endpoint"], client.client_id, store=MemoryTokenStore(token))
    with requests.Session() as session:
        response = session.post(api.url + "/echo", data=(chunk for chunk in [b"a", b"b"]),
                                auth=auth.requests_auth(), timeout=10)
    assert response.status_code == 401 and api.presented == [token.access_token]
    assert audit_events(server, client.client_id, "token.refreshed") == 0


def test_client_credentials_client_fetches_new_token_when_its_token_expires(
        server: ServerProcess, api: ProtectedApi) -> None:
    client = server.add_client(redirect_uri=LOOPBACK, grant_types=("client_credentials",))
    assert client.client_secret is not None
    now = [time.time()]
    auth = BearerAuth.for_client_credentials(server.metadata()["issuer"], client.client_id, client.client_secret,
                                             scope="profile:read", clock=lambda: now[0])
    with httpx2.Client(auth=auth) as http:
        assert http.get(api.url + "/user/profile").json()["sub"] == client.client_id
        assert http.get(api.url + "/user/profile").status_code == 200
        now[0] += 3600
        assert http.get(api.url + "/user/profile").status_code == 200
    assert audit_events(server, client.client_id, "token.issued") == 2
    assert len(set(api.presented)) == 2


def test_discovery_gives_server_endpoints_when_issuer_matches(server: ServerProcess) -> None:
    metadata = discover(server.metadata()["issuer"])
    assert metadata.token_endpoint == server.metadata()["token_endpoint"]
    assert metadata.iss_parameter_supported is True
    assert metadata.revocation_endpoint is not None


def test_refresh_does_not_reenter_the_auth_when_the_sending_client_carries_it(
        server: ServerProcess, api: ProtectedApi) -> None:
    client, token = sign_in(server)
    auth = BearerAuth(server.metadata()["token_endpoint"], client.client_id, store=MemoryTokenStore(expired(token)))
    with httpx2.Client(auth=auth, timeout=10) as http:
        renewed = auth.token(http)  # the token request itself must go out without this auth (and its lock)
    assert renewed.access_token != token.access_token
    again = BearerAuth(server.metadata()["token_endpoint"], client.client_id,
                       store=MemoryTokenStore(expired(renewed)))
    with requests.Session() as session:
        session.auth = again.requests_auth(session=session)
        assert session.get(api.url + "/user/profile", timeout=10).status_code == 200
    assert audit_events(server, client.client_id, "token.refreshed") == 2
