"""requests-oauth2client as an independent OpenID Connect relying party, configured from the discovery
document alone (``from_discovery_endpoint(issuer=...)``; issue #13 Part 2, interop): a confidential client
(client_secret_basic) runs the code flow with its own state, nonce and PKCE, validates the ID token by OIDC
Core §3.1.3.7 (signature from the JWKS, iss, aud, azp, exp, iat, nonce, at_hash), calls userinfo, refreshes."""

from __future__ import annotations

import secrets
import subprocess

from requests_oauth2client import OAuth2Client

from tests.interop.test_authlib import user_agent_authorizes
from tests.support import PASSWORD, TOKENWARD, ServerProcess

REDIRECT_URI = "https://rp.example/callback"
SCOPE = "openid profile email offline_access"


def test_requests_oauth2client_code_flow_id_token_userinfo_and_refresh(server: ServerProcess) -> None:
    client = server.add_client(redirect_uri=REDIRECT_URI, scope=SCOPE)
    assert client.client_secret is not None
    username = f"roc-{secrets.token_hex(4)}"
    r = subprocess.run([TOKENWARD, "users", "add", username, "--password-stdin", "--email", "roc@example.com",
                        "--given-name", "Req", "--db", server.db_url],
                       input=PASSWORD + "\n", capture_output=True, text=True, timeout=60, check=False)
    assert r.returncode == 0, r.stderr

    rp = OAuth2Client.from_discovery_endpoint(issuer=server.base_url, client_id=client.client_id,
                                              client_secret=client.client_secret, redirect_uri=REDIRECT_URI,
                                              testing=True)  # testing: http on 127.0.0.1
    request = rp.authorization_request(scope=SCOPE)
    assert request.code_challenge_method == "S256" and request.nonce
    response = request.validate_callback(user_agent_authorizes(str(request.uri), username))  # state, iss
    token = rp.authorization_code(response, validate=True)  # raises on any ID-token check that fails
    assert token.id_token is not None
    sub = token.id_token.subject
    assert token.id_token.claims["nonce"] == request.nonce

    info = rp.userinfo(token)
    assert info["sub"] == sub and info["email"] == "roc@example.com" and info["given_name"] == "Req"
    assert info["preferred_username"] == username and "email_verified" not in info

    refreshed = rp.refresh_token(token)
    assert refreshed.access_token != token.access_token
    assert rp.userinfo(refreshed)["sub"] == sub
