"""No token, secret, code or password ever reaches the server log, even at debug level."""

from __future__ import annotations

import httpx2

from tests.support import PASSWORD, ServerProcess, authorize, exchange_code, hidden_fields
from tokenward.protocol import pkce


def test_server_log_contains_no_issued_secret_after_full_flow_at_debug_level(fresh_server: ServerProcess) -> None:
    server = fresh_server
    server.start("--log-level", "debug")
    public = server.add_client(public=True, redirect_uri="http://127.0.0.1/cb")
    confidential = server.add_client()
    user = server.add_user()

    # a failed login with a wrong password that must not be logged either
    wrong_password = "wrong-" + PASSWORD
    server.secrets_seen.append(wrong_password)
    with httpx2.Client(base_url=server.base_url, follow_redirects=False) as browser:
        start = browser.get("/authorize", params={
            "response_type": "code", "client_id": public.client_id, "redirect_uri": "http://127.0.0.1:7/cb",
            "state": "s", "code_challenge": pkce.s256(pkce.new_verifier()), "code_challenge_method": "S256"})
        assert start.status_code == 303 and start.headers["location"].startswith("/login")
        form = hidden_fields(browser.get(start.headers["location"]).text)
        failed = browser.post("/login", data={**form, "username": user, "password": wrong_password})
        assert failed.status_code == 401 and "incorrect" in failed.text  # the wrong password was checked
        auth = authorize(server, public, user, browser=browser, redirect_uri="http://127.0.0.1:7/cb")
    server.secrets_seen.append(auth.verifier)
    tokens = exchange_code(server, public, auth).json()
    rotated = server.token(public, {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]})
    assert rotated.status_code == 200
    # reuse, replay and bad credentials produce error log lines: they must not carry the secrets either
    server.token(public, {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]})
    exchange_code(server, public, auth)
    server.token(confidential, {"grant_type": "client_credentials"})
    assert confidential.client_secret
    bad = server.token(None, {"grant_type": "client_credentials", "client_id": confidential.client_id,
                              "client_secret": confidential.client_secret + "x"})
    assert bad.status_code == 401
    server.secrets_seen.append(confidential.client_secret + "x")
    server.stop()

    log = server.log_text()
    assert '"path": "/token"' in log and '"path": "/login"' in log  # the log did capture the flow
    assert len(server.secrets_seen) >= 8
    for secret in server.secrets_seen:
        assert secret not in log, f"a secret of length {len(secret)} appears in the server log"
    assert "Traceback" not in log
