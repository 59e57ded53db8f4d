"""Grant management from the CLI against a running server: list, revoke, and the revocations that
password changes and user removal imply."""

from __future__ import annotations

import json
import subprocess

import httpx2

from tests.support import TOKENWARD, ClientInfo, ServerProcess, authorize, exchange_code


def tw(server: ServerProcess, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([TOKENWARD, *args, "--db", server.db_url], input=stdin, capture_output=True, text=True,
                          timeout=60, check=False)


def login(server: ServerProcess, client: ClientInfo, user: str) -> dict[str, str]:
    return dict(exchange_code(server, client, authorize(server, client, user)).json())


def refresh_status(server: ServerProcess, client: ClientInfo, token: str) -> int:
    return server.token(client, {"grant_type": "refresh_token", "refresh_token": token}).status_code


def introspect(server: ServerProcess, client: ClientInfo, token: str) -> bool:
    assert client.client_secret
    r = httpx2.post(server.base_url + "/introspect", data={"token": token},
                    auth=(client.client_id, client.client_secret))
    return bool(r.json()["active"])


def test_grants_list_and_revoke_one_grant(server: ServerProcess) -> None:
    client, user = server.add_client(), server.add_user()
    first, second = login(server, client, user), login(server, client, user)
    listed = json.loads(tw(server, "grants", "list", "--user", user, "--json").stdout)
    assert len(listed) == 2 and {g["client_id"] for g in listed} == {client.client_id}
    revoked = tw(server, "grants", "revoke", listed[0]["id"])
    assert revoked.returncode == 0, revoked.stderr
    # Two grants made in the same second list in either order (created_at is in seconds; seen in CI on
    # PostgreSQL): exactly one family is dead, and it is the one whose access token went inactive.
    statuses = {name: refresh_status(server, client, tokens["refresh_token"])
                for name, tokens in (("first", first), ("second", second))}
    assert sorted(statuses.values()) == [200, 400], statuses
    for name, tokens in (("first", first), ("second", second)):
        assert introspect(server, client, tokens["access_token"]) is (statuses[name] == 200)
    assert len(json.loads(tw(server, "grants", "list", "--user", user, "--json").stdout)) == 1
    assert len(json.loads(tw(server, "grants", "list", "--user", user, "--all", "--json").stdout)) == 2


def test_password_change_and_logout_everywhere_revoke_every_grant_of_user(server: ServerProcess) -> None:
    client, user = server.add_client(), server.add_user()
    tokens = login(server, client, user)
    changed = tw(server, "users", "set-password", user, "--password-stdin", "--json", stdin="a-new-password-42\n")
    assert changed.returncode == 0, changed.stderr
    assert json.loads(changed.stdout)["grants_revoked"] == 1
    assert refresh_status(server, client, tokens["refresh_token"]) == 400
    assert not introspect(server, client, tokens["access_token"])

    other = server.add_user()
    tokens = login(server, client, other)
    out = tw(server, "grants", "revoke", "--user", other, "--json")
    assert out.returncode == 0 and json.loads(out.stdout)["grants_revoked"] == 1
    assert refresh_status(server, client, tokens["refresh_token"]) == 400


def test_removing_user_makes_their_tokens_inactive(server: ServerProcess) -> None:
    client, user = server.add_client(), server.add_user()
    tokens = login(server, client, user)
    assert introspect(server, client, tokens["access_token"])
    removed = tw(server, "users", "remove", user, "--json")
    assert removed.returncode == 0 and json.loads(removed.stdout)["grants_revoked"] == 1
    assert refresh_status(server, client, tokens["refresh_token"]) == 400
    assert not introspect(server, client, tokens["access_token"])


def _consent_page(server: ServerProcess, client: ClientInfo, user: str) -> tuple[httpx2.Client, dict[str, str]]:
    """A browser logged in as ``user`` and shown the consent page of a fresh pending request."""
    from tests.support import PASSWORD, hidden_fields
    from tokenward.protocol import pkce

    assert client.redirect_uri is not None
    browser = httpx2.Client(base_url=server.base_url, follow_redirects=False)
    r = browser.get("/authorize", params={
        "response_type": "code", "client_id": client.client_id, "redirect_uri": client.redirect_uri,
        "scope": "profile:write", "code_challenge": pkce.s256(pkce.new_verifier()), "code_challenge_method": "S256"})
    page = browser.get(r.headers["location"])
    r = browser.post("/login", data={**hidden_fields(page.text), "username": user, "password": PASSWORD})
    page = browser.get(r.headers["location"])
    assert page.status_code == 200 and 'value="allow"' in page.text, page.text[:300]
    return browser, hidden_fields(page.text)


def test_password_change_and_revoke_user_also_revoke_unredeemed_codes_and_pending_requests(
        server: ServerProcess) -> None:
    """Issue #12 §2.9: a code issued before the change (60 s lifetime) and a request waiting on the consent
    page would otherwise outlive the credentials that produced them."""
    client = server.add_client()
    for command in (("users", "set-password", "{user}", "--password-stdin"), ("grants", "revoke", "--user", "{user}")):
        user = server.add_user()
        code = authorize(server, client, user)
        browser, form = _consent_page(server, client, user)
        try:
            out = tw(server, *(a.format(user=user) for a in command), stdin="a-new-password-42\n")
            assert out.returncode == 0, out.stderr
            r = exchange_code(server, client, code)
            assert r.status_code == 400 and r.json()["error"] == "invalid_grant", (command, r.text)
            assert server.query(
                f"SELECT count(*) FROM authorization_requests WHERE id = '{form['request']}'") == [(0,)], command
            r = browser.post("/consent", data={**form, "decision": "allow"})
            assert "code=" not in r.headers.get("location", ""), (command, r.status_code, r.headers)
        finally:
            browser.close()
