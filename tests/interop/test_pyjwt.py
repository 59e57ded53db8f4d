"""PyJWT as an independent RFC 9068 validator, trusting nothing but the published JWKS.

Every signing algorithm the server offers (ES256 default, RS256, EdDSA) is checked on tokens from the code
flow, the refresh grant and client credentials.
"""

from __future__ import annotations

from typing import Any

import httpx2
import jwt
import pytest

from tests.support import ClientInfo, ServerProcess, authorize, exchange_code

ALGORITHMS = ["ES256", "RS256", "EdDSA"]
AUDIENCE = "urn:tokenward:api"
REQUIRED = ["iss", "sub", "aud", "exp", "iat", "jti"]
PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}
SCOPE = "profile:read profile:write"


def metadata_of(server: ServerProcess) -> dict[str, Any]:
    data: dict[str, Any] = httpx2.get(server.base_url + "/.well-known/oauth-authorization-server").json()
    return data


def verify(server: ServerProcess, token: str) -> dict[str, Any]:
    """Validate ``token`` as an RFC 9068 access token using only what the metadata publishes."""
    metadata = metadata_of(server)
    header = jwt.get_unverified_header(token)
    assert header.get("typ") == "at+jwt", header  # RFC 9068 §2.1 (PyJWT does not check typ itself)
    key = jwt.PyJWKClient(metadata["jwks_uri"], cache_keys=False).get_signing_key_from_jwt(token)
    claims: dict[str, Any] = jwt.decode(token, key, algorithms=ALGORITHMS, issuer=metadata["issuer"],
                                        audience=AUDIENCE, options={"require": REQUIRED})
    return claims


def tokens_for(server: ServerProcess, alg: str) -> dict[str, tuple[ClientInfo, str]]:
    """One access token per grant, each from a client that signs with ``alg``."""
    public = server.add_client(public=True, redirect_uri="http://127.0.0.1/callback", scope=SCOPE,
                               signing_alg=alg)
    auth = authorize(server, public, server.add_user(), scope=SCOPE,
                     redirect_uri="http://127.0.0.1:50123/callback")
    r = exchange_code(server, public, auth)
    assert r.status_code == 200, r.text
    code_tokens = r.json()
    r = server.token(public, {"grant_type": "refresh_token", "refresh_token": code_tokens["refresh_token"]})
    assert r.status_code == 200, r.text
    refreshed = r.json()
    machine = server.add_client(redirect_uri=None, grant_types=("client_credentials",), scope=SCOPE,
                                signing_alg=alg)
    r = server.token(machine, {"grant_type": "client_credentials", "scope": "profile:read"})
    assert r.status_code == 200, r.text
    return {"authorization_code": (public, code_tokens["access_token"]),
            "refresh_token": (public, refreshed["access_token"]),
            "client_credentials": (machine, r.json()["access_token"])}


@pytest.mark.parametrize("alg", ALGORITHMS)
def test_pyjwt_verifies_access_tokens_from_every_grant_when_client_signs_with(
        server: ServerProcess, alg: str) -> None:
    for grant, (client, token) in tokens_for(server, alg).items():
        header = jwt.get_unverified_header(token)
        assert header["alg"] == alg, (grant, header)
        assert header["kid"], (grant, header)
        claims = verify(server, token)
        assert claims["client_id"] == client.client_id, grant
        assert claims["aud"] == AUDIENCE, grant
        assert claims["exp"] > claims["iat"], grant
        if grant == "client_credentials":
            assert claims["scope"] == "profile:read"
            assert claims["sub"] == client.client_id  # RFC 9068 §2.2: the client itself
        else:
            assert set(claims["scope"].split()) == set(SCOPE.split()), grant
            assert claims["sub"] != client.client_id, grant


def test_pyjwt_sees_jwks_with_only_public_signing_keys_for_every_algorithm(server: ServerProcess) -> None:
    r = httpx2.get(metadata_of(server)["jwks_uri"])
    assert r.status_code == 200
    keys = r.json()["keys"]
    assert keys
    for jwk in keys:
        assert not PRIVATE_MEMBERS & set(jwk), f"private material in JWKS: {sorted(PRIVATE_MEMBERS & set(jwk))}"
        assert jwk.get("kid") and jwk.get("alg") in ALGORITHMS and jwk.get("use") == "sig", jwk
    assert {jwk["alg"] for jwk in keys} >= set(ALGORITHMS)
    assert len({jwk["kid"] for jwk in keys}) == len(keys)
    key_set = jwt.PyJWKSet.from_dict(r.json())  # PyJWT parses every key it is given
    assert len(key_set.keys) == len(keys)


@pytest.mark.parametrize("alg", ALGORITHMS)
def test_pyjwt_rejects_access_token_when_one_signature_character_is_flipped(
        server: ServerProcess, alg: str) -> None:
    client = server.add_client(redirect_uri=None, grant_types=("client_credentials",), signing_alg=alg)
    r = server.token(client, {"grant_type": "client_credentials", "scope": "profile:read"})
    assert r.status_code == 200, r.text
    token = r.json()["access_token"]
    verify(server, token)
    head, payload, signature = token.split(".")
    # Flip the first character: the last one may only carry padding bits that decoders ignore.
    flipped = ("B" if signature[0] == "A" else "A") + signature[1:]
    with pytest.raises(jwt.InvalidSignatureError):
        verify(server, f"{head}.{payload}.{flipped}")


def test_pyjwt_rejects_access_token_when_audience_is_not_the_api(server: ServerProcess) -> None:
    client = server.add_client(redirect_uri=None, grant_types=("client_credentials",))
    token = server.token(client, {"grant_type": "client_credentials"}).json()["access_token"]
    metadata = metadata_of(server)
    key = jwt.PyJWKClient(metadata["jwks_uri"]).get_signing_key_from_jwt(token)
    with pytest.raises(jwt.InvalidAudienceError):
        jwt.decode(token, key, algorithms=ALGORITHMS, issuer=metadata["issuer"], audience="urn:other:api")
