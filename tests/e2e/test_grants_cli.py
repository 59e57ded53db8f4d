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
    assert refresh_status(server, client, first["refresh_token"]) == 400
    assert not introspect(server, client, first["access_token"])
    assert refresh_status(server, client, second["refresh_token"]) == 200
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
