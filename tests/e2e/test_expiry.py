"""Lifetimes end when the settings say, on a real server with short TTLs (both backends): authorization codes
(RFC 6749 §4.1.2), the absolute lifetime of a grant's refresh tokens (rotation does not extend it, RFC 9700
§4.14.2), login sessions, and pending authorization requests."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest

from tests.conftest import BACKENDS, dispose, new_server
from tests.support import PASSWORD, ServerProcess, authorize, exchange_code, hidden_fields
from tokenward.protocol import pkce

CODE_TTL = 3
REQUEST_TTL = 3
SESSION_TTL = 6
REFRESH_TTL = 6


@pytest.fixture(scope="module", params=BACKENDS)
def short(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = new_server(Path(tmp_path_factory.mktemp(f"expiry-{request.param}")), request.param)
    proc.start(env={"TOKENWARD_CODE_TTL": str(CODE_TTL), "TOKENWARD_AUTHORIZATION_REQUEST_TTL": str(REQUEST_TTL),
                    "TOKENWARD_SESSION_TTL": str(SESSION_TTL), "TOKENWARD_REFRESH_TOKEN_TTL": str(REFRESH_TTL)})
    yield proc
    dispose(proc)


def sleep_until(t: float) -> None:
    time.sleep(max(0.0, t - time.time()))


def authorize_params(client_id: str, redirect_uri: str) -> dict[str, str]:
    return {"response_type": "code", "client_id": client_id, "redirect_uri": redirect_uri, "state": "s",
            "code_challenge": pkce.s256(pkce.new_verifier()), "code_challenge_method": "S256"}


def test_an_authorization_code_is_refused_once_its_lifetime_ended(short: ServerProcess) -> None:
    client = short.add_client()
    user = short.add_user()
    fresh = authorize(short, client, user)
    assert exchange_code(short, client, fresh).status_code == 200  # within the lifetime: redeemed
    stale = authorize(short, client, user)
    issued = time.time()
    sleep_until(issued + CODE_TTL + 1.1)  # the server counts whole seconds
    r = exchange_code(short, client, stale)
    # "expired", or "invalid" when the maintenance task purged the row first
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant", r.text
    assert r.headers["cache-control"] == "no-store"


def test_refresh_tokens_stop_at_the_grants_absolute_lifetime_however_often_rotated(short: ServerProcess) -> None:
    client = short.add_client()
    start = time.time()
    tokens = exchange_code(short, client, authorize(short, client, short.add_user())).json()
    refresh = tokens["refresh_token"]
    for step in (1, 2):  # each rotation issues a brand-new refresh token …
        sleep_until(start + 2 * step)
        r = short.token(client, {"grant_type": "refresh_token", "refresh_token": refresh})
        assert r.status_code == 200, r.text
        refresh = r.json()["refresh_token"]
    # every refresh token of the grant expires when the grant does, not REFRESH_TTL after its own issue
    rows = short.query(f"SELECT r.expires_at, g.expires_at FROM refresh_tokens r JOIN grants g ON g.id = r.grant_id "
                       f"WHERE r.client_id = '{client.client_id}'")
    assert len(rows) == 3 and all(rt == grant for rt, grant in rows)
    # … so the newest one, issued ~2 s ago, dies with the grant REFRESH_TTL after the code was redeemed
    sleep_until(start + REFRESH_TTL + 1.1)
    r = short.token(client, {"grant_type": "refresh_token", "refresh_token": refresh})
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant", r.text


def test_a_login_session_ends_after_its_lifetime_even_if_the_browser_keeps_the_cookie(short: ServerProcess) -> None:
    client = short.add_client()
    user = short.add_user()
    with httpx2.Client(base_url=short.base_url, follow_redirects=False) as browser:
        authorize(short, client, user, browser=browser)
        logged_in = time.time()
        cookies = "; ".join(f"{c.name}={c.value}" for c in browser.cookies.jar)
    assert cookies
    params = authorize_params(client.client_id, "https://app.example/cb")
    # within the lifetime the session is still signed in: no login page
    r = httpx2.get(short.base_url + "/authorize", params=params, headers={"cookie": cookies})
    assert r.status_code == 303 and not r.headers["location"].startswith("/login"), r.headers.get("location")
    # after it, the same cookie (sent by hand: a browser would have dropped it) no longer signs anyone in
    sleep_until(logged_in + SESSION_TTL + 1.1)
    r = httpx2.get(short.base_url + "/authorize", params=params, headers={"cookie": cookies})
    assert r.status_code == 303 and r.headers["location"].startswith("/login"), r.headers.get("location")


def test_a_pending_authorization_request_expires_while_its_session_lives_on(short: ServerProcess) -> None:
    client = short.add_client()
    user = short.add_user()
    with httpx2.Client(base_url=short.base_url, follow_redirects=False) as browser:
        r = browser.get("/authorize", params=authorize_params(client.client_id, "https://app.example/cb"))
        started = time.time()
        assert r.status_code == 303 and r.headers["location"].startswith("/login")
        login_url = r.headers["location"]
        page = browser.get(login_url)
        assert page.status_code == 200  # within the lifetime: the login form
        form = hidden_fields(page.text)
        sleep_until(started + REQUEST_TTL + 1.1)
        expired = browser.get(login_url)
        assert expired.status_code == 400 and "expired" in expired.text
        posted = browser.post("/login", data={**form, "username": user, "password": PASSWORD})
        assert posted.status_code == 400 and "expired" in posted.text  # the right password changes nothing
        assert "location" not in posted.headers
        # the session cookie is still good (SESSION_TTL > REQUEST_TTL): a new request gets a new login form
        again = browser.get("/authorize", params=authorize_params(client.client_id, "https://app.example/cb"))
        assert again.status_code == 303 and browser.get(again.headers["location"]).status_code == 200
