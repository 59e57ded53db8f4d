"""The client library against Tokenward's own guard: a real ``tokenward serve --access-token-ttl 3``, the real
``tokenward demo-api`` trusting it, a user signed in with ``tokenward.client.login`` (loopback redirect; the
user's steps over HTTP), and the README's ``BearerAuth.from_login`` + ``httpx2.Client(auth=auth)``. After the
access token has expired the next call still succeeds: the client renewed by itself (a refresh grant at the
server, a new token at the API), once."""

from __future__ import annotations

import base64
import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest

from tests.client.conftest import CLIENT_BACKENDS
from tests.client.kit import LOOPBACK, audit_events, browse_login, settled
from tests.conftest import dispose, new_server
from tests.e2e.test_guard import start_demo_api
from tests.support import PASSWORD, ServerProcess
from tokenward.client import BearerAuth, MemoryTokenStore, Token, discover, login

pytestmark = pytest.mark.e2e

TTL = 3  # seconds: the server's lifetime for every access token


@pytest.fixture(params=CLIENT_BACKENDS)
def short_lived(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[ServerProcess, str]]:
    """A server issuing ``TTL``-second access tokens, and the demo API trusting it."""
    server = new_server(tmp_path / "server", request.param)
    server.start("--access-token-ttl", str(TTL))
    proc, api = start_demo_api(server.base_url)
    try:
        yield server, api
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)
        dispose(server)


def claims_of(access_token: str) -> dict[str, Any]:
    segment = access_token.split(".")[1]
    claims: dict[str, Any] = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    return claims


def presented(response: httpx2.Response) -> str:
    scheme, _, token = response.request.headers["authorization"].partition(" ")
    assert scheme == "Bearer"
    return token


def test_client_renews_expired_token_by_itself_when_calling_demo_api(short_lived: tuple[ServerProcess, str]) -> None:
    server, api = short_lived
    client = server.add_client(public=True, redirect_uri=LOOPBACK, scope="profile:read")
    user = server.add_user()
    issuer = server.metadata()["issuer"]
    store = MemoryTokenStore()

    def user_in_browser(url: str) -> None:
        threading.Thread(target=browse_login, args=(url, user, PASSWORD), daemon=True).start()

    signed_in = login(discover(issuer), client.client_id, store=store, scope="profile:read", open_browser=None,
                      on_url=user_in_browser, timeout=20)
    assert signed_in.lifetime == TTL and signed_in.refresh_token

    refreshes: list[tuple[Token, Token | None]] = []
    auth = BearerAuth.from_login(issuer, client.client_id, store=store,
                                 on_refresh=lambda new, old: refreshes.append((new, old)))
    with httpx2.Client(auth=auth, timeout=10) as http:
        first = http.get(api + "/user/profile")
        assert first.status_code == 200, first.text
        old = presented(first)
        assert first.json()["token_expires_at"] == claims_of(old)["exp"]
        before = audit_events(server, client.client_id, "token.refreshed")
        renewals_before = len(refreshes)

        # Let it expire. The token's own lifetime has to pass: there is nothing to await.
        time.sleep(max(0.0, claims_of(old)["exp"] - time.time()) + 0.2)
        assert time.time() > claims_of(old)["exp"]

        second = http.get(api + "/user/profile")
        assert second.status_code == 200, second.text
        new = presented(second)
        assert new != old and claims_of(new)["exp"] > claims_of(old)["exp"]
        assert second.json()["token_expires_at"] == claims_of(new)["exp"]  # the API verified the new token
        assert second.json()["sub"] == first.json()["sub"] == claims_of(old)["sub"]

        third = http.get(api + "/user/profile")  # renewed once, not on every call
        assert third.status_code == 200 and presented(third) == new

    assert len(refreshes) == renewals_before + 1
    renewed, replaced = refreshes[-1]
    assert renewed.access_token == new and replaced is not None and replaced.access_token == old
    assert renewed.refresh_token not in (None, replaced.refresh_token)  # rotated
    assert store.load() == renewed
    assert settled(lambda: audit_events(server, client.client_id, "token.refreshed"), before + 1) == before + 1
