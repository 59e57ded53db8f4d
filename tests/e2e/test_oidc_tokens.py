"""OpenID Connect at the token endpoint against a real server (issue #13 Part 2): the ID token's header and
claims, at_hash per algorithm, offline_access, refreshed ID tokens, the claims request, and the PKCE opt-out."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import time

import httpx2
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from tests.support import ServerProcess, authorize, exchange_code
from tokenward.server.store.sql.store import SqlStore

OIDC = "openid profile email"


def verify(server: ServerProcess, token: str) -> tuple[dict[str, object], dict[str, object]]:
    keys = KeySet.import_key_set(httpx2.get(server.base_url + "/jwks.json").json())
    decoded = jwt.decode(token, keys, algorithms=["ES256", "RS256", "EdDSA"])
    return dict(decoded.header), dict(decoded.claims)


def left_half(token: str, digest: str) -> str:
    value = hashlib.new(digest, token.encode()).digest()
    return base64.urlsafe_b64encode(value[: len(value) // 2]).rstrip(b"=").decode()


def user_id(server: ServerProcess, username: str) -> str:
    (row,) = server.query(f"SELECT id FROM users WHERE username = '{username}'")
    return str(row[0])


def set_claims(server: ServerProcess, username: str, claims: dict[str, object]) -> None:
    async def go() -> None:
        store = SqlStore.from_url(server.db_url)
        try:
            async with store.transaction(write=True) as tx:
                user = await tx.get_user_by_username(username)
                assert user is not None
                await tx.set_claims(user.id, claims, int(time.time()))
        finally:
            await store.close()
    asyncio.run(go())


def scope_of(extra: str) -> str:
    return f"{OIDC} {extra}".strip()


def test_id_token_is_rs256_with_every_required_claim_and_scope_claims_stay_out(server: ServerProcess) -> None:
    client = server.add_client(public=True, redirect_uri="https://rp.example/cb", scope=scope_of("offline_access"))
    user = server.add_user()
    set_claims(server, user, {"email": "a@example.com", "email_verified": True, "name": "A"})
    before = int(time.time())
    auth = authorize(server, client, user, scope=OIDC, extra={"nonce": "n-0S6_WzA2Mj"})
    r = exchange_code(server, client, auth)
    assert r.status_code == 200, r.text
    body = r.json()
    assert "refresh_token" not in body  # OIDC Core §11: no offline_access, no refresh token
    header, claims = verify(server, body["id_token"])
    assert header["alg"] == "RS256" and header["typ"] == "JWT" and header["kid"]
    assert set(claims) == {"iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "at_hash", "sid", "amr"}
    assert claims["iss"] == server.base_url and claims["aud"] == client.client_id
    assert claims["sub"] == user_id(server, user)
    assert claims["nonce"] == "n-0S6_WzA2Mj" and claims["amr"] == ["pwd"]
    assert before <= int(claims["auth_time"]) <= int(claims["iat"])  # type: ignore[call-overload]
    assert int(claims["exp"]) - int(claims["iat"]) == 3600  # type: ignore[call-overload]
    assert claims["at_hash"] == left_half(body["access_token"], "sha256")
    (sid,) = server.query("SELECT sid FROM sessions WHERE user_id IS NOT NULL AND sid IS NOT NULL "
                          f"AND user_id = '{claims['sub']}'")
    assert claims["sid"] == sid[0]


def test_nonce_is_absent_when_none_was_sent_and_plain_oauth_gets_no_id_token(server: ServerProcess) -> None:
    client = server.add_client(public=True, redirect_uri="https://rp.example/cb",
                               scope=scope_of("offline_access profile:read"))
    user = server.add_user()
    body = exchange_code(server, client, authorize(server, client, user, scope=OIDC)).json()
    assert "nonce" not in verify(server, body["id_token"])[1]
    plain = exchange_code(server, client, authorize(server, client, user, scope="profile:read")).json()
    assert "id_token" not in plain and "refresh_token" in plain  # without openid nothing changes


@pytest.mark.parametrize(("alg", "digest"), [("ES256", "sha256"), ("EdDSA", "sha512"), ("RS256", "sha256")])
def test_at_hash_follows_the_clients_id_token_algorithm(server: ServerProcess, alg: str, digest: str) -> None:
    client = server.add_client(public=True, redirect_uri="https://rp.example/cb", scope=OIDC,
                               id_token_signing_alg=alg)
    user = server.add_user()
    body = exchange_code(server, client, authorize(server, client, user, scope=OIDC)).json()
    header, claims = verify(server, body["id_token"])
    assert header["alg"] == alg
    assert claims["at_hash"] == left_half(body["access_token"], digest)


def test_offline_access_brings_a_refresh_token_and_a_refreshed_id_token_keeps_the_session(
        server: ServerProcess) -> None:
    client = server.add_client(public=True, redirect_uri="https://rp.example/cb", scope=scope_of("offline_access"))
    user = server.add_user()
    first = exchange_code(server, client, authorize(server, client, user, scope=scope_of("offline_access"),
                                                    extra={"nonce": "abc"})).json()
    assert first["refresh_token"].startswith("tw_rt_")
    _, original = verify(server, first["id_token"])
    time.sleep(1.1)
    r = server.token(client, {"grant_type": "refresh_token", "refresh_token": first["refresh_token"]})
    assert r.status_code == 200, r.text
    _, refreshed = verify(server, r.json()["id_token"])
    for claim in ("iss", "sub", "aud", "auth_time", "sid"):
        assert refreshed[claim] == original[claim], claim
    assert int(refreshed["iat"]) > int(original["iat"])  # type: ignore[call-overload]
    assert "nonce" not in refreshed
    assert refreshed["at_hash"] == left_half(r.json()["access_token"], "sha256")
    narrowed = server.token(client, {"grant_type": "refresh_token", "refresh_token": r.json()["refresh_token"],
                                     "scope": "profile"})
    assert narrowed.status_code == 200 and "id_token" not in narrowed.json()  # no openid: no ID token


def test_claims_request_puts_id_token_claims_in_the_id_token_only(server: ServerProcess) -> None:
    client = server.add_client(public=True, redirect_uri="https://rp.example/cb", scope=OIDC)
    user = server.add_user()
    set_claims(server, user, {"email": "b@example.com", "email_verified": False, "nickname": "bee"})
    claims_request = '{"id_token":{"email":{"essential":true},"nickname":null,"iss":null},"userinfo":{"name":null}}'
    body = exchange_code(server, client, authorize(server, client, user, scope="openid",
                                                   extra={"claims": claims_request})).json()
    _, claims = verify(server, body["id_token"])
    assert claims["email"] == "b@example.com" and claims["nickname"] == "bee"
    assert "email_verified" not in claims and "name" not in claims  # only what the id_token member names
    assert claims["iss"] == server.base_url  # a claims request never replaces a protocol claim


def test_a_confidential_client_may_opt_out_of_pkce_and_a_verifier_without_challenge_is_refused(
        server: ServerProcess) -> None:
    client = server.add_client(public=False, redirect_uri="https://rp.example/cb", scope=OIDC,
                               pkce_optional=True)
    user = server.add_user()
    auth = authorize(server, client, user, scope=OIDC, extra={"nonce": "n1"}, pkce=False)
    assert auth.code, auth.location
    r = exchange_code(server, client, auth, code_verifier="x" * 43)
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"  # RFC 9700 §2.1.1 downgrade check
    auth = authorize(server, client, user, scope=OIDC, extra={"nonce": "n2"}, pkce=False)
    r = exchange_code(server, client, auth, code_verifier=None)  # type: ignore[arg-type]
    assert r.status_code == 200 and verify(server, r.json()["id_token"])[1]["nonce"] == "n2"
    sent = authorize(server, client, user, scope=OIDC)  # a challenge that is sent always binds
    assert exchange_code(server, client, sent, code_verifier="y" * 43).json()["error"] == "invalid_grant"
    other = server.add_client(public=False, redirect_uri="https://rp.example/cb", scope=OIDC)
    refused = authorize(server, other, user, scope=OIDC, pkce=False)  # without the opt-out: refused
    assert refused.code == "" and refused.params["error"] == "invalid_request"
