"""The device grant with ``openid`` (issue #14 with #13): the device gets an ID token like the code grant gives
one, its auth_time and sid from the browser session that approved, and a refresh token only with
offline_access (OIDC Core §11)."""

from __future__ import annotations

from tests.device import add_device_client, decide_over_http, poll, start
from tests.e2e.test_oidc_tokens import left_half, user_id, verify
from tests.support import ServerProcess


def test_a_device_approved_for_openid_gets_a_verified_id_token(server: ServerProcess) -> None:
    client = add_device_client(server, scope="openid profile offline_access")
    user = server.add_user()
    started = start(server, client, scope="openid profile")
    decide_over_http(server, started["user_code"], user)
    r = poll(server, client, started["device_code"])
    assert r.status_code == 200, r.text
    body = r.json()
    assert "refresh_token" not in body  # an OIDC request without offline_access
    header, claims = verify(server, body["id_token"])
    assert header["alg"] == "RS256"
    assert claims["sub"] == user_id(server, user) and claims["aud"] == client.client_id
    assert claims["iss"] == server.base_url and "nonce" not in claims
    assert claims["at_hash"] == left_half(body["access_token"], "sha256")
    assert isinstance(claims["auth_time"], int) and claims["sid"]

    offline = start(server, client, scope="openid offline_access")
    decide_over_http(server, offline["user_code"], user)
    lasting = poll(server, client, offline["device_code"]).json()
    assert lasting["refresh_token"] and lasting["id_token"]
    plain = start(server, client, scope="profile")
    decide_over_http(server, plain["user_code"], user)
    assert "id_token" not in poll(server, client, plain["device_code"]).json()  # no openid: no ID token
