"""The user's own page against a real server (issue #13 part 3): sign in with the login form's fields, see the
connected apps, revoke one (refresh token invalid_grant, introspection inactive, consent asked again), sign out;
forms refuse a wrong CSRF token and cross-site posts."""

from __future__ import annotations

import time
from contextlib import closing

import httpx2

from tests.e2e.test_end_session import COOKIE, SCOPE, prompt_none, sessions_of
from tests.support import PASSWORD, ClientInfo, ServerProcess, authorize, exchange_code, hidden_fields
from tokenward.protocol.pkce import new_verifier, s256

OFFLINE = SCOPE + " offline_access"  # OpenID Connect: a refresh token comes with offline_access (Core §11)


def today() -> str:
    return time.strftime("%Y-%m-%d", time.gmtime())


def granted(server: ServerProcess) -> tuple[ClientInfo, str, httpx2.Client, dict[str, str]]:
    client = server.add_client(redirect_uri="https://rp.example/cb", scope=OFFLINE)
    user = server.add_user()
    browser = httpx2.Client(base_url=server.base_url, follow_redirects=False)
    tokens = exchange_code(server, client, authorize(server, client, user, scope=OFFLINE, browser=browser)).json()
    return client, user, browser, tokens


def introspect(server: ServerProcess, client: ClientInfo, token: str) -> bool:
    assert client.client_secret
    r = httpx2.post(server.base_url + "/introspect", data={"token": token},
                    auth=(client.client_id, client.client_secret))
    return bool(r.json()["active"])


def test_sign_in_uses_the_login_form_fields_and_lists_the_grant(server: ServerProcess) -> None:
    client, user, first, _ = granted(server)
    first.close()
    with httpx2.Client(base_url=server.base_url, follow_redirects=False) as browser:
        page = browser.get("/account")
        assert page.status_code == 200 and 'action="/account/login"' in page.text
        assert 'name="username"' in page.text and 'name="password"' in page.text
        form = hidden_fields(page.text)
        wrong = browser.post("/account/login", data={**form, "username": user, "password": "nope"})
        assert wrong.status_code == 401 and "incorrect" in wrong.text
        r = browser.post("/account/login", data={**form, "username": user, "password": PASSWORD})
        assert r.status_code == 303 and r.headers["location"] == "/account"
        page = browser.get("/account")
        assert page.status_code == 200 and "Connected apps" in page.text
        name = server.query(f"SELECT name FROM clients WHERE client_id = '{client.client_id}'")[0][0]
        assert name in page.text and f'name="revoke" value="{client.client_id}"' in page.text
        assert "<code class=\"scope\">openid</code>" in page.text and "profile:read" in page.text
        assert page.text.count(f'datetime="{today()}T') == 2  # first granted, last used
        assert 'name="sign_out"' in page.text


def test_revoke_ends_the_grants_and_forgets_consent(server: ServerProcess) -> None:
    client, user, browser, tokens = granted(server)
    with closing(browser):
        assert introspect(server, client, tokens["access_token"])
        form = hidden_fields(browser.get("/account").text)
        r = browser.post("/account", data={**form, "revoke": client.client_id})
        assert r.status_code == 303 and r.headers["location"] == "/account"
        assert f'value="{client.client_id}"' not in browser.get("/account").text
        refreshed = server.token(client, {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]})
        assert refreshed.status_code == 400 and refreshed.json()["error"] == "invalid_grant"
        assert not introspect(server, client, tokens["access_token"])
        assert prompt_none(server, client, browser.cookies[COOKIE])["error"] == "consent_required"
        start = browser.get("/authorize", params={
            "response_type": "code", "client_id": client.client_id, "redirect_uri": client.redirect_uri,
            "scope": OFFLINE, "state": "s", "code_challenge": s256(new_verifier()), "code_challenge_method": "S256"})
        assert start.headers["location"].startswith("/consent")
        consent = browser.get(start.headers["location"])
        assert consent.status_code == 200 and 'name="decision"' in consent.text  # asked again
        assert sessions_of(server, user) == 1  # revoking an app is not signing out


def test_sign_out_ends_the_sso_session(server: ServerProcess) -> None:
    client, user, browser, _ = granted(server)
    with closing(browser):
        cookie = browser.cookies[COOKIE]
        form = hidden_fields(browser.get("/account").text)
        r = browser.post("/account", data={**form, "sign_out": "yes"})
        assert r.status_code == 200 and "You are signed out" in r.text
        assert sessions_of(server, user) == 0
        assert prompt_none(server, client, cookie)["error"] == "login_required"
        assert 'action="/account/login"' in browser.get("/account").text


def test_forms_refuse_a_wrong_csrf_token_and_cross_site_posts(server: ServerProcess) -> None:
    client, user, browser, tokens = granted(server)
    with closing(browser):
        form = hidden_fields(browser.get("/account").text)
        for data, headers in [({"csrf_token": "x" * 64}, {}), ({"csrf_token": ""}, {}),
                              ({}, {"Sec-Fetch-Site": "cross-site"}), ({}, {"Origin": "https://evil.example"})]:
            for action in ({"revoke": client.client_id}, {"sign_out": "yes"}):
                r = browser.post("/account", data={**form, **data, **action}, headers=headers)
                assert r.status_code == 403, (data, headers, action)
        assert introspect(server, client, tokens["access_token"]) and sessions_of(server, user) == 1
        with httpx2.Client(base_url=server.base_url, follow_redirects=False) as other:
            login = hidden_fields(other.get("/account").text)
            assert other.post("/account/login", data={"csrf_token": "x" * 64, "username": user,
                                                      "password": PASSWORD}).status_code == 403
            assert other.post("/account/login", data={**login, "username": user, "password": PASSWORD},
                              headers={"Sec-Fetch-Site": "cross-site"}).status_code == 403
            assert other.post("/account", data={**form, "sign_out": "yes"}).status_code == 403  # not its token
        assert sessions_of(server, user) == 1
