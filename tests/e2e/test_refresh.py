"""Refresh with rotation and reuse detection (RFC 6749 §6, RFC 9700 §4.14.2)."""

from __future__ import annotations

from tests.support import ClientInfo, ServerProcess, authorize, exchange_code


def start(server: ServerProcess, scope: str = "profile:read profile:write") -> tuple[ClientInfo, dict[str, str]]:
    client = server.add_client(public=True, redirect_uri="http://127.0.0.1/cb")
    auth = authorize(server, client, server.add_user(), scope=scope, redirect_uri="http://127.0.0.1:8080/cb")
    r = exchange_code(server, client, auth)
    assert r.status_code == 200
    return client, r.json()


def refresh(server: ServerProcess, client: ClientInfo, token: str, **extra: str) -> dict[str, object]:
    r = server.token(client, {"grant_type": "refresh_token", "refresh_token": token, **extra})
    return {"status": r.status_code, **r.json()}


def test_refresh_rotates_token_on_every_use_when_token_is_valid(server: ServerProcess) -> None:
    client, tokens = start(server)
    current = tokens["refresh_token"]
    seen = {current}
    for _ in range(3):
        out = refresh(server, client, current)
        assert out["status"] == 200
        assert out["refresh_token"] != current and out["access_token"] != tokens["access_token"]
        current = str(out["refresh_token"])
        assert current not in seen
        seen.add(current)


def test_reuse_of_rotated_token_revokes_whole_family_when_presented_again(server: ServerProcess) -> None:
    client, tokens = start(server)
    first = tokens["refresh_token"]
    second = refresh(server, client, first)
    assert second["status"] == 200
    reuse = refresh(server, client, first)
    assert reuse["status"] == 400 and reuse["error"] == "invalid_grant"
    # the legitimate successor is dead too: the family is revoked
    after = refresh(server, client, str(second["refresh_token"]))
    assert after["status"] == 400 and after["error"] == "invalid_grant"


def test_refresh_narrows_scope_but_new_token_keeps_original_scope(server: ServerProcess) -> None:
    client, tokens = start(server)
    narrow = refresh(server, client, tokens["refresh_token"], scope="profile:read")
    assert narrow["status"] == 200 and narrow["scope"] == "profile:read"
    full = refresh(server, client, str(narrow["refresh_token"]))
    assert full["status"] == 200 and full["scope"] == "profile:read profile:write"


def test_refresh_refuses_wider_scope_without_consuming_token(server: ServerProcess) -> None:
    client, tokens = start(server, scope="profile:read")
    wider = refresh(server, client, tokens["refresh_token"], scope="profile:read profile:write")
    assert wider["status"] == 400 and wider["error"] == "invalid_scope"
    assert refresh(server, client, tokens["refresh_token"])["status"] == 200


def test_refresh_token_of_another_client_is_invalid_grant_and_stays_usable(server: ServerProcess) -> None:
    client, tokens = start(server)
    other = server.add_client(public=True, redirect_uri="http://127.0.0.1/cb")
    stolen = refresh(server, other, tokens["refresh_token"])
    assert stolen["status"] == 400 and stolen["error"] == "invalid_grant"
    assert refresh(server, client, tokens["refresh_token"])["status"] == 200


def test_confidential_client_must_authenticate_when_refreshing(server: ServerProcess) -> None:
    client = server.add_client()
    auth = authorize(server, client, server.add_user())
    tokens = exchange_code(server, client, auth).json()
    anonymous = server.token(None, {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"],
                                    "client_id": client.client_id})
    assert anonymous.status_code == 401 and anonymous.json()["error"] == "invalid_client"
    assert refresh(server, client, tokens["refresh_token"])["status"] == 200
