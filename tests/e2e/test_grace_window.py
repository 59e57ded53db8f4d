"""Refresh-token grace window: one retry of the previous token inside the window returns the identical
successor pair; a second reuse, a reuse after the window, or a reuse after the successor was used revokes
the family. Refresh tokens stay hashed at rest."""

from __future__ import annotations

import time

from tests.support import ClientInfo, ServerProcess, authorize, exchange_code


def first_pair(server: ServerProcess, client: ClientInfo) -> dict[str, str]:
    auth = authorize(server, client, server.add_user(), redirect_uri=client.redirect_uri)
    return dict(exchange_code(server, client, auth).json())


def refresh(server: ServerProcess, client: ClientInfo, token: str) -> tuple[int, dict[str, object]]:
    r = server.token(client, {"grant_type": "refresh_token", "refresh_token": token})
    return r.status_code, r.json()


def test_retry_inside_window_returns_identical_pair_once_then_revokes_family(server: ServerProcess) -> None:
    client = server.add_client()  # confidential: 30 s grace by default
    old = first_pair(server, client)["refresh_token"]
    status, successor = refresh(server, client, old)
    assert status == 200
    time.sleep(5)
    status, retried = refresh(server, client, old)
    assert status == 200
    assert retried == successor  # the very same access and refresh token
    status, again = refresh(server, client, old)
    assert status == 400 and again["error"] == "invalid_grant"
    status, after = refresh(server, client, str(successor["refresh_token"]))
    assert status == 400 and after["error"] == "invalid_grant"  # family revoked


def test_reuse_after_successor_was_used_revokes_family_even_inside_window(server: ServerProcess) -> None:
    client = server.add_client()
    old = first_pair(server, client)["refresh_token"]
    _, second = refresh(server, client, old)
    status, third = refresh(server, client, str(second["refresh_token"]))
    assert status == 200
    status, reuse = refresh(server, client, old)
    assert status == 400 and reuse["error"] == "invalid_grant"
    assert refresh(server, client, str(third["refresh_token"]))[0] == 400


def test_public_clients_have_no_grace_window_by_default(server: ServerProcess) -> None:
    client = server.add_client(public=True, redirect_uri="http://127.0.0.1/cb")
    old = first_pair(server, client)["refresh_token"]
    _, successor = refresh(server, client, old)
    assert refresh(server, client, old)[0] == 400
    assert refresh(server, client, str(successor["refresh_token"]))[0] == 400


def test_reuse_after_window_revokes_family_and_successor_is_not_stored_in_clear(fresh_server: ServerProcess) -> None:
    server = fresh_server
    server.start(env={"TOKENWARD_REFRESH_GRACE_CONFIDENTIAL": "2"})
    client = server.add_client()
    old = first_pair(server, client)["refresh_token"]
    _, successor = refresh(server, client, old)
    rows = server.query("SELECT * FROM refresh_tokens") + server.query("SELECT * FROM access_tokens")
    dump = repr(rows)
    sealed = server.query("SELECT successor_sealed FROM refresh_tokens WHERE successor_sealed IS NOT NULL")
    assert len(sealed) == 1 and len(bytes(sealed[0][0])) > 100  # the successor pair is kept, sealed
    for secret in (str(successor["refresh_token"]), old, str(successor["access_token"])):
        assert secret not in dump and secret.encode().hex() not in dump.lower()  # text or BLOB
        assert all(secret.encode() not in bytes(value) for row in rows for value in row
                   if isinstance(value, bytes | memoryview))
    time.sleep(3.2)
    status, reuse = refresh(server, client, old)
    assert status == 400 and reuse["error"] == "invalid_grant"
    assert refresh(server, client, str(successor["refresh_token"]))[0] == 400
