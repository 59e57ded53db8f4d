"""RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0) against a real server (issue #13): straight
back with a valid hint, a confirmation page otherwise, never a redirect to an unregistered URI, and the SSO
session really gone afterwards (``prompt=none`` → ``login_required``, even with the old cookie)."""

from __future__ import annotations

import base64
import json
from contextlib import closing

import httpx2
import pytest

from tests.support import ClientInfo, ServerProcess, authorize, exchange_code, hidden_fields, query_of
from tokenward.protocol.pkce import new_verifier, s256

SCOPE = "openid profile:read"
BACK = "https://rp.example/logged-out"
COOKIE = "tw_session"


def oidc_client(server: ServerProcess) -> ClientInfo:
    return server.add_client(redirect_uri="https://rp.example/cb", scope=SCOPE,
                             post_logout_redirect_uris=[BACK, "https://rp.example/bye?x=1"])


def signed_in(server: ServerProcess, client: ClientInfo, user: str) -> tuple[httpx2.Client, str]:
    """A browser signed in as ``user`` through the code flow, and the ID token the client got."""
    browser = httpx2.Client(base_url=server.base_url, follow_redirects=False)
    auth = authorize(server, client, user, scope=SCOPE, browser=browser)
    tokens = exchange_code(server, client, auth).json()
    return browser, str(tokens["id_token"])


def prompt_none(server: ServerProcess, client: ClientInfo, cookie: str | None) -> dict[str, str]:
    """What a silent authorization answers for a browser presenting ``cookie``."""
    with httpx2.Client(base_url=server.base_url, follow_redirects=False,
                       cookies={COOKIE: cookie} if cookie else None) as browser:
        r = browser.get("/authorize", params={
            "response_type": "code", "client_id": client.client_id, "redirect_uri": client.redirect_uri,
            "scope": SCOPE, "state": "s", "prompt": "none", "code_challenge": s256(new_verifier()),
            "code_challenge_method": "S256"})
    assert r.status_code == 303, r.text
    return query_of(r.headers["location"])


def sessions_of(server: ServerProcess, username: str) -> int:
    (row,) = server.query("SELECT COUNT(*) FROM sessions JOIN users ON users.id = sessions.user_id "
                          f"WHERE users.username = '{username}'")
    return int(row[0])


def test_valid_hint_returns_to_the_registered_uri_with_state_and_ends_the_session(server: ServerProcess) -> None:
    client, user = oidc_client(server), server.add_user()
    browser, id_token = signed_in(server, client, user)
    with closing(browser):
        cookie = browser.cookies[COOKIE]
        assert "code" in prompt_none(server, client, cookie)  # the SSO session works before
        r = browser.get("/end_session", params={"id_token_hint": id_token, "post_logout_redirect_uri": BACK,
                                                "state": "bye-1", "ui_locales": "en", "logout_hint": user})
        assert r.status_code == 303
        assert r.headers["location"] == BACK + "?state=bye-1"
        assert COOKIE not in browser.cookies  # cleared
        assert sessions_of(server, user) == 0
        assert prompt_none(server, client, None)["error"] == "login_required"
        assert prompt_none(server, client, cookie)["error"] == "login_required"  # the old cookie names nothing


def test_post_with_a_hint_and_a_uri_with_a_query_keeps_its_query(server: ServerProcess) -> None:
    client, user = oidc_client(server), server.add_user()
    browser, id_token = signed_in(server, client, user)
    with closing(browser):
        r = browser.post("/end_session", data={"id_token_hint": id_token, "state": "s2",
                                               "post_logout_redirect_uri": "https://rp.example/bye?x=1"},
                         headers={"Sec-Fetch-Site": "cross-site", "Origin": "https://rp.example"})
        assert r.status_code == 303 and r.headers["location"] == "https://rp.example/bye?x=1&state=s2"
        assert sessions_of(server, user) == 0


def test_missing_hint_asks_first_then_returns_to_the_uri_registered_for_client_id(server: ServerProcess) -> None:
    client, user = oidc_client(server), server.add_user()
    browser, _ = signed_in(server, client, user)
    with closing(browser):
        page = browser.get("/end_session", params={"client_id": client.client_id, "post_logout_redirect_uri": BACK,
                                                   "state": "st"})
        assert page.status_code == 200 and 'action="/end_session/confirm"' in page.text
        form = hidden_fields(page.text)
        assert form["csrf_token"] and form["client_id"] == client.client_id
        assert sessions_of(server, user) == 1  # nothing ended before the user says so
        r = browser.post("/end_session/confirm", data={**form, "sign_out": "yes"})
        assert r.status_code == 303 and r.headers["location"] == BACK + "?state=st"
        assert sessions_of(server, user) == 0
        assert prompt_none(server, client, None)["error"] == "login_required"


@pytest.mark.parametrize("hinted", [True, False])
def test_an_unregistered_uri_is_never_redirected_to(server: ServerProcess, hinted: bool) -> None:
    client, user = oidc_client(server), server.add_user()
    browser, id_token = signed_in(server, client, user)
    evil = "https://evil.example/steal"
    with closing(browser):
        params = {"post_logout_redirect_uri": evil, "state": "st", "client_id": client.client_id}
        if hinted:
            params["id_token_hint"] = id_token
        r = browser.get("/end_session", params=params)
        if not hinted:
            assert r.status_code == 200 and "post_logout_redirect_uri" not in hidden_fields(r.text)
            r = browser.post("/end_session/confirm", data={**hidden_fields(r.text), "post_logout_redirect_uri": evil})
        assert r.status_code == 200 and "location" not in r.headers
        assert "You are signed out" in r.text and "evil.example" not in r.text
        assert sessions_of(server, user) == 0


def test_a_client_id_other_than_the_hints_audience_is_an_error_page(server: ServerProcess) -> None:
    client, other, user = oidc_client(server), oidc_client(server), server.add_user()
    browser, id_token = signed_in(server, client, user)
    with closing(browser):
        r = browser.get("/end_session", params={"id_token_hint": id_token, "client_id": other.client_id,
                                                "post_logout_redirect_uri": BACK})
        assert r.status_code == 400 and "does not match" in r.text and "location" not in r.headers
        assert sessions_of(server, user) == 1  # nothing ended
        assert "code" in prompt_none(server, client, browser.cookies[COOKIE])


def tampered(token: str) -> str:
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["sub"] = "someone-else"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{header}.{forged}.{signature}"


@pytest.mark.parametrize("hint", ["tampered", "garbage", "access_token"])
def test_a_hint_that_is_not_our_id_token_is_refused(server: ServerProcess, hint: str) -> None:
    """Not honoured: a confirmation page, and after it no redirect, even to a URI registered for client_id."""
    client, user = oidc_client(server), server.add_user()
    browser = httpx2.Client(base_url=server.base_url, follow_redirects=False)
    tokens = exchange_code(server, client, authorize(server, client, user, scope=SCOPE, browser=browser)).json()
    value = {"tampered": tampered(tokens["id_token"]), "garbage": "a.b.c", "access_token": tokens["access_token"]}
    with closing(browser):
        page = browser.get("/end_session", params={"id_token_hint": value[hint], "client_id": client.client_id,
                                                   "post_logout_redirect_uri": BACK, "state": "st"})
        assert page.status_code == 200 and 'action="/end_session/confirm"' in page.text
        assert sessions_of(server, user) == 1
        r = browser.post("/end_session/confirm", data={**hidden_fields(page.text), "sign_out": "yes"})
        assert r.status_code == 200 and "location" not in r.headers and "You are signed out" in r.text
        assert sessions_of(server, user) == 0


def test_a_hint_from_another_session_of_the_same_user_asks_first(server: ServerProcess) -> None:
    """The hint's ``sid`` names the session it was issued in: another browser's logout is not this one's."""
    client, user = oidc_client(server), server.add_user()
    first, id_token = signed_in(server, client, user)
    second, _ = signed_in(server, client, user)
    with closing(first), closing(second):
        page = second.get("/end_session", params={"id_token_hint": id_token, "post_logout_redirect_uri": BACK})
        assert page.status_code == 200 and 'action="/end_session/confirm"' in page.text
        assert sessions_of(server, user) == 2
        r = first.get("/end_session", params={"id_token_hint": id_token, "post_logout_redirect_uri": BACK})
        assert r.status_code == 303 and r.headers["location"] == BACK
        assert sessions_of(server, user) == 1  # only the first browser's


def test_the_confirmation_refuses_a_wrong_csrf_token_and_cross_site_posts(server: ServerProcess) -> None:
    client, user = oidc_client(server), server.add_user()
    browser, _ = signed_in(server, client, user)
    with closing(browser):
        form = hidden_fields(browser.get("/end_session").text)
        assert browser.post("/end_session/confirm", data={**form, "csrf_token": "x" * 64}).status_code == 403
        assert browser.post("/end_session/confirm", data={k: v for k, v in form.items() if k != "csrf_token"}
                            ).status_code == 403
        assert browser.post("/end_session/confirm", data=form, headers={"Sec-Fetch-Site": "cross-site"}
                            ).status_code == 403
        assert browser.post("/end_session/confirm", data=form, headers={"Origin": "https://evil.example"}
                            ).status_code == 403
        assert sessions_of(server, user) == 1
        other = httpx2.Client(base_url=server.base_url, follow_redirects=False)  # another browser's token
        with other:
            other.get("/account")
            assert other.post("/end_session/confirm", data=form).status_code == 403
        assert browser.post("/end_session/confirm", data=form).status_code == 200
        assert sessions_of(server, user) == 0


def test_oversized_or_duplicated_parameters_are_an_error_page(server: ServerProcess) -> None:
    client, user = oidc_client(server), server.add_user()
    browser, _ = signed_in(server, client, user)
    with closing(browser):
        assert browser.get("/end_session", params={"state": "s" * 1025}).status_code == 400
        assert browser.get("/end_session", params={"post_logout_redirect_uri": "https://rp.example/" + "a" * 2048}
                           ).status_code == 400
        assert browser.get("/end_session", params={"id_token_hint": "a" * 8193}).status_code == 400
        assert browser.get("/end_session?state=a&state=b").status_code == 400
        assert browser.get("/end_session", params={"client_id": "no-such-client"}).status_code == 400
        assert sessions_of(server, user) == 1


def test_without_a_session_a_registered_uri_is_still_honoured(server: ServerProcess) -> None:
    """Nobody signed in: nothing to end or to ask; the relying party gets its user back."""
    client, user = oidc_client(server), server.add_user()
    browser, id_token = signed_in(server, client, user)
    browser.close()
    with httpx2.Client(base_url=server.base_url, follow_redirects=False) as fresh:
        r = fresh.get("/end_session", params={"id_token_hint": id_token, "post_logout_redirect_uri": BACK,
                                              "state": "z"})
        assert r.status_code == 303 and r.headers["location"] == BACK + "?state=z"
        r = fresh.get("/end_session", params={"client_id": client.client_id, "post_logout_redirect_uri": "https://x.example"})
        assert r.status_code == 200 and "location" not in r.headers
