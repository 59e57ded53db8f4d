"""The UserInfo endpoint against a real server (OIDC Core §5.3, RFC 6750; issue #13 Part 2): users given
claims with the real ``tokenward users add/update`` command, tokens from the real code flow."""

from __future__ import annotations

import base64
import json
import subprocess
import uuid

import httpx2
import pytest

from tests.support import PASSWORD, TOKENWARD, ClientInfo, ServerProcess, authorize, exchange_code

SCOPES = "openid profile email address phone offline_access profile:read"


def tw(server: ServerProcess, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([TOKENWARD, *args, "--db", server.db_url], input=stdin, capture_output=True, text=True,
                          timeout=60, check=False)


def new_user(server: ServerProcess, *flags: str) -> str:
    username = f"ui-{uuid.uuid4().hex[:8]}"
    r = tw(server, "users", "add", username, "--password-stdin", *flags, stdin=PASSWORD + "\n")
    assert r.returncode == 0, r.stderr
    return username


def tokens(server: ServerProcess, client: ClientInfo, username: str, scope: str,
           extra: dict[str, str] | None = None) -> dict[str, str]:
    r = exchange_code(server, client, authorize(server, client, username, scope=scope, extra=extra))
    assert r.status_code == 200, r.text
    body: dict[str, str] = r.json()
    return body


def userinfo(server: ServerProcess, token: str, method: str = "GET") -> httpx2.Response:
    return httpx2.request(method, server.base_url + "/userinfo", headers={"Authorization": f"Bearer {token}"})


def sub_of(server: ServerProcess, username: str) -> str:
    (row,) = server.query(f"SELECT id FROM users WHERE username = '{username}'")
    return str(row[0])


@pytest.fixture(scope="module")
def rp(server: ServerProcess) -> ClientInfo:
    return server.add_client(public=True, redirect_uri="https://rp.example/cb", scope=SCOPES,
                             audiences=("https://api.example",))


ALICE = ("--email", "alice@example.com", "--email-verified", "--name", "Alice Liddell", "--given-name", "Alice",
         "--family-name", "Liddell", "--claim", "nickname=Al", "--claim", 'address={"country": "GB"}',
         "--claim", "phone_number=+44 20 7946 0000", "--claim", "phone_number_verified=false",
         "--claim", "favourite_colour=blue", "--claim", "shoe_size=38")


def test_userinfo_releases_claims_by_scope_with_sub_and_no_store(server: ServerProcess, rp: ClientInfo) -> None:
    user = new_user(server, *ALICE)
    body = tokens(server, rp, user, "openid profile email")
    r = userinfo(server, body["access_token"])
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/json")
    assert "no-store" in r.headers["cache-control"]
    claims = r.json()
    updated_at = claims.pop("updated_at")
    assert isinstance(updated_at, int) and updated_at > 0
    assert claims == {"sub": sub_of(server, user), "name": "Alice Liddell", "given_name": "Alice",
                      "family_name": "Liddell", "nickname": "Al", "preferred_username": user,
                      "email": "alice@example.com", "email_verified": True}


def test_address_and_phone_scopes_release_their_claims_with_json_values(server: ServerProcess,
                                                                         rp: ClientInfo) -> None:
    user = new_user(server, *ALICE)
    claims = userinfo(server, tokens(server, rp, user, "openid address phone")["access_token"]).json()
    assert claims == {"sub": sub_of(server, user), "address": {"country": "GB"},
                      "phone_number": "+44 20 7946 0000", "phone_number_verified": False}


def test_openid_alone_gives_only_sub_and_empty_claims_are_omitted(server: ServerProcess, rp: ClientInfo) -> None:
    user = new_user(server)
    assert userinfo(server, tokens(server, rp, user, "openid")["access_token"]).json() == {
        "sub": sub_of(server, user)}
    claims = userinfo(server, tokens(server, rp, user, "openid profile email")["access_token"]).json()
    assert claims == {"sub": sub_of(server, user), "preferred_username": user}  # no email → no email_verified


def test_claims_request_userinfo_member_releases_named_claims_beyond_the_scopes(server: ServerProcess,
                                                                                rp: ClientInfo) -> None:
    user = new_user(server, *ALICE)
    request = {"userinfo": {"favourite_colour": None, "email": {"essential": True}, "missing_one": None},
               "id_token": {"shoe_size": None}}
    body = tokens(server, rp, user, "openid", extra={"claims": json.dumps(request)})
    assert userinfo(server, body["access_token"]).json() == {
        "sub": sub_of(server, user), "favourite_colour": "blue", "email": "alice@example.com"}


def test_users_update_changes_what_userinfo_answers_next(server: ServerProcess, rp: ClientInfo) -> None:
    user = new_user(server, *ALICE)
    token = tokens(server, rp, user, "openid profile email")["access_token"]
    before = userinfo(server, token).json()
    r = tw(server, "users", "update", user, "--email", "alice@new.example", "--claim", "nickname=",
           "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["claims"]["email"] == "alice@new.example"
    after = userinfo(server, token).json()
    assert after["email"] == "alice@new.example" and "nickname" not in after and before["nickname"] == "Al"
    assert after["updated_at"] >= before["updated_at"]


def test_post_with_header_and_with_form_body_both_work(server: ServerProcess, rp: ClientInfo) -> None:
    user = new_user(server, *ALICE)
    token = tokens(server, rp, user, "openid email")["access_token"]
    expected = {"sub": sub_of(server, user), "email": "alice@example.com", "email_verified": True}
    assert userinfo(server, token, "POST").json() == expected
    r = httpx2.post(server.base_url + "/userinfo", data={"access_token": token})
    assert r.status_code == 200 and r.json() == expected


def test_token_in_the_query_is_never_used(server: ServerProcess, rp: ClientInfo) -> None:
    user = new_user(server)
    token = tokens(server, rp, user, "openid")["access_token"]
    r = httpx2.get(server.base_url + "/userinfo", params={"access_token": token})
    assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer ")
    assert "error=" not in r.headers["www-authenticate"]
    r = httpx2.post(server.base_url + "/userinfo", params={"access_token": token},
                    headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 400 and r.json()["error"] == "invalid_request"


def test_token_in_header_and_body_at_once_is_invalid_request(server: ServerProcess, rp: ClientInfo) -> None:
    token = tokens(server, rp, new_user(server), "openid")["access_token"]
    r = httpx2.post(server.base_url + "/userinfo", data={"access_token": token},
                    headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 400 and r.json()["error"] == "invalid_request"
    assert "no-store" in r.headers["cache-control"]


def test_no_token_gets_a_bare_bearer_challenge(server: ServerProcess) -> None:
    r = httpx2.get(server.base_url + "/userinfo")
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == f'Bearer realm="{server.base_url}"'
    assert "no-store" in r.headers["cache-control"]


@pytest.mark.parametrize("mangle", ["garbage", "tampered", "id_token", "refresh_token"])
def test_a_token_that_is_not_our_access_token_is_invalid_token(server: ServerProcess, rp: ClientInfo,
                                                               mangle: str) -> None:
    body = tokens(server, rp, new_user(server), "openid offline_access")
    head, payload, sig = body["access_token"].split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["sub"] = "someone-else"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    token = {"garbage": "not-a-token", "tampered": f"{head}.{forged}.{sig}", "id_token": body["id_token"],
             "refresh_token": body["refresh_token"]}[mangle]
    r = userinfo(server, token)
    assert r.status_code == 401, r.text
    assert r.headers["www-authenticate"].startswith(f'Bearer realm="{server.base_url}", error="invalid_token"')
    assert r.json()["error"] == "invalid_token" and "no-store" in r.headers["cache-control"]
    assert token not in r.text


def test_a_token_without_openid_is_insufficient_scope(server: ServerProcess, rp: ClientInfo) -> None:
    token = tokens(server, rp, new_user(server, *ALICE), "profile:read")["access_token"]
    r = userinfo(server, token)
    assert r.status_code == 403 and r.json()["error"] == "insufficient_scope"
    assert 'error="insufficient_scope"' in r.headers["www-authenticate"]
    assert 'scope="openid"' in r.headers["www-authenticate"]


def test_the_token_is_accepted_whatever_its_audience(server: ServerProcess, rp: ClientInfo) -> None:
    token = tokens(server, rp, new_user(server), "openid")["access_token"]
    payload = token.split(".")[1]
    aud = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["aud"]
    assert aud == "https://api.example" and aud != server.base_url
    assert userinfo(server, token).status_code == 200


def test_a_revoked_access_token_is_invalid_token(server: ServerProcess, rp: ClientInfo) -> None:
    token = tokens(server, rp, new_user(server), "openid")["access_token"]
    assert userinfo(server, token).status_code == 200
    r = httpx2.post(server.base_url + "/revoke", data={"token": token, "client_id": rp.client_id})
    assert r.status_code == 200, r.text
    assert userinfo(server, token).status_code == 401


def test_revoking_the_grant_by_refresh_token_stops_its_access_token(server: ServerProcess, rp: ClientInfo) -> None:
    body = tokens(server, rp, new_user(server), "openid offline_access")
    r = httpx2.post(server.base_url + "/revoke", data={"token": body["refresh_token"], "client_id": rp.client_id})
    assert r.status_code == 200, r.text
    assert userinfo(server, body["access_token"]).json()["error"] == "invalid_token"


def test_code_replay_revokes_the_grant_and_the_first_token_fails_at_userinfo(server: ServerProcess,
                                                                             rp: ClientInfo) -> None:
    auth = authorize(server, rp, new_user(server), scope="openid")
    first = exchange_code(server, rp, auth)
    assert first.status_code == 200, first.text
    token = first.json()["access_token"]
    assert userinfo(server, token).status_code == 200
    replay = exchange_code(server, rp, auth)
    assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"
    r = userinfo(server, token)
    assert r.status_code == 401 and r.json()["error"] == "invalid_token"


def test_removing_the_user_makes_their_token_invalid(server: ServerProcess, rp: ClientInfo) -> None:
    user = new_user(server)
    token = tokens(server, rp, user, "openid")["access_token"]
    assert tw(server, "users", "remove", user).returncode == 0
    assert userinfo(server, token).status_code == 401


def test_other_methods_get_405_with_allow(server: ServerProcess) -> None:
    r = httpx2.put(server.base_url + "/userinfo")
    assert r.status_code == 405 and r.headers["allow"] == "GET, POST"
    assert r.json()["error"] == "invalid_request"


def test_an_oversized_body_is_413(server: ServerProcess) -> None:
    r = httpx2.post(server.base_url + "/userinfo", content=b"access_token=" + b"a" * 100_000,
                    headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 413 and "no-store" in r.headers["cache-control"]


def test_users_cli_refuses_reserved_and_oversized_claims(server: ServerProcess) -> None:
    user = new_user(server)
    for claim in ("sub=x", "iss=https://evil.example", "exp=1", "aud=x", "updated_at=1"):
        r = tw(server, "users", "update", user, "--claim", claim)
        assert r.returncode != 0 and "set by the server" in r.stderr, (claim, r.stderr)
    r = tw(server, "users", "update", user, "--claim", "bio=" + "x" * 5000)
    assert r.returncode != 0 and "4096" in r.stderr
    r = tw(server, "users", "update", user, "--claim", "address=Main Street")
    assert r.returncode != 0 and "address" in r.stderr
    r = tw(server, "users", "update", user, "--claim", "no-equals-sign")
    assert r.returncode != 0 and "KEY=VALUE" in r.stderr
    shown = json.loads(tw(server, "users", "show", user, "--json").stdout)
    assert shown["claims"] == {} and shown["updated_at"] is None


def test_users_show_prints_claims_parsed_as_json(server: ServerProcess) -> None:
    user = new_user(server, "--claim", "age=42", "--claim", "vip=true", "--claim", "motto=carpe diem",
                    "--claim", "zip=007")
    shown = json.loads(tw(server, "users", "show", user, "--json").stdout)
    assert shown["claims"] == {"age": 42, "vip": True, "motto": "carpe diem", "zip": "007"}
    assert shown["id"] == sub_of(server, user)
    text = tw(server, "users", "show", user).stdout
    assert "motto" in text and sub_of(server, user) in text
    assert tw(server, "users", "show", "nobody-" + uuid.uuid4().hex[:6]).returncode != 0
