"""Every error branch of ``POST /token`` against a real server: exact status and error code.

Sources: security.md §2.1 (token endpoint), §2.2 (client authentication), §1.2-§1.4 and §1.7 (PKCE, codes,
refresh tokens, audiences); RFC 6749 §2.3.1, §3.2, §5.2 and Appendix B; RFC 7636 §4.6; RFC 8707 §2.
Every JSON error is also checked for ``Content-Type: application/json``, ``Cache-Control: no-store`` and the
§5.2 character set of ``error``/``error_description``; every status is pinned exactly, so a 500 always fails.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

import httpx2
import pytest

from tests.support import ClientInfo, ServerProcess, authorize, exchange_code
from tokenward.protocol import pkce

FORM = "application/x-www-form-urlencoded"
# RFC 6749 §5.2: error and error_description are %x20-21 / %x23-5B / %x5D-7E.
ERROR_CHARSET = re.compile(r"^[\x20\x21\x23-\x5B\x5D-\x7E]*$")
API_ONE = "https://api.one.example"
API_TWO = "https://api.two.example"
CB = "https://app.example/cb"
CB2 = "https://app.example/cb2"


# -- helpers ---------------------------------------------------------------------------------------------------

def assert_json_error(r: httpx2.Response, status: int, error: str) -> dict[str, Any]:
    """The RFC 6749 §5.2 error shape, with the exact status and code."""
    body_text = r.text
    assert (r.status_code, _error_of(r)) == (status, error), body_text
    assert r.headers["content-type"].split(";")[0].strip().lower() == "application/json"
    directives = [d.strip().lower() for d in r.headers.get("cache-control", "").split(",")]
    assert "no-store" in directives, r.headers.get("cache-control")
    body = r.json()
    assert isinstance(body, dict)
    assert isinstance(body["error"], str) and ERROR_CHARSET.match(body["error"])
    if "error_description" in body:
        assert isinstance(body["error_description"], str)
        assert ERROR_CHARSET.match(body["error_description"]), body["error_description"]
    assert "access_token" not in body and "refresh_token" not in body
    return dict(body)


def _error_of(r: httpx2.Response) -> str | None:
    try:
        body = r.json()
    except ValueError:
        return None
    return body.get("error") if isinstance(body, dict) else None


def assert_ok(r: httpx2.Response) -> dict[str, Any]:
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].split(";")[0].strip() == "application/json"
    assert "no-store" in r.headers.get("cache-control", "")
    body: dict[str, Any] = r.json()
    assert body["token_type"] == "Bearer" and body["access_token"]
    return body


def basic_header(user: str, password: str, scheme: str = "Basic", *, encode: bool = True) -> str:
    """``Basic base64(urlenc(id):urlenc(secret))`` (RFC 6749 §2.3.1); ``encode=False`` skips the form-encoding."""
    if encode:
        user, password = quote(user, safe=""), quote(password, safe="")
    return f"{scheme} " + base64.b64encode(f"{user}:{password}".encode()).decode()


def raw_basic(raw: str, scheme: str = "Basic") -> str:
    return f"{scheme} " + base64.b64encode(raw.encode()).decode()


def post_token(server: ServerProcess, body: str | bytes, *, authorization: str | None = None,
               content_type: str | None = FORM, query: str = "", method: str = "POST") -> httpx2.Response:
    headers: dict[str, str] = {}
    if content_type is not None:
        headers["Content-Type"] = content_type
    if authorization is not None:
        headers["Authorization"] = authorization
    content = body.encode() if isinstance(body, str) else body
    return httpx2.request(method, server.base_url + "/token" + query, content=content, headers=headers)


def auth_of(client: ClientInfo) -> str:
    assert client.client_secret is not None
    return basic_header(client.client_id, client.client_secret)


def jwt_payload(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    data: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return data


def refresh(server: ServerProcess, client: ClientInfo, token: str, **extra: str) -> httpx2.Response:
    return server.token(client, {"grant_type": "refresh_token", "refresh_token": token, **extra})


def flip(value: str) -> str:
    """``value`` with its last character changed to another token character."""
    last = value[-1]
    return value[:-1] + ("A" if last != "A" else "B")


@dataclass
class Clients:
    app: ClientInfo        # confidential: code, refresh, cc; two redirect URIs; two audiences
    other: ClientInfo      # another confidential client with every grant
    cc_only: ClientInfo    # confidential, client_credentials only
    code_only: ClientInfo  # confidential, authorization_code only
    public: ClientInfo     # public: code + refresh
    user: str


@pytest.fixture(scope="module")
def clients(server: ServerProcess) -> Clients:
    return Clients(
        app=server.add_client(redirect_uris=(CB, CB2), audiences=(API_ONE, API_TWO)),
        other=server.add_client(redirect_uris=(CB,)),
        cc_only=server.add_client(grant_types=("client_credentials",), redirect_uri=None),
        code_only=server.add_client(grant_types=("authorization_code",)),
        public=server.add_client(public=True, redirect_uri="http://127.0.0.1/cb"),
        user=server.add_user(),
    )


def user_tokens(server: ServerProcess, c: Clients, scope: str = "profile:read profile:write") -> dict[str, Any]:
    auth = authorize(server, c.app, c.user, scope=scope)
    return assert_ok(exchange_code(server, c.app, auth))


# -- HTTP shape: method, content type, query, size, encoding ----------------------------------------------------

@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH"])
def test_token_endpoint_answers_405_invalid_request_when_method_is_not_post(
        server: ServerProcess, clients: Clients, method: str) -> None:
    r = post_token(server, "grant_type=client_credentials", authorization=auth_of(clients.cc_only), method=method)
    assert_json_error(r, 405, "invalid_request")
    assert r.headers["allow"] == "POST"


@pytest.mark.parametrize(("content_type", "body"), [
    ("application/json", '{"grant_type": "client_credentials"}'),
    ("multipart/form-data; boundary=XyZ",
     '--XyZ\r\nContent-Disposition: form-data; name="grant_type"\r\n\r\nclient_credentials\r\n--XyZ--\r\n'),
    ("text/plain", "grant_type=client_credentials"),
    (None, "grant_type=client_credentials"),
    ("application/x-www-form-urlencoded-foo", "grant_type=client_credentials"),
], ids=["json", "multipart", "text-plain", "none", "form-lookalike"])
def test_token_request_is_invalid_request_when_content_type_is_not_form(
        server: ServerProcess, clients: Clients, content_type: str | None, body: str) -> None:
    r = post_token(server, body, authorization=auth_of(clients.cc_only), content_type=content_type)
    assert_json_error(r, 400, "invalid_request")


@pytest.mark.parametrize("content_type", [
    "application/x-www-form-urlencoded; charset=UTF-8",
    "application/x-www-form-urlencoded;charset=utf-8",
    "Application/X-WWW-Form-Urlencoded",
])
def test_token_request_succeeds_when_form_content_type_has_charset_or_other_case(
        server: ServerProcess, clients: Clients, content_type: str) -> None:
    r = post_token(server, "grant_type=client_credentials", authorization=auth_of(clients.cc_only),
                   content_type=content_type)
    assert_ok(r)


@pytest.mark.parametrize("body", ["", "scope=profile%3Aread", "grant_type=", "grant_type=&scope=profile%3Aread"],
                         ids=["empty-body", "no-grant-type", "empty-grant-type", "empty-grant-type-with-scope"])
def test_token_request_is_invalid_request_when_grant_type_is_missing(
        server: ServerProcess, clients: Clients, body: str) -> None:
    assert_json_error(post_token(server, body, authorization=auth_of(clients.cc_only)), 400, "invalid_request")


@pytest.mark.parametrize("grant_type", [
    "password", "implicit", "foo", "CLIENT_CREDENTIALS", "urn:ietf:params:oauth:grant-type:saml2-bearer",
    "urn:ietf:params:oauth:grant-type:jwt-bearer",
])
def test_token_request_is_unsupported_grant_type_when_grant_type_is_unknown(
        server: ServerProcess, clients: Clients, grant_type: str) -> None:
    body = urlencode({"grant_type": grant_type, "username": "u", "password": "p"})
    assert_json_error(post_token(server, body, authorization=auth_of(clients.app)), 400, "unsupported_grant_type")


@pytest.mark.parametrize(("client_name", "grant_type"), [
    ("cc_only", "authorization_code"),
    ("cc_only", "refresh_token"),
    ("code_only", "refresh_token"),
    ("code_only", "client_credentials"),
    ("public", "client_credentials"),
])
def test_token_request_is_unauthorized_client_when_client_may_not_use_grant(
        server: ServerProcess, clients: Clients, client_name: str, grant_type: str) -> None:
    client: ClientInfo = getattr(clients, client_name)
    data = {"grant_type": grant_type, "code": "tw_ac_" + "A" * 43, "code_verifier": "v" * 43,
            "redirect_uri": CB, "refresh_token": "tw_rt_" + "A" * 43}
    assert_json_error(server.token(client, data), 400, "unauthorized_client")


def test_public_client_is_unauthorized_client_when_it_sends_client_credentials_grant(
        server: ServerProcess) -> None:
    public = server.add_client(public=True, redirect_uri="http://127.0.0.1/cb", grant_types=("authorization_code",))
    r = post_token(server, urlencode({"grant_type": "client_credentials", "client_id": public.client_id}))
    assert_json_error(r, 400, "unauthorized_client")


@pytest.mark.parametrize("name", ["grant_type", "code", "refresh_token", "code_verifier", "scope", "client_id",
                                  "redirect_uri", "resource", "client_secret", "foo"])
@pytest.mark.parametrize("same_value", [True, False], ids=["same-value", "other-value"])
def test_token_request_is_invalid_request_when_a_parameter_is_repeated(
        server: ServerProcess, clients: Clients, name: str, same_value: bool) -> None:
    values = {"grant_type": ("client_credentials", "refresh_token"), "code": ("tw_ac_a", "tw_ac_b"),
              "refresh_token": ("tw_rt_a", "tw_rt_b"), "code_verifier": ("v" * 43, "w" * 43),
              "scope": ("profile:read", "profile:write"), "client_id": (clients.cc_only.client_id, "other"),
              "redirect_uri": (CB, CB2), "resource": (API_ONE, API_TWO), "client_secret": ("a", "b"),
              "foo": ("1", "2")}[name]
    second = values[0] if same_value else values[1]
    pairs = [("grant_type", "client_credentials")] if name != "grant_type" else []
    pairs += [(name, values[0]), (name, second)]
    r = post_token(server, urlencode(pairs), authorization=auth_of(clients.cc_only))
    assert_json_error(r, 400, "invalid_request")


def test_code_redemption_is_invalid_request_when_code_is_repeated_and_code_stays_usable(
        server: ServerProcess, clients: Clients) -> None:
    auth = authorize(server, clients.app, clients.user)
    pairs = [("grant_type", "authorization_code"), ("code", auth.code), ("code", auth.code),
             ("redirect_uri", auth.redirect_uri), ("code_verifier", auth.verifier)]
    assert_json_error(post_token(server, urlencode(pairs), authorization=auth_of(clients.app)), 400,
                      "invalid_request")
    assert_ok(exchange_code(server, clients.app, auth))


@pytest.mark.parametrize("query", [
    "?client_secret=x", "?grant_type=client_credentials", "?foo=bar", "?scope=profile:read", "?client_id=x",
    "?code_verifier=" + "v" * 43,
], ids=["client_secret", "grant_type", "unknown", "scope", "client_id", "code_verifier"])
def test_token_request_is_invalid_request_when_parameters_are_in_the_url(
        server: ServerProcess, clients: Clients, query: str) -> None:
    r = post_token(server, "grant_type=client_credentials", authorization=auth_of(clients.cc_only), query=query)
    assert_json_error(r, 400, "invalid_request")


def test_client_is_never_authenticated_from_the_url_when_secret_is_in_the_query(
        server: ServerProcess, clients: Clients) -> None:
    c = clients.cc_only
    assert c.client_secret is not None
    r = post_token(server, urlencode({"grant_type": "client_credentials", "client_id": c.client_id}),
                   query="?" + urlencode({"client_secret": c.client_secret}))
    assert_json_error(r, 400, "invalid_request")


def test_token_request_is_413_invalid_request_when_body_exceeds_64_kib(server: ServerProcess, clients: Clients
                                                                      ) -> None:
    body = "grant_type=client_credentials&foo=" + "a" * (64 * 1024)
    assert_json_error(post_token(server, body, authorization=auth_of(clients.cc_only)), 413, "invalid_request")


def test_token_request_is_413_invalid_request_when_chunked_body_exceeds_64_kib(
        server: ServerProcess, clients: Clients) -> None:
    def chunks() -> Any:
        yield b"grant_type=client_credentials&foo="
        for _ in range(20):
            yield b"a" * 4096

    r = httpx2.post(server.base_url + "/token", content=chunks(),
                    headers={"Content-Type": FORM, "Authorization": auth_of(clients.cc_only)})
    assert "content-length" not in r.request.headers
    assert_json_error(r, 413, "invalid_request")


def test_token_request_succeeds_when_body_is_just_under_64_kib(server: ServerProcess, clients: Clients) -> None:
    prefix = "grant_type=client_credentials&foo="
    body = prefix + "a" * (64 * 1024 - len(prefix))
    assert_ok(post_token(server, body, authorization=auth_of(clients.cc_only)))


@pytest.mark.parametrize("body", [
    "grant_type=client_credentials&scope=%C3%28",
    "grant_type=client_credentials&foo=%C3%28",
    "grant_type=client_credentials%C3%28",
    "grant_type=client_credentials&foo=%FF",
    "grant_type=client_credentials&foo=%zz",
    "grant_type=client_credentials&foo=%",
    "grant_type=client_credentials&foo=%4",
], ids=["bad-utf8-scope", "bad-utf8-unknown", "bad-utf8-grant-type", "latin1-byte", "escape-zz", "lone-percent",
        "short-escape"])
def test_token_request_is_invalid_request_when_body_is_not_valid_form_encoding(
        server: ServerProcess, clients: Clients, body: str) -> None:
    assert_json_error(post_token(server, body, authorization=auth_of(clients.cc_only)), 400, "invalid_request")


def test_token_request_is_invalid_request_when_body_has_raw_non_ascii_bytes(
        server: ServerProcess, clients: Clients) -> None:
    body = "grant_type=client_credentials&foo=é".encode()
    assert_json_error(post_token(server, body, authorization=auth_of(clients.cc_only)), 400, "invalid_request")


@pytest.mark.parametrize("extra", [{"foo": "bar"}, {"state": "x"}, {"nonce": "n", "audience": "a"},
                                   {"scope": ""}, {"resource": ""}],
                         ids=["foo", "state", "two-unknown", "empty-scope", "empty-resource"])
def test_token_request_succeeds_when_unknown_or_empty_parameters_are_sent(
        server: ServerProcess, clients: Clients, extra: dict[str, str]) -> None:
    body = assert_ok(server.token(clients.cc_only, {"grant_type": "client_credentials", **extra}))
    assert body["scope"] == "profile:read profile:write"


# -- client authentication (security.md §2.2) -------------------------------------------------------------------

CC = {"grant_type": "client_credentials"}


def test_confidential_client_is_invalid_client_when_no_authentication_is_sent(server: ServerProcess) -> None:
    r = post_token(server, "grant_type=client_credentials")
    assert_json_error(r, 401, "invalid_client")


@pytest.mark.parametrize("extra", [{}, {"client_secret": ""}], ids=["client-id-only", "empty-secret"])
def test_confidential_client_is_invalid_client_when_it_sends_only_its_client_id(
        server: ServerProcess, clients: Clients, extra: dict[str, str]) -> None:
    r = post_token(server, urlencode({**CC, "client_id": clients.cc_only.client_id, **extra}))
    assert_json_error(r, 401, "invalid_client")


@pytest.mark.parametrize("with_secret", [True, False], ids=["with-secret", "without-secret"])
def test_client_is_invalid_client_when_client_id_is_unknown_in_body(server: ServerProcess, with_secret: bool
                                                                    ) -> None:
    data = {**CC, "client_id": "no-such-client-" + secrets.token_hex(4)}
    if with_secret:
        data["client_secret"] = "tw_cs_" + secrets.token_urlsafe(32)
    assert_json_error(post_token(server, urlencode(data)), 401, "invalid_client")


def test_client_is_invalid_client_with_basic_challenge_when_client_id_is_unknown_in_basic(
        server: ServerProcess) -> None:
    r = post_token(server, urlencode(CC), authorization=basic_header("no-such-client", "tw_cs_x"))
    assert_json_error(r, 401, "invalid_client")
    assert r.headers["www-authenticate"] == f'Basic realm="{server.metadata()["issuer"]}"'


@pytest.mark.parametrize("secret_of", ["wrong", "other-client", "prefix-only", "secret-plus-one"])
def test_client_is_invalid_client_with_basic_challenge_when_basic_secret_is_wrong(
        server: ServerProcess, clients: Clients, secret_of: str) -> None:
    c = clients.cc_only
    assert c.client_secret is not None and clients.other.client_secret is not None
    secret = {"wrong": "tw_cs_" + secrets.token_urlsafe(32), "other-client": clients.other.client_secret,
              "prefix-only": c.client_secret[:-1], "secret-plus-one": c.client_secret + "x"}[secret_of]
    r = post_token(server, urlencode(CC), authorization=basic_header(c.client_id, secret))
    assert_json_error(r, 401, "invalid_client")
    assert r.headers["www-authenticate"] == f'Basic realm="{server.metadata()["issuer"]}"'


def test_client_is_invalid_client_when_post_secret_is_wrong(server: ServerProcess, clients: Clients) -> None:
    r = post_token(server, urlencode({**CC, "client_id": clients.cc_only.client_id, "client_secret": "wrong"}))
    assert_json_error(r, 401, "invalid_client")


def test_client_is_invalid_request_when_basic_and_body_secret_are_both_sent(
        server: ServerProcess, clients: Clients) -> None:
    c = clients.cc_only
    assert c.client_secret is not None
    r = post_token(server, urlencode({**CC, "client_secret": c.client_secret}), authorization=auth_of(c))
    assert_json_error(r, 400, "invalid_request")
    assert "www-authenticate" not in r.headers


def test_client_is_invalid_request_when_basic_client_id_differs_from_body_client_id(
        server: ServerProcess, clients: Clients) -> None:
    r = post_token(server, urlencode({**CC, "client_id": clients.other.client_id}),
                   authorization=auth_of(clients.cc_only))
    assert_json_error(r, 400, "invalid_request")


def test_client_authenticates_when_basic_client_id_equals_body_client_id(
        server: ServerProcess, clients: Clients) -> None:
    r = post_token(server, urlencode({**CC, "client_id": clients.cc_only.client_id}),
                   authorization=auth_of(clients.cc_only))
    assert_ok(r)


@pytest.mark.parametrize("header", [
    "Basic " + base64.b64encode(b"a:b").decode() + "!",
    "Basic !!!!",
    "Basic YWJj ZGVm",
    "Basic YWI6Yw",  # base64 without its padding
], ids=["trailing-bang", "bangs", "space-inside", "unpadded"])
def test_client_is_invalid_request_when_basic_credentials_are_not_base64(server: ServerProcess, header: str
                                                                         ) -> None:
    r = post_token(server, urlencode(CC), authorization=header)
    assert_json_error(r, 400, "invalid_request")
    assert "www-authenticate" not in r.headers


@pytest.mark.parametrize("header", ["Basic", raw_basic("foo"), raw_basic(":"), "Basic Og"],
                         ids=["scheme-only", "no-colon", "colon-only", "colon-unpadded"])
def test_client_is_invalid_request_when_basic_scheme_format_is_wrong(server: ServerProcess, header: str) -> None:
    r = post_token(server, urlencode(CC), authorization=header)
    assert_json_error(r, 400, "invalid_request")
    assert "www-authenticate" not in r.headers


def test_client_is_invalid_request_when_basic_secret_is_empty(server: ServerProcess, clients: Clients) -> None:
    r = post_token(server, urlencode(CC), authorization=raw_basic(clients.cc_only.client_id + ":"))
    assert_json_error(r, 400, "invalid_request")


def test_client_is_invalid_request_when_basic_client_id_is_empty(server: ServerProcess, clients: Clients) -> None:
    assert clients.cc_only.client_secret is not None
    r = post_token(server, urlencode(CC), authorization=raw_basic(":" + clients.cc_only.client_secret))
    assert_json_error(r, 400, "invalid_request")


@pytest.mark.parametrize("raw", ["foo with %:foo with $", "%zz:secret", "id:%", "id:%4", "%C3%28:secret"],
                         ids=["node-vector", "bad-escape-id", "lone-percent-secret", "short-escape",
                              "bad-utf8"])
def test_client_is_invalid_request_when_basic_credentials_are_badly_form_encoded(
        server: ServerProcess, raw: str) -> None:
    r = post_token(server, urlencode(CC), authorization=raw_basic(raw))
    assert_json_error(r, 400, "invalid_request")


@pytest.mark.parametrize("raw", ["id%01:secret", "id:sec%0Aret", "id:s%C3%A9cret"],
                         ids=["control-in-id", "newline-in-secret", "non-ascii-in-secret"])
def test_client_is_invalid_request_when_basic_credentials_have_non_vschar(server: ServerProcess, raw: str) -> None:
    r = post_token(server, urlencode(CC), authorization=raw_basic(raw))
    assert_json_error(r, 400, "invalid_request")


@pytest.mark.parametrize("scheme", ["basic", "BASIC", "bAsIc"])
def test_client_authenticates_when_basic_scheme_has_other_case(server: ServerProcess, clients: Clients,
                                                               scheme: str) -> None:
    c = clients.cc_only
    assert c.client_secret is not None
    assert_ok(post_token(server, urlencode(CC), authorization=basic_header(c.client_id, c.client_secret, scheme)))


def test_client_authenticates_when_basic_credentials_are_fully_percent_encoded(
        server: ServerProcess, clients: Clients) -> None:
    """RFC 6749 Appendix B: each value is form-decoded after base64, so ``%74`` means ``t``."""
    c = clients.cc_only
    assert c.client_secret is not None
    encoded_id = "".join(f"%{b:02X}" for b in c.client_id.encode())
    encoded_secret = "".join(f"%{b:02X}" for b in c.client_secret.encode())
    assert_ok(post_token(server, urlencode(CC), authorization=raw_basic(f"{encoded_id}:{encoded_secret}")))


def test_client_authenticates_when_client_secret_post_is_used(server: ServerProcess, clients: Clients) -> None:
    assert_ok(server.token(clients.cc_only, CC, basic=False))


@pytest.mark.parametrize("scheme", ["Bearer", "Digest", "Negotiate"])
def test_client_is_invalid_client_when_authorization_header_uses_another_scheme(
        server: ServerProcess, clients: Clients, scheme: str) -> None:
    """RFC 6749 §5.2: invalid_client covers an "unsupported authentication method", and a client that tried
    the Authorization header gets 401 with a WWW-Authenticate challenge."""
    r = post_token(server, urlencode({**CC, "client_id": clients.cc_only.client_id}),
                   authorization=f"{scheme} abcdef")
    assert_json_error(r, 401, "invalid_client")
    assert r.headers["www-authenticate"].startswith("Basic realm=")


@pytest.mark.parametrize("how", ["post", "basic"])
def test_public_client_is_invalid_client_when_it_sends_a_secret(server: ServerProcess, clients: Clients,
                                                                how: str) -> None:
    p = clients.public
    auth = authorize(server, p, clients.user, redirect_uri="http://127.0.0.1:50000/cb")
    data = {"grant_type": "authorization_code", "code": auth.code, "redirect_uri": auth.redirect_uri,
            "code_verifier": auth.verifier}
    if how == "post":
        r = post_token(server, urlencode({**data, "client_id": p.client_id, "client_secret": "anything"}))
    else:
        r = post_token(server, urlencode(data), authorization=basic_header(p.client_id, "anything"))
    assert_json_error(r, 401, "invalid_client")
    # The code was not spent by the failed attempt.
    assert_ok(exchange_code(server, p, auth))


@pytest.mark.parametrize("grant_type", ["password", "foo", ""], ids=["password", "foo", "missing"])
@pytest.mark.parametrize("how", ["post", "basic", "none"])
def test_unknown_client_is_invalid_client_when_grant_type_is_also_bad(server: ServerProcess, grant_type: str,
                                                                      how: str) -> None:
    unknown = "no-such-client-" + secrets.token_hex(4)
    data = {"grant_type": grant_type} if grant_type else {}
    if how == "basic":
        r = post_token(server, urlencode(data), authorization=basic_header(unknown, "tw_cs_x"))
    elif how == "post":
        r = post_token(server, urlencode({**data, "client_id": unknown, "client_secret": "tw_cs_x"}))
    else:
        r = post_token(server, urlencode({**data, "client_id": unknown}))
    assert_json_error(r, 401, "invalid_client")


def test_confidential_client_is_invalid_client_when_it_refreshes_without_authentication(
        server: ServerProcess, clients: Clients) -> None:
    tokens = user_tokens(server, clients)
    r = post_token(server, urlencode({"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"],
                                      "client_id": clients.app.client_id}))
    assert_json_error(r, 401, "invalid_client")
    assert_ok(refresh(server, clients.app, tokens["refresh_token"]))


# -- authorization_code grant ------------------------------------------------------------------------------------

def test_code_redemption_is_invalid_request_when_code_is_missing(server: ServerProcess, clients: Clients) -> None:
    for data in ({"grant_type": "authorization_code", "code_verifier": "v" * 43, "redirect_uri": CB},
                 {"grant_type": "authorization_code", "code": "", "code_verifier": "v" * 43}):
        assert_json_error(server.token(clients.app, data), 400, "invalid_request")


@pytest.mark.parametrize("code", ["tw_ac_" + "A" * 43, "garbage", "x" * 4000, "tw_rt_" + "A" * 43],
                         ids=["well-formed", "garbage", "long", "refresh-token-prefix"])
def test_code_redemption_is_invalid_grant_when_code_is_unknown(server: ServerProcess, clients: Clients, code: str
                                                               ) -> None:
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": CB, "code_verifier": "v" * 43}
    assert_json_error(server.token(clients.app, data), 400, "invalid_grant")


def test_code_redemption_is_invalid_grant_when_code_has_a_flipped_character(
        server: ServerProcess, clients: Clients) -> None:
    auth = authorize(server, clients.app, clients.user)
    assert_json_error(exchange_code(server, clients.app, auth, code=flip(auth.code)), 400, "invalid_grant")
    assert_ok(exchange_code(server, clients.app, auth))


def test_code_redemption_is_invalid_grant_when_code_belongs_to_another_client(
        server: ServerProcess, clients: Clients) -> None:
    auth = authorize(server, clients.app, clients.user)
    r = exchange_code(server, clients.other, auth, redirect_uri=CB)
    assert_json_error(r, 400, "invalid_grant")
    assert_ok(exchange_code(server, clients.app, auth))


def test_code_redemption_is_invalid_grant_when_refresh_token_is_sent_as_code(
        server: ServerProcess, clients: Clients) -> None:
    tokens = user_tokens(server, clients)
    data = {"grant_type": "authorization_code", "code": tokens["refresh_token"], "redirect_uri": CB,
            "code_verifier": "v" * 43}
    assert_json_error(server.token(clients.app, data), 400, "invalid_grant")


@pytest.mark.parametrize("redirect_uri", [CB + "/", CB2, "https://app.example/cb?x=1", "https://APP.example/cb",
                                          "https://evil.example/cb", None],
                         ids=["trailing-slash", "other-registered", "extra-query", "upper-case-host", "other-host",
                              "omitted"])
def test_code_redemption_is_invalid_grant_when_redirect_uri_differs_from_authorization_request(
        server: ServerProcess, clients: Clients, redirect_uri: str | None) -> None:
    auth = authorize(server, clients.app, clients.user, redirect_uri=CB)
    data = {"grant_type": "authorization_code", "code": auth.code, "code_verifier": auth.verifier}
    if redirect_uri is not None:
        data["redirect_uri"] = redirect_uri
    assert_json_error(server.token(clients.app, data), 400, "invalid_grant")


@pytest.mark.parametrize("verifier", [None, ""], ids=["absent", "empty"])
def test_code_redemption_is_invalid_request_when_code_verifier_is_missing(
        server: ServerProcess, clients: Clients, verifier: str | None) -> None:
    auth = authorize(server, clients.app, clients.user)
    data = {"grant_type": "authorization_code", "code": auth.code, "redirect_uri": auth.redirect_uri}
    if verifier is not None:
        data["code_verifier"] = verifier
    assert_json_error(server.token(clients.app, data), 400, "invalid_request")


@pytest.mark.parametrize("verifier", ["a" * 42, "a" * 129, "a" * 20, "a" * 42 + "+", "a" * 42 + "%",
                                      "a" * 42 + "/", "a" * 42 + "=", "a" * 42 + " ", "a" * 42 + "é"],
                         ids=["42-chars", "129-chars", "20-chars", "plus", "percent", "slash", "equals", "space",
                              "non-ascii"])
def test_code_redemption_is_invalid_request_when_code_verifier_is_malformed(
        server: ServerProcess, clients: Clients, verifier: str) -> None:
    auth = authorize(server, clients.app, clients.user)
    assert_json_error(exchange_code(server, clients.app, auth, code_verifier=verifier), 400, "invalid_request")


@pytest.mark.parametrize("kind", ["other-flow", "challenge-itself", "max-length"])
def test_code_redemption_is_invalid_grant_when_code_verifier_is_wrong(
        server: ServerProcess, clients: Clients, kind: str) -> None:
    auth = authorize(server, clients.app, clients.user)
    challenge = pkce.s256(auth.verifier)
    verifier = {"other-flow": pkce.new_verifier(), "challenge-itself": challenge, "max-length": "a" * 128}[kind]
    assert_json_error(exchange_code(server, clients.app, auth, code_verifier=verifier), 400, "invalid_grant")


def test_code_redemption_is_invalid_target_when_resource_is_unknown_to_the_client(
        server: ServerProcess, clients: Clients) -> None:
    """RFC 8707 §2 / security.md A2: an unknown resource is invalid_target."""
    auth = authorize(server, clients.app, clients.user, extra={"resource": API_ONE})
    r = exchange_code(server, clients.app, auth, resource="https://unknown.example")
    assert_json_error(r, 400, "invalid_target")


def test_code_redemption_is_invalid_target_when_resource_was_not_authorized(
        server: ServerProcess, clients: Clients) -> None:
    """RFC 8707 §2: a resource the grant does not cover (here: another of the client's audiences) is
    invalid_target, not invalid_grant."""
    auth = authorize(server, clients.app, clients.user, extra={"resource": API_ONE})
    r = exchange_code(server, clients.app, auth, resource=API_TWO)
    assert_json_error(r, 400, "invalid_target")


def test_code_redemption_sets_audience_when_resource_matches_authorization(
        server: ServerProcess, clients: Clients) -> None:
    auth = authorize(server, clients.app, clients.user, extra={"resource": API_TWO})
    body = assert_ok(exchange_code(server, clients.app, auth, resource=API_TWO))
    assert jwt_payload(body["access_token"])["aud"] == API_TWO


REPLAYS: dict[str, Callable[[Clients], dict[str, Any]]] = {
    "wrong-verifier": lambda c: {"client": c.app, "code_verifier": "b" * 43},
    "other-client": lambda c: {"client": c.other},
    "redirect-mismatch": lambda c: {"client": c.app, "redirect_uri": CB2},
    "missing-verifier": lambda c: {"client": c.app, "code_verifier": None},
}


@pytest.mark.parametrize("replay", list(REPLAYS))
def test_code_replay_keeps_first_tokens_when_replay_has_invalid_parameters(
        server: ServerProcess, clients: Clients, replay: str) -> None:
    auth = authorize(server, clients.app, clients.user)
    first = assert_ok(exchange_code(server, clients.app, auth))
    spec = REPLAYS[replay](clients)
    client = spec.pop("client")
    data = {"grant_type": "authorization_code", "code": auth.code, "redirect_uri": auth.redirect_uri,
            "code_verifier": auth.verifier, **spec}
    r = server.token(client, {k: v for k, v in data.items() if v is not None})
    assert_json_error(r, 400, "invalid_request" if replay == "missing-verifier" else "invalid_grant")
    assert_ok(refresh(server, clients.app, first["refresh_token"]))


def test_code_replay_is_invalid_grant_and_revokes_first_tokens_when_replay_is_valid(
        server: ServerProcess, clients: Clients) -> None:
    auth = authorize(server, clients.app, clients.user)
    first = assert_ok(exchange_code(server, clients.app, auth))
    assert_json_error(exchange_code(server, clients.app, auth), 400, "invalid_grant")
    assert_json_error(refresh(server, clients.app, first["refresh_token"]), 400, "invalid_grant")
    assert clients.app.client_secret is not None
    introspection = httpx2.post(server.base_url + "/introspect", data={"token": first["access_token"]},
                                auth=httpx2.BasicAuth(clients.app.client_id, clients.app.client_secret))
    assert introspection.json() == {"active": False}
    # A third attempt is still invalid_grant (never a 500 on an already revoked family).
    assert_json_error(exchange_code(server, clients.app, auth), 400, "invalid_grant")


# -- refresh_token grant -----------------------------------------------------------------------------------------

def test_refresh_is_invalid_request_when_refresh_token_is_missing(server: ServerProcess, clients: Clients) -> None:
    for data in ({"grant_type": "refresh_token"}, {"grant_type": "refresh_token", "refresh_token": ""}):
        assert_json_error(server.token(clients.app, data), 400, "invalid_request")


@pytest.mark.parametrize("token", ["tw_rt_" + "A" * 43, "garbage", "x" * 4000, "tw_ac_" + "A" * 43, "a.b.c"],
                         ids=["well-formed", "garbage", "long", "code-prefix", "jwt-shaped"])
def test_refresh_is_invalid_grant_when_refresh_token_is_unknown(server: ServerProcess, clients: Clients,
                                                               token: str) -> None:
    assert_json_error(refresh(server, clients.app, token), 400, "invalid_grant")


@pytest.mark.parametrize("position", ["last", "first-after-prefix", "middle"])
def test_refresh_is_invalid_grant_when_refresh_token_has_a_flipped_character(
        server: ServerProcess, clients: Clients, position: str) -> None:
    tokens = user_tokens(server, clients)
    rt: str = tokens["refresh_token"]
    index = {"last": len(rt) - 1, "first-after-prefix": len("tw_rt_"), "middle": len(rt) // 2}[position]
    flipped = rt[:index] + ("A" if rt[index] != "A" else "B") + rt[index + 1:]
    assert_json_error(refresh(server, clients.app, flipped), 400, "invalid_grant")
    assert_ok(refresh(server, clients.app, rt))


def test_refresh_is_invalid_grant_when_access_token_is_sent_as_refresh_token(
        server: ServerProcess, clients: Clients) -> None:
    tokens = user_tokens(server, clients)
    assert_json_error(refresh(server, clients.app, tokens["access_token"]), 400, "invalid_grant")


def test_refresh_is_invalid_grant_when_token_belongs_to_another_client_and_owner_keeps_it(
        server: ServerProcess, clients: Clients) -> None:
    tokens = user_tokens(server, clients)
    assert_json_error(refresh(server, clients.other, tokens["refresh_token"]), 400, "invalid_grant")
    assert_ok(refresh(server, clients.app, tokens["refresh_token"]))


@pytest.mark.parametrize("scope", ["profile:read profile:write offline_access", "admin", "profile:read admin"])
def test_refresh_is_invalid_scope_when_scope_is_wider_than_grant_and_token_still_works(
        server: ServerProcess, clients: Clients, scope: str) -> None:
    tokens = user_tokens(server, clients, scope="profile:read profile:write")
    assert_json_error(refresh(server, clients.app, tokens["refresh_token"], scope=scope), 400, "invalid_scope")
    body = assert_ok(refresh(server, clients.app, tokens["refresh_token"]))
    assert body["scope"] == "profile:read profile:write"


def test_refresh_is_invalid_scope_when_scope_exceeds_narrow_grant(server: ServerProcess, clients: Clients) -> None:
    tokens = user_tokens(server, clients, scope="profile:read")
    r = refresh(server, clients.app, tokens["refresh_token"], scope="profile:read profile:write")
    assert_json_error(r, 400, "invalid_scope")
    assert_ok(refresh(server, clients.app, tokens["refresh_token"]))


@pytest.mark.parametrize("scope", ['profile:read "x', "profile:read a\\b", "profile:read é", "a\tb"],
                         ids=["quote", "backslash", "non-ascii", "tab"])
def test_refresh_is_invalid_scope_when_scope_is_malformed(server: ServerProcess, clients: Clients, scope: str
                                                          ) -> None:
    tokens = user_tokens(server, clients)
    assert_json_error(refresh(server, clients.app, tokens["refresh_token"], scope=scope), 400, "invalid_scope")
    assert_ok(refresh(server, clients.app, tokens["refresh_token"]))


def test_refresh_narrows_scope_and_next_refresh_gets_full_scope_when_subset_is_requested(
        server: ServerProcess, clients: Clients) -> None:
    """T4: narrower scope for the access token, the new refresh token keeps the original scope."""
    tokens = user_tokens(server, clients, scope="profile:read profile:write")
    narrow = assert_ok(refresh(server, clients.app, tokens["refresh_token"], scope="profile:read"))
    assert narrow["scope"] == "profile:read"
    assert jwt_payload(narrow["access_token"])["scope"] == "profile:read"
    full = assert_ok(refresh(server, clients.app, narrow["refresh_token"], scope="profile:read profile:write"))
    assert full["scope"] == "profile:read profile:write"


def test_refresh_is_invalid_grant_when_family_was_revoked_by_reuse(server: ServerProcess, clients: Clients) -> None:
    tokens = user_tokens(server, clients)
    rotated = assert_ok(refresh(server, clients.app, tokens["refresh_token"]))
    # Confidential clients get one grace retry (the lost response); the next reuse revokes the family.
    r = refresh(server, clients.app, tokens["refresh_token"])
    if r.status_code == 200:
        r = refresh(server, clients.app, tokens["refresh_token"])
    assert_json_error(r, 400, "invalid_grant")
    assert_json_error(refresh(server, clients.app, rotated["refresh_token"]), 400, "invalid_grant")


# -- client_credentials grant ------------------------------------------------------------------------------------

@pytest.mark.parametrize("scope", ["admin", "profile:read admin", "offline_access"])
def test_client_credentials_is_invalid_scope_when_scope_exceeds_client_scope(
        server: ServerProcess, clients: Clients, scope: str) -> None:
    assert_json_error(server.token(clients.cc_only, {**CC, "scope": scope}), 400, "invalid_scope")


@pytest.mark.parametrize("scope", ['profile:read "x', "a\\b", "profile:read é"],
                         ids=["quote", "backslash", "non-ascii"])
def test_client_credentials_is_invalid_scope_when_scope_is_malformed(
        server: ServerProcess, clients: Clients, scope: str) -> None:
    assert_json_error(server.token(clients.cc_only, {**CC, "scope": scope}), 400, "invalid_scope")


@pytest.mark.parametrize("resource", ["https://unknown.example", API_ONE + "/", "urn:tokenward:api",
                                      "https://API.one.example"],
                         ids=["unknown", "trailing-slash", "server-default-audience", "upper-case-host"])
def test_client_credentials_is_invalid_target_when_resource_is_not_an_audience_of_the_client(
        server: ServerProcess, clients: Clients, resource: str) -> None:
    assert_json_error(server.token(clients.app, {**CC, "resource": resource}), 400, "invalid_target")


def test_client_credentials_is_invalid_target_when_client_without_audiences_asks_another_resource(
        server: ServerProcess, clients: Clients) -> None:
    r = server.token(clients.cc_only, {**CC, "resource": "https://unknown.example"})
    assert_json_error(r, 400, "invalid_target")


@pytest.mark.parametrize("resource", [API_ONE, API_TWO])
def test_client_credentials_sets_aud_to_resource_when_resource_is_allowed(
        server: ServerProcess, clients: Clients, resource: str) -> None:
    body = assert_ok(server.token(clients.app, {**CC, "resource": resource}))
    claims = jwt_payload(body["access_token"])
    assert claims["aud"] == resource
    assert claims["sub"] == clients.app.client_id
    assert "refresh_token" not in body
