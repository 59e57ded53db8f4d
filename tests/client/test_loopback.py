"""The RFC 8252 loopback listener and ``login()``: state and iss checks, one-shot, timeout, the page's headers."""

from __future__ import annotations

import threading
from urllib.parse import urlencode

import httpx2
import pytest

from tests.client.kit import LOOPBACK, browse_login, settled, token_posts
from tests.support import PASSWORD, ServerProcess
from tokenward.client import AuthorizationError, LoginTimeoutError, LoopbackListener, MemoryTokenStore, login
from tokenward.client.discovery import discover
from tokenward.client.flow import AuthorizationRequest, start_authorization

ISSUER = "https://as.example"


def pending_for(listener: LoopbackListener) -> AuthorizationRequest:
    request = start_authorization(ISSUER + "/authorize", "cli", listener.redirect_uri, issuer=ISSUER,
                                  require_iss=True)
    listener.expect(request)
    return request


def hit(listener: LoopbackListener, **params: str) -> httpx2.Response:
    return httpx2.get(f"{listener.redirect_uri}?{urlencode(params)}")


def test_listener_ignores_foreign_state_and_returns_code_of_matching_response() -> None:
    with LoopbackListener() as listener:
        request = pending_for(listener)
        assert listener.redirect_uri.startswith("http://127.0.0.1:") and listener.redirect_uri.endswith("/callback")
        foreign = hit(listener, code="evil", state="not-ours", iss=ISSUER)
        assert foreign.status_code == 400
        assert httpx2.get(f"http://127.0.0.1:{listener.port}/other").status_code == 404
        ok = hit(listener, code="the-code", state=request.state, iss=ISSUER)
        assert ok.status_code == 200 and "Signed in" in ok.text
        assert ok.headers["referrer-policy"] == "no-referrer"
        assert ok.headers["cache-control"] == "no-store"
        assert ok.headers["content-security-policy"] == "default-src 'none'"
        assert listener.wait(1) == "the-code"
        assert hit(listener, code="late", state=request.state, iss=ISSUER).status_code == 410


@pytest.mark.parametrize(("params", "error"), [
    ({"code": "c", "iss": "https://evil.example"}, "issuer_mismatch"),
    ({"code": "c"}, "issuer_missing"),
    ({"error": "access_denied", "iss": ISSUER}, "access_denied"),
])
def test_listener_ends_login_with_error_when_matching_response_fails_checks(params: dict[str, str],
                                                                           error: str) -> None:
    with LoopbackListener() as listener:
        request = pending_for(listener)
        page = hit(listener, state=request.state, **params)
        assert page.status_code == 400 and "Sign-in failed" in page.text
        with pytest.raises(AuthorizationError) as info:
            listener.wait(1)
        assert info.value.error == error


def test_listener_times_out_when_no_redirect_arrives() -> None:
    with LoopbackListener() as listener, pytest.raises(LoginTimeoutError):
        pending_for(listener)
        listener.wait(0.2)


def test_login_exchanges_code_with_pkce_and_saves_tokens_when_user_allows(server: ServerProcess) -> None:
    client = server.add_client(public=True, redirect_uri=LOOPBACK)
    user = server.add_user()
    store = MemoryTokenStore()
    pages: list[httpx2.Response] = []

    def user_in_browser(url: str) -> None:
        threading.Thread(target=lambda: pages.append(browse_login(url, user, PASSWORD)), daemon=True).start()

    token = login(discover(server.metadata()["issuer"]), client.client_id, store=store, scope="profile:read",
                  open_browser=None, on_url=user_in_browser, timeout=20)
    assert store.load() == token and token.refresh_token and token.scope == "profile:read"
    assert pages and pages[0].status_code == 200


def test_login_never_calls_token_endpoint_when_response_comes_from_another_issuer(server: ServerProcess) -> None:
    """Mix-up defence (RFC 9207): a response with the right state but a foreign ``iss`` ends the login."""
    client = server.add_client(public=True, redirect_uri=LOOPBACK)
    before = settled(lambda: token_posts(server))

    def attacker(url: str) -> None:
        query = httpx2.URL(url).params
        redirect = query["redirect_uri"]
        threading.Thread(target=lambda: httpx2.get(redirect, params={
            "code": "stolen", "state": query["state"], "iss": "https://evil.example"}), daemon=True).start()

    with pytest.raises(AuthorizationError) as info:
        login(discover(server.metadata()["issuer"]), client.client_id, store=MemoryTokenStore(), open_browser=None,
              on_url=attacker, timeout=10)
    assert info.value.error == "issuer_mismatch"
    assert settled(lambda: token_posts(server)) == before
