"""The authorization code flow with PKCE end to end, and what the tokens it yields contain."""

from __future__ import annotations

import base64
import json

import httpx2
from joserfc import jwt
from joserfc.jwk import KeySet

from tests.support import ServerProcess, authorize, exchange_code


def jwt_parts(token: str) -> tuple[dict[str, object], dict[str, object]]:
    header, payload, _ = token.split(".")
    pad = lambda s: s + "=" * (-len(s) % 4)  # noqa: E731
    return json.loads(base64.urlsafe_b64decode(pad(header))), json.loads(base64.urlsafe_b64decode(pad(payload)))


def verify_with_jwks(server: ServerProcess, token: str) -> dict[str, object]:
    keys = KeySet.import_key_set(httpx2.get(server.base_url + "/jwks.json").json())
    decoded = jwt.decode(token, keys, algorithms=["ES256", "RS256", "EdDSA"])
    return dict(decoded.claims)


def test_code_flow_issues_rfc9068_access_token_and_refresh_token_when_user_consents(server: ServerProcess) -> None:
    client = server.add_client(public=True, redirect_uri="http://127.0.0.1/callback")
    user = server.add_user()
    auth = authorize(server, client, user, redirect_uri="http://127.0.0.1:49152/callback", state="xyz/+ =")
    assert auth.location.startswith("http://127.0.0.1:49152/callback?")
    assert auth.params["state"] == "xyz/+ ="
    assert auth.params["iss"] == server.metadata()["issuer"]

    r = exchange_code(server, client, auth)
    assert r.status_code == 200
    assert r.headers["cache-control"] == "no-store"
    body = r.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 600
    assert body["scope"] == "profile:read"
    assert body["refresh_token"].startswith("tw_rt_") and len(body["refresh_token"]) >= 6 + 43

    header, claims = jwt_parts(body["access_token"])
    assert header["typ"] == "at+jwt" and header["alg"] == "ES256" and header["kid"]
    verified = verify_with_jwks(server, body["access_token"])
    assert verified == claims
    assert set(claims) == {"iss", "sub", "aud", "exp", "iat", "jti", "client_id", "scope"}
    assert claims["iss"] == server.base_url
    assert claims["client_id"] == client.client_id
    assert claims["aud"] == "urn:tokenward:api"
    assert claims["scope"] == "profile:read"
    assert isinstance(claims["exp"], int) and isinstance(claims["iat"], int)
    assert claims["exp"] - claims["iat"] == 600


def test_code_flow_works_for_confidential_client_with_client_secret_post(server: ServerProcess) -> None:
    client = server.add_client(redirect_uri="https://app.example/cb", access_token_ttl=120)
    user = server.add_user()
    auth = authorize(server, client, user, scope="profile:read profile:write")
    r = exchange_code(server, client, auth)  # Basic
    assert r.status_code == 200
    assert r.json()["expires_in"] == 120
    assert r.json()["scope"] == "profile:read profile:write"
    auth2 = authorize(server, client, user)
    data = {"grant_type": "authorization_code", "code": auth2.code, "redirect_uri": auth2.redirect_uri,
            "code_verifier": auth2.verifier}
    assert server.token(client, data, basic=False).status_code == 200


def test_scope_defaults_to_client_scope_when_request_has_none(server: ServerProcess) -> None:
    client = server.add_client(public=True, redirect_uri="http://127.0.0.1/cb", scope="profile:read a:b")
    user = server.add_user()
    auth = authorize(server, client, user, scope=None, redirect_uri="http://127.0.0.1:1234/cb")
    assert exchange_code(server, client, auth).json()["scope"] == "a:b profile:read"


def test_resource_parameter_selects_audience_when_client_allows_it(server: ServerProcess) -> None:
    client = server.add_client(audiences=("https://api.one.example", "https://api.two.example"))
    user = server.add_user()
    auth = authorize(server, client, user, extra={"resource": "https://api.two.example"})
    token = exchange_code(server, client, auth).json()["access_token"]
    assert jwt_parts(token)[1]["aud"] == "https://api.two.example"
    cc = server.token(client, {"grant_type": "client_credentials"}).json()["access_token"]
    assert jwt_parts(cc)[1]["aud"] == "https://api.one.example"


def test_code_replay_revokes_tokens_of_first_redemption_when_parameters_are_valid(server: ServerProcess) -> None:
    client = server.add_client(public=True, redirect_uri="http://127.0.0.1/cb")
    user = server.add_user()
    auth = authorize(server, client, user, redirect_uri="http://127.0.0.1:5000/cb")
    first = exchange_code(server, client, auth)
    assert first.status_code == 200
    replay = exchange_code(server, client, auth)
    assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"
    refresh = server.token(client, {"grant_type": "refresh_token", "refresh_token": first.json()["refresh_token"]})
    assert refresh.status_code == 400 and refresh.json()["error"] == "invalid_grant"


def test_remembered_consent_skips_consent_page_when_same_scope_is_asked_again(server: ServerProcess) -> None:
    client = server.add_client()
    user = server.add_user()
    with httpx2.Client(base_url=server.base_url, follow_redirects=False) as browser:
        first = authorize(server, client, user, browser=browser)
        assert first.code
        r = browser.get("/authorize", params={
            "response_type": "code", "client_id": client.client_id, "redirect_uri": client.redirect_uri,
            "scope": "profile:read", "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
            "code_challenge_method": "S256"})
        assert r.status_code == 303 and r.headers["location"].startswith("/consent")
        straight = browser.get(r.headers["location"])
        assert straight.status_code == 303
        assert straight.headers["location"].startswith(client.redirect_uri + "?code=tw_ac_")
        # a wider scope asks again
        r = browser.get("/authorize", params={
            "response_type": "code", "client_id": client.client_id, "redirect_uri": client.redirect_uri,
            "scope": "profile:read profile:write", "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
            "code_challenge_method": "S256"})
        page = browser.get(r.headers["location"])
        assert page.status_code == 200 and 'value="allow"' in page.text


def test_metadata_and_jwks_describe_the_server_when_fetched(server: ServerProcess) -> None:
    meta = server.metadata()
    assert meta["issuer"] == server.base_url
    assert meta["token_endpoint"] == server.base_url + "/token"
    assert meta["authorization_endpoint"] == server.base_url + "/authorize"
    assert meta["jwks_uri"] == server.base_url + "/jwks.json"
    assert meta["code_challenge_methods_supported"] == ["S256"]
    assert meta["authorization_response_iss_parameter_supported"] is True
    assert meta["response_types_supported"] == ["code"]
    assert set(meta["grant_types_supported"]) == {"authorization_code", "refresh_token", "client_credentials",
                                                  "urn:ietf:params:oauth:grant-type:device_code"}
    assert set(meta["token_endpoint_auth_methods_supported"]) == {
        "client_secret_basic", "client_secret_post", "none"}
    keys = httpx2.get(meta["jwks_uri"]).json()["keys"]
    assert {k["alg"] for k in keys} == {"ES256", "RS256", "EdDSA"}
    for key in keys:
        assert key["use"] == "sig" and key["kid"]
        assert not {"d", "p", "q", "dp", "dq", "qi"} & set(key)


def test_home_page_says_what_is_running_when_opened(server: ServerProcess) -> None:
    r = httpx2.get(server.base_url + "/")
    assert r.status_code == 200
    assert "Tokenward is running" in r.text and "tokenward clients add" in r.text


def test_native_app_with_private_use_scheme_gets_code_at_its_scheme_and_redeems_it(server: ServerProcess) -> None:
    """RFC 8252 §7.1: com.example.app:/oauth2redirect receives the code; the exchange names it exactly."""
    redirect = "com.example.app:/oauth2redirect"
    app = server.add_client(public=True, redirect_uri=redirect)
    auth = authorize(server, app, server.add_user(), state="native-1")
    assert auth.location.startswith(redirect + "?")
    assert auth.params["state"] == "native-1" and auth.code
    r = exchange_code(server, app, auth)
    assert r.status_code == 200 and r.json()["token_type"] == "Bearer"
    # the same scheme with another path is another URI
    other = exchange_code(server, app, authorize(server, app, server.add_user()),
                          redirect_uri="com.example.app:/other")
    assert other.status_code == 400 and other.json()["error"] == "invalid_grant"


def test_code_flow_issues_no_refresh_token_to_a_client_not_allowed_the_refresh_grant(server: ServerProcess) -> None:
    """RFC 6749 §5.1 makes the refresh token optional: a client registered without the refresh_token grant
    could not use one, so it gets none (issue #12 §2.10); one with the grant does."""
    without = server.add_client(grant_types=("authorization_code",))
    user = server.add_user()
    r = exchange_code(server, without, authorize(server, without, user))
    assert r.status_code == 200, r.text
    assert "refresh_token" not in r.json()
    assert r.json()["access_token"]
    with_refresh = server.add_client(grant_types=("authorization_code", "refresh_token"))
    r = exchange_code(server, with_refresh, authorize(server, with_refresh, user))
    assert r.status_code == 200, r.text
    assert r.json()["refresh_token"]


def test_remembered_consent_is_never_applied_silently_to_loopback_or_private_use_redirects(
        server: ServerProcess) -> None:
    """RFC 8252 §8.6 / RFC 6749 §10.2: a loopback (any port) or private-use-scheme redirect does not prove which
    app asks, so a malicious app could reuse another's remembered consent: the page shows every time (one
    click). The exact https redirect of the test above keeps remembered consent."""
    user = server.add_user()
    for redirect in ("http://127.0.0.1/callback", "com.example.app:/oauth2redirect"):
        client = server.add_client(public=True, redirect_uri=redirect)
        used = "http://127.0.0.1:53123/callback" if redirect.startswith("http") else redirect
        with httpx2.Client(base_url=server.base_url, follow_redirects=False) as browser:
            first = authorize(server, client, user, browser=browser, redirect_uri=used)
            assert first.code
            r = browser.get("/authorize", params={
                "response_type": "code", "client_id": client.client_id, "redirect_uri": used,
                "scope": "profile:read", "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
                "code_challenge_method": "S256"})
            page = browser.get(r.headers["location"])
            assert page.status_code == 200 and 'value="allow"' in page.text, (redirect, page.status_code,
                                                                             page.headers.get("location"))


def _consent_text(server: ServerProcess, grant_types: tuple[str, ...], scope: str) -> str:
    from tests.support import PASSWORD, hidden_fields

    client, user = server.add_client(grant_types=grant_types, scope="profile:read offline_access"), server.add_user()
    assert client.redirect_uri is not None
    with httpx2.Client(base_url=server.base_url, follow_redirects=False) as browser:
        r = browser.get("/authorize", params={
            "response_type": "code", "client_id": client.client_id, "redirect_uri": client.redirect_uri,
            "scope": scope, "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
            "code_challenge_method": "S256"})
        page = browser.get(r.headers["location"])
        r = browser.post("/login", data={**hidden_fields(page.text), "username": user, "password": PASSWORD})
        page = browser.get(r.headers["location"])
        assert page.status_code == 200 and 'value="allow"' in page.text
        return page.text


def test_consent_page_says_access_lasts_exactly_when_a_refresh_token_will_be_issued(server: ServerProcess) -> None:
    """Issue #12 §2.10: for a plain OAuth request a refresh token is issued iff the client may use the refresh
    grant, whatever the scope; the page says so then, and never lists offline_access, whose grant changes
    nothing here."""
    lasting = _consent_text(server, ("authorization_code", "refresh_token"), "profile:read")
    assert "until you revoke it" in lasting
    with_offline = _consent_text(server, ("authorization_code", "refresh_token"), "profile:read offline_access")
    assert "until you revoke it" in with_offline
    assert "offline_access" not in with_offline and "Stay signed in" not in with_offline
    once = _consent_text(server, ("authorization_code",), "profile:read offline_access")
    assert "until you revoke it" not in once and "offline_access" not in once
    assert "Read your profile" in once
