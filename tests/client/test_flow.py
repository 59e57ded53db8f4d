"""The sans-IO steps, from tables: request building, response parsing, the leeway rule, state and iss checks."""

from __future__ import annotations

import base64
import hashlib
import json
from urllib.parse import parse_qs, urlsplit

import pytest

from tokenward.client.errors import AuthorizationError, LoginRequiredError, TokenEndpointError
from tokenward.client.flow import (
    ClientConfig,
    HttpResponse,
    Token,
    client_credentials_request,
    code_token_request,
    parse_authorization_response,
    parse_token_response,
    refresh_token_request,
    start_authorization,
)

ISSUER = "https://auth.example"
TOKEN_ENDPOINT = "https://auth.example/token"


def form(body: bytes) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(body.decode(), keep_blank_values=True).items()}


def reply(status: int, body: object) -> HttpResponse:
    return HttpResponse(status, {"content-type": "application/json"},
                        body if isinstance(body, bytes) else json.dumps(body).encode())


def test_authorization_url_carries_pkce_s256_and_fresh_state_when_started() -> None:
    a = start_authorization("https://auth.example/authorize", "cli", "http://127.0.0.1:5000/callback",
                            issuer=ISSUER, scope="profile:read")
    b = start_authorization("https://auth.example/authorize", "cli", "http://127.0.0.1:5000/callback", issuer=ISSUER)
    query = {k: v[0] for k, v in parse_qs(urlsplit(a.url).query).items()}
    digest = base64.urlsafe_b64encode(hashlib.sha256(a.code_verifier.encode()).digest()).rstrip(b"=").decode()
    assert query == {"response_type": "code", "client_id": "cli", "redirect_uri": "http://127.0.0.1:5000/callback",
                     "state": a.state, "code_challenge": digest, "code_challenge_method": "S256",
                     "scope": "profile:read"}
    assert len(a.code_verifier) >= 43 and len(a.state) >= 43
    assert a.state != b.state and a.code_verifier != b.code_verifier
    assert a.code_verifier not in repr(a) and a.state not in repr(a)


def test_authorization_url_keeps_existing_query_when_endpoint_has_one() -> None:
    a = start_authorization("https://auth.example/authorize?tenant=x", "cli", "http://127.0.0.1/cb", issuer=ISSUER)
    assert a.url.startswith("https://auth.example/authorize?tenant=x&response_type=code&")


@pytest.mark.parametrize(("params", "error"), [
    ({"code": "c"}, "state_mismatch"),
    ({"code": "c", "state": "other", "iss": ISSUER}, "state_mismatch"),
    ({"code": "c", "state": "{state}", "iss": "https://evil.example"}, "issuer_mismatch"),
    ({"code": "c", "state": "{state}"}, "issuer_missing"),
    ({"error": "access_denied", "state": "{state}", "iss": ISSUER}, "access_denied"),
    ({"state": "{state}", "iss": ISSUER}, "invalid_response"),
    # iss is checked before the error is believed (RFC 9207 §2.4)
    ({"error": "access_denied", "state": "{state}", "iss": "https://evil.example"}, "issuer_mismatch"),
])
def test_authorization_response_is_refused_when_state_iss_or_code_is_wrong(params: dict[str, str],
                                                                          error: str) -> None:
    pending = start_authorization("https://auth.example/authorize", "cli", "http://127.0.0.1/cb", issuer=ISSUER,
                                  require_iss=True)
    filled = {k: v.replace("{state}", pending.state) for k, v in params.items()}
    with pytest.raises(AuthorizationError) as info:
        parse_authorization_response(pending, filled)
    assert info.value.error == error


def test_authorization_response_gives_code_when_state_and_iss_match() -> None:
    pending = start_authorization("https://auth.example/authorize", "cli", "http://127.0.0.1/cb", issuer=ISSUER,
                                  require_iss=True)
    assert parse_authorization_response(pending, {"code": "abc", "state": pending.state, "iss": ISSUER}) == "abc"
    lax = start_authorization("https://auth.example/authorize", "cli", "http://127.0.0.1/cb", issuer=ISSUER)
    assert parse_authorization_response(lax, {"code": "abc", "state": lax.state}) == "abc"


def test_token_requests_authenticate_client_as_configured_when_built() -> None:
    public = code_token_request(TOKEN_ENDPOINT, ClientConfig("cli"), "the-code", "http://127.0.0.1:1/cb", "v" * 43)
    assert public.method == "POST" and public.url == TOKEN_ENDPOINT
    assert "Authorization" not in public.headers
    assert form(public.body) == {"grant_type": "authorization_code", "code": "the-code",
                                 "redirect_uri": "http://127.0.0.1:1/cb", "code_verifier": "v" * 43,
                                 "client_id": "cli"}
    basic = refresh_token_request(TOKEN_ENDPOINT, ClientConfig("a b", "s:e&c"), "rt")
    assert base64.b64decode(basic.headers["Authorization"].split()[1]) == b"a+b:s%3Ae%26c"  # RFC 6749 §2.3.1
    assert form(basic.body) == {"grant_type": "refresh_token", "refresh_token": "rt"}
    post = client_credentials_request(TOKEN_ENDPOINT, ClientConfig("svc", "sec", "client_secret_post"), "a b")
    assert form(post.body) == {"grant_type": "client_credentials", "scope": "a b", "client_id": "svc",
                               "client_secret": "sec"}
    assert "sec" not in repr(post) and "sec" not in repr(ClientConfig("svc", "sec"))


def test_token_response_gives_absolute_expiry_and_keeps_previous_refresh_token_when_not_rotated() -> None:
    previous = Token("old", refresh_token="rt-1", scope="profile:read", expires_at=1.0, obtained_at=0.0)
    token = parse_token_response(reply(200, {"access_token": "at", "token_type": "bearer", "expires_in": 30}),
                                 now=1000.0, previous=previous)
    assert (token.access_token, token.expires_at, token.obtained_at) == ("at", 1030.0, 1000.0)
    assert token.refresh_token == "rt-1" and token.scope == "profile:read"  # RFC 6749 §6, §5.1
    rotated = parse_token_response(reply(200, {"access_token": "at", "token_type": "Bearer", "expires_in": 30,
                                               "refresh_token": "rt-2", "scope": "a"}), now=0.0, previous=previous)
    assert rotated.refresh_token == "rt-2" and rotated.scope == "a"
    assert parse_token_response(reply(200, {"access_token": "at", "token_type": "Bearer"})).expires_at is None


@pytest.mark.parametrize(("status", "body", "transient"), [
    (400, {"error": "invalid_request", "error_description": "bad"}, False),
    (401, {"error": "invalid_client"}, False),
    (429, {"error": "slow_down"}, True),
    (500, {"error": "server_error"}, True),
    (503, b"<html>down</html>", True),
    (200, {"token_type": "Bearer"}, True),
    (200, b"not json", True),
    (200, {"access_token": "x", "token_type": "DPoP"}, False),
])
def test_token_response_errors_map_to_token_endpoint_error_when_not_invalid_grant(
        status: int, body: object, transient: bool) -> None:
    with pytest.raises(TokenEndpointError) as info:
        parse_token_response(reply(status, body))
    assert info.value.transient is transient


def test_invalid_grant_maps_to_login_required_when_refresh_is_refused() -> None:
    with pytest.raises(LoginRequiredError) as info:
        parse_token_response(reply(400, {"error": "invalid_grant", "error_description": "revoked"}))
    assert info.value.error == "invalid_grant"


def test_error_text_from_server_is_cleaned_when_it_echoes_a_token() -> None:
    echoed = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJlc2lnbmF0dXJl"
    with pytest.raises(TokenEndpointError) as info:
        parse_token_response(reply(400, {"error": "invalid_request", "error_description": f"bad {echoed}\n"}))
    assert echoed not in str(info.value) and "[redacted]" in str(info.value)


@pytest.mark.parametrize(("lifetime", "due_after"), [
    (3600, 3540.0),  # long tokens: 60 s before expiry
    (600, 540.0),
    (120, 90.0),     # short ones: the last quarter of their life
    (30, 22.5),
    (4, 3.0),
])
def test_refresh_is_due_at_leeway_or_a_quarter_of_lifetime_when_shorter(lifetime: int, due_after: float) -> None:
    token = Token("at", expires_at=1000.0 + lifetime, obtained_at=1000.0)
    assert token.refresh_due_at(60.0, 0.25) == 1000.0 + due_after


def test_token_repr_and_str_never_show_secrets_when_printed() -> None:
    token = Token("access-secret", refresh_token="refresh-secret", expires_at=5.0, scope="a")
    for text in (repr(token), str(token), f"{token}", repr([token])):
        assert "access-secret" not in text and "refresh-secret" not in text
    assert Token.from_dict(token.to_dict()) == token
