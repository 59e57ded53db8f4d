"""openid-client (npm, certified RP library) against a real ``tokenward serve``: configured from discovery
alone, with ID-token signature checks enabled — code flow with PKCE and nonce, ID-token validation, userinfo,
refresh (issue #13 "Interop and conformance")."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import httpx2

from tests.e2e.test_oidc_tokens import set_claims
from tests.support import PASSWORD, ServerProcess, hidden_fields

NODE_DIR = Path(__file__).with_name("node")
SCRIPT = NODE_DIR / "openid_client_rp.mjs"
REDIRECT = "https://rp.example/cb"


def rp(*args: str) -> dict[str, Any]:
    out = subprocess.run(["node", str(SCRIPT), *args], capture_output=True, text=True, timeout=60, cwd=NODE_DIR)
    assert out.returncode == 0, out.stderr
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def sign_in(server: ServerProcess, url: str, username: str) -> str:
    """What the user does in the browser: sign in and allow; returns the callback URL with the code."""
    with httpx2.Client(follow_redirects=False) as browser:
        r = browser.get(url)
        assert r.status_code == 303, r.text
        location = server.base_url + r.headers["location"]
        page = browser.get(location)
        r = browser.post(server.base_url + "/login",
                         data={**hidden_fields(page.text), "username": username, "password": PASSWORD})
        assert r.status_code == 303, r.text
        page = browser.get(server.base_url + r.headers["location"])
        r = browser.post(server.base_url + "/consent", data={**hidden_fields(page.text), "decision": "allow"})
        assert r.status_code == 303 and r.headers["location"].startswith(REDIRECT), r.text
        return r.headers["location"]


def test_openid_client_completes_code_flow_id_token_userinfo_and_refresh_from_discovery_alone(
        server: ServerProcess) -> None:
    client = server.add_client(public=False, redirect_uri=REDIRECT, scope="openid profile email offline_access")
    assert client.client_secret is not None
    user = server.add_user()
    set_claims(server, user, {"email": "rp@example.com", "email_verified": True, "name": "R. P."})
    started = rp("start", server.base_url, client.client_id, client.client_secret, REDIRECT,
                 "openid profile email offline_access")
    callback = sign_in(server, started["url"], user)
    done = rp("finish", server.base_url, client.client_id, client.client_secret, callback, started["verifier"],
              started["nonce"], started["state"])
    claims = done["claims"]
    assert claims["iss"] == server.base_url and claims["aud"] == client.client_id
    assert claims["nonce"] == started["nonce"] and "at_hash" in claims
    info = done["userinfo"]
    assert isinstance(info.pop("updated_at"), int)  # profile scope: when the claims last changed
    assert info == {"sub": claims["sub"], "email": "rp@example.com", "email_verified": True, "name": "R. P.",
                    "preferred_username": user}
    for claim in ("iss", "sub", "aud", "auth_time"):
        assert done["refreshed_claims"][claim] == claims[claim]
    assert done["end_session_url"].startswith(server.base_url + "/end_session?")
