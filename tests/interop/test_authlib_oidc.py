"""Authlib as an independent OpenID Connect relying party, configured from the discovery document alone
(issue #13 Part 2, interop): Authlib validates the OpenID Provider metadata, runs the code flow with PKCE
and a nonce, validates the ID token with its own ``CodeIDToken`` rules (signature from the JWKS, ``iss``,
``aud``, ``exp``, ``iat``, ``nonce``, ``at_hash``), calls userinfo with its session, and refreshes."""

from __future__ import annotations

import secrets
import subprocess
import warnings
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx2
from authlib.integrations.requests_client import OAuth2Session
from authlib.oidc.core import CodeIDToken
from authlib.oidc.discovery import OpenIDProviderMetadata, get_well_known_url

from tests.interop.test_authlib import user_agent_authorizes
from tests.support import PASSWORD, TOKENWARD, ServerProcess

with warnings.catch_warnings():  # deprecated for joserfc, kept until Authlib 2.0; CodeIDToken is built on it
    warnings.simplefilter("ignore", DeprecationWarning)
    from authlib.jose import JsonWebKey, jwt

REDIRECT_URI = "http://127.0.0.1/callback"
SCOPE = "openid profile email offline_access"


def discover(server: ServerProcess) -> dict[str, Any]:
    r = httpx2.get(get_well_known_url(server.base_url, external=True))
    assert r.status_code == 200
    metadata: dict[str, Any] = r.json()
    OpenIDProviderMetadata(metadata).validate()  # Authlib's own Discovery 1.0 §3 checks
    return metadata


def add_user_with_claims(server: ServerProcess) -> str:
    username = f"rp-{secrets.token_hex(4)}"
    r = subprocess.run([TOKENWARD, "users", "add", username, "--password-stdin", "--email", "rp@example.com",
                        "--email-verified", "--name", "Relying Party", "--db", server.db_url],
                       input=PASSWORD + "\n", capture_output=True, text=True, timeout=60, check=False)
    assert r.returncode == 0, r.stderr
    return username


def test_authlib_rp_code_flow_id_token_userinfo_and_refresh_from_discovery_alone(server: ServerProcess) -> None:
    metadata = discover(server)
    assert metadata["issuer"] == server.base_url
    client = server.add_client(public=True, redirect_uri=REDIRECT_URI, scope=SCOPE)
    username = add_user_with_claims(server)
    session = OAuth2Session(client.client_id, token_endpoint_auth_method="none", scope=SCOPE,
                            redirect_uri="http://127.0.0.1:8765/callback", code_challenge_method="S256")
    verifier, nonce = secrets.token_urlsafe(48), secrets.token_urlsafe(16)
    url, state = session.create_authorization_url(metadata["authorization_endpoint"], code_verifier=verifier,
                                                  nonce=nonce)
    redirect_url = user_agent_authorizes(url, username)
    assert parse_qs(urlsplit(redirect_url).query)["state"] == [state]
    token = session.fetch_token(metadata["token_endpoint"], authorization_response=redirect_url,
                                code_verifier=verifier)

    keys = JsonWebKey.import_key_set(httpx2.get(metadata["jwks_uri"]).json())
    claims = jwt.decode(token["id_token"], keys, claims_cls=CodeIDToken,
                        claims_options={"iss": {"essential": True, "value": metadata["issuer"]}},
                        claims_params={"nonce": nonce, "client_id": client.client_id,
                                       "access_token": token["access_token"]})
    claims.validate(leeway=5)  # iss, aud, exp, iat, nonce, at_hash, azp (raises on any mismatch)
    assert claims.header["alg"] in metadata["id_token_signing_alg_values_supported"]

    info = session.get(metadata["userinfo_endpoint"]).json()
    assert info == {"sub": claims["sub"], "name": "Relying Party", "preferred_username": username,
                    "email": "rp@example.com", "email_verified": True,
                    "updated_at": info["updated_at"]}

    refreshed = session.refresh_token(metadata["token_endpoint"], refresh_token=token["refresh_token"])
    again = jwt.decode(refreshed["id_token"], keys, claims_cls=CodeIDToken,
                       claims_options={"iss": {"essential": True, "value": metadata["issuer"]}},
                       claims_params={"client_id": client.client_id, "access_token": refreshed["access_token"]})
    again.validate(leeway=5)
    assert again["sub"] == claims["sub"] and again["auth_time"] == claims["auth_time"]
    assert session.get(metadata["userinfo_endpoint"]).json()["sub"] == claims["sub"]
