"""Every error branch of ``GET /authorize`` and its login and consent pages, against a real server.

Sources: security.md §1.1 (redirect URIs), §1.2 (PKCE), §1.5 (``iss``), §1.6 (CSRF, clickjacking, referrer,
303, CORS), §1.7 (audiences, no implicit) and §2.6 (page or redirect?); RFC 6749 §4.1.2.1, RFC 9207 §2,
RFC 8252 §7.3. Until the client and redirect URI are trusted an error is an HTML page with no ``Location``;
after that it is a 303 to the redirect URI carrying ``error``, ``state`` unchanged and ``iss``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx2
import pytest

from tests.support import PASSWORD, ClientInfo, ServerProcess, authorize, hidden_fields, query_of
from tokenward.protocol import pkce

CB = "https://app.example/cb"
CB2 = "https://app.example/cb2"
LOOPBACK = "http://127.0.0.1/cb"
LOOPBACK6 = "http://[::1]/cb"
API = "https://api.one.example"
STATE = "st/+ =&?é%20x"
ERROR_CHARSET = re.compile(r"^[\x20\x21\x23-\x5B\x5D-\x7E]*$")
ANY_STATE = object()


# -- helpers ---------------------------------------------------------------------------------------------------

@dataclass
class Clients:
    web: ClientInfo          # confidential, one https redirect URI, one audience
    multi: ClientInfo        # confidential, two redirect URIs
    native: ClientInfo       # public, http://127.0.0.1/cb
    native6: ClientInfo      # public, http://[::1]/cb
    cc_only: ClientInfo      # confidential, client_credentials only, yet with a redirect URI
    with_query: ClientInfo   # redirect URI with its own query
    user: str


@pytest.fixture(scope="module")
def clients(server: ServerProcess) -> Clients:
    return Clients(
        web=server.add_client(redirect_uris=(CB,), audiences=(API,)),
        multi=server.add_client(redirect_uris=(CB, CB2)),
        native=server.add_client(public=True, redirect_uri=LOOPBACK),
        native6=server.add_client(public=True, redirect_uri=LOOPBACK6),
        # admin.add_client accepts a confidential client_credentials-only client with a redirect URI.
        cc_only=server.add_client(grant_types=("client_credentials",), redirect_uris=(CB,)),
        with_query=server.add_client(redirect_uris=("https://app.example/cb?tenant=a",)),
        user=server.add_user(),
    )


@pytest.fixture(scope="module")
def issuer(server: ServerProcess) -> str:
    value: str = server.metadata()["issuer"]
    return value


@pytest.fixture
def browser(server: ServerProcess) -> Iterator[httpx2.Client]:
    with httpx2.Client(base_url=server.base_url, follow_redirects=False) as client:
        yield client


def request_pairs(client: ClientInfo, **overrides: str | None) -> list[tuple[str, str]]:
    """A valid authorization request for ``client``; an override of None drops the parameter."""
    params: dict[str, str | None] = {
        "response_type": "code", "client_id": client.client_id, "redirect_uri": client.redirect_uri,
        "state": STATE, "code_challenge": pkce.s256(pkce.new_verifier()), "code_challenge_method": "S256",
        "scope": "profile:read",
    }
    params.update(overrides)
    return [(k, v) for k, v in params.items() if v is not None]


def get_authorize(server: ServerProcess, query: str, headers: dict[str, str] | None = None) -> httpx2.Response:
    return httpx2.get(server.base_url + "/authorize?" + query, headers=headers, follow_redirects=False)


def assert_page_headers(r: httpx2.Response) -> None:
    """RFC 9700 §4.16 (clickjacking), §4.2.4 (referrer), OAuth 2.1 §3.2.3 (no caching)."""
    assert r.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
    assert r.headers["referrer-policy"] == "no-referrer"
    assert "no-store" in [d.strip() for d in r.headers["cache-control"].split(",")]


def assert_error_page(r: httpx2.Response, status: int = 400) -> None:
    """An HTML error shown to the user: never a redirect, no Location."""
    assert r.status_code == status, (r.status_code, r.headers.get("location"), r.text[:300])
    assert "location" not in r.headers
    assert not r.is_redirect
    assert r.headers["content-type"].startswith("text/html")
    assert "code=" not in r.text
    assert_page_headers(r)


def assert_redirect_error(r: httpx2.Response, redirect_uri: str, error: str, issuer: str,
                          state: object = STATE) -> dict[str, list[str]]:
    assert r.status_code == 303, (r.status_code, r.text[:300])
    location = r.headers["location"]
    base, _, query = location.partition("?")
    registered_base, _, registered_query = redirect_uri.partition("?")
    assert base == registered_base
    params = parse_qs(query, keep_blank_values=True)
    assert all(len(v) == 1 for v in params.values()), params
    for name, values in parse_qs(registered_query).items():
        assert params[name] == values
    assert params["error"] == [error], params
    assert ERROR_CHARSET.match(params["error"][0])
    if "error_description" in params:
        assert ERROR_CHARSET.match(params["error_description"][0]), params["error_description"]
    if state is not ANY_STATE:
        assert params.get("state") == ([state] if state is not None else None)
    assert params["iss"] == [issuer]
    assert "code" not in params
    return params


def start(browser: httpx2.Client, client: ClientInfo, **overrides: str | None) -> str:
    """GET /authorize in ``browser``; returns the Location of the 303 (login or consent)."""
    r = browser.get("/authorize?" + urlencode(request_pairs(client, **overrides)))
    assert r.status_code == 303, r.text
    location: str = r.headers["location"]
    return location


def login(browser: httpx2.Client, location: str, username: str, *, password: str = PASSWORD,
          headers: dict[str, str] | None = None, form: dict[str, str] | None = None) -> httpx2.Response:
    assert location.startswith("/login?request=")
    page = browser.get(location)
    assert page.status_code == 200
    fields = {**hidden_fields(page.text), **(form or {})}
    return browser.post("/login", data={**fields, "username": username, "password": password}, headers=headers)


def to_consent_page(server: ServerProcess, browser: httpx2.Client, client: ClientInfo, username: str,
                    **overrides: str | None) -> httpx2.Response:
    r = login(browser, start(browser, client, **overrides), username)
    assert r.status_code == 303 and r.headers["location"].startswith("/consent?request=")
    page = browser.get(r.headers["location"])
    assert page.status_code == 200, "consent must be asked (fresh user and client)"
    return page


# -- error page: the client or redirect URI cannot be trusted ---------------------------------------------------

def _dup(client: ClientInfo, name: str, second: str | None = None) -> str:
    pairs = request_pairs(client)
    value = dict(pairs)[name]
    return urlencode([*pairs, (name, second if second is not None else value)])


PAGE_ERRORS: dict[str, Callable[[Clients], str]] = {
    "unknown-client": lambda c: urlencode(request_pairs(c.web, client_id="no-such-client")),
    "missing-client-id": lambda c: urlencode(request_pairs(c.web, client_id=None)),
    "empty-client-id": lambda c: urlencode(request_pairs(c.web, client_id="")),
    "missing-redirect-uri-several-registered": lambda c: urlencode(request_pairs(c.multi, redirect_uri=None)),
    "missing-redirect-uri-loopback-registered": lambda c: urlencode(request_pairs(c.native, redirect_uri=None)),
    "trailing-slash": lambda c: urlencode(request_pairs(c.web, redirect_uri=CB + "/")),
    "extra-query": lambda c: urlencode(request_pairs(c.web, redirect_uri=CB + "?x=1")),
    "changed-query-value": lambda c: urlencode(request_pairs(c.with_query,
                                                             redirect_uri="https://app.example/cb?tenant=b")),
    "upper-case-host": lambda c: urlencode(request_pairs(c.web, redirect_uri="https://APP.EXAMPLE/cb")),
    "upper-case-scheme": lambda c: urlencode(request_pairs(c.web, redirect_uri="HTTPS://app.example/cb")),
    "other-host": lambda c: urlencode(request_pairs(c.web, redirect_uri="https://evil.example/cb")),
    "userinfo": lambda c: urlencode(request_pairs(c.web, redirect_uri="https://app.example@evil.example/cb")),
    "dot-segments": lambda c: urlencode(request_pairs(c.web, redirect_uri="https://app.example/x/../cb")),
    "encoded-dot-segments": lambda c: urlencode(request_pairs(c.web, redirect_uri="https://app.example/%2e%2e/cb")),
    "fragment": lambda c: urlencode(request_pairs(c.web, redirect_uri=CB + "#x")),
    "explicit-default-port": lambda c: urlencode(request_pairs(c.web, redirect_uri="https://app.example:443/cb")),
    "http-for-https": lambda c: urlencode(request_pairs(c.web, redirect_uri="http://app.example/cb")),
    "other-clients-uri": lambda c: urlencode(request_pairs(c.web, redirect_uri=CB2)),
    "localhost-for-127.0.0.1": lambda c: urlencode(request_pairs(c.native, redirect_uri="http://localhost:51004/cb")),
    "LOCALHOST-for-127.0.0.1": lambda c: urlencode(request_pairs(c.native, redirect_uri="http://LOCALHOST:51004/cb")),
    "padded-loopback-ip": lambda c: urlencode(request_pairs(c.native, redirect_uri="http://127.000.000.001:51004/cb")),
    "loopback-dot-segments": lambda c: urlencode(request_pairs(c.native,
                                                               redirect_uri="http://127.0.0.1:51004/x/../cb")),
    "loopback-trailing-slash": lambda c: urlencode(request_pairs(c.native, redirect_uri="http://127.0.0.1:51004/cb/")),
    "loopback-https": lambda c: urlencode(request_pairs(c.native, redirect_uri="https://127.0.0.1:51004/cb")),
    "loopback-ipv6-for-ipv4": lambda c: urlencode(request_pairs(c.native, redirect_uri="http://[::1]:51004/cb")),
    "loopback-127.0.0.2": lambda c: urlencode(request_pairs(c.native, redirect_uri="http://127.0.0.2:51004/cb")),
    "loopback-bad-port": lambda c: urlencode(request_pairs(c.native, redirect_uri="http://127.0.0.1:99999/cb")),
    "duplicate-client-id": lambda c: _dup(c.web, "client_id"),
    "duplicate-client-id-other-value": lambda c: _dup(c.web, "client_id", c.multi.client_id),
    "duplicate-redirect-uri": lambda c: _dup(c.web, "redirect_uri"),
    "duplicate-redirect-uri-other-value": lambda c: _dup(c.multi, "redirect_uri", CB2),
    "invalid-utf8": lambda c: urlencode(request_pairs(c.web)) + "&scope=%C3%28",
    "invalid-utf8-client-id": lambda c: urlencode(request_pairs(c.web, client_id=None)) + "&client_id=%C3%28",
}


@pytest.mark.parametrize("case", list(PAGE_ERRORS))
def test_authorize_shows_error_page_without_redirect_when_client_or_redirect_uri_is_untrusted(
        server: ServerProcess, clients: Clients, case: str) -> None:
    r = get_authorize(server, PAGE_ERRORS[case](clients))
    assert_error_page(r, 400)


def test_authorize_shows_error_page_when_request_has_no_parameters(server: ServerProcess) -> None:
    assert_error_page(httpx2.get(server.base_url + "/authorize", follow_redirects=False), 400)


# -- redirect errors: client and redirect URI trusted -----------------------------------------------------------

REDIRECT_ERRORS: dict[str, tuple[Callable[[Clients], str], str]] = {
    "missing-response-type": (lambda c: urlencode(request_pairs(c.web, response_type=None)), "invalid_request"),
    "empty-response-type": (lambda c: urlencode(request_pairs(c.web, response_type="")), "invalid_request"),
    "response-type-token": (lambda c: urlencode(request_pairs(c.web, response_type="token")),
                            "unsupported_response_type"),
    "response-type-code-token": (lambda c: urlencode(request_pairs(c.web, response_type="code token")),
                                 "unsupported_response_type"),
    "response-type-id-token": (lambda c: urlencode(request_pairs(c.web, response_type="id_token")),
                               "unsupported_response_type"),
    "response-type-upper-case": (lambda c: urlencode(request_pairs(c.web, response_type="CODE")),
                                 "unsupported_response_type"),
    "missing-code-challenge": (lambda c: urlencode(request_pairs(c.web, code_challenge=None)), "invalid_request"),
    "missing-pkce": (lambda c: urlencode(request_pairs(c.web, code_challenge=None, code_challenge_method=None)),
                     "invalid_request"),
    "method-plain": (lambda c: urlencode(request_pairs(c.web, code_challenge_method="plain")), "invalid_request"),
    "method-missing": (lambda c: urlencode(request_pairs(c.web, code_challenge_method=None)), "invalid_request"),
    "method-lower-case": (lambda c: urlencode(request_pairs(c.web, code_challenge_method="s256")),
                          "invalid_request"),
    "challenge-42-chars": (lambda c: urlencode(request_pairs(c.web, code_challenge="a" * 42)), "invalid_request"),
    "challenge-129-chars": (lambda c: urlencode(request_pairs(c.web, code_challenge="a" * 129)), "invalid_request"),
    "challenge-plus-slash-equals": (lambda c: urlencode(request_pairs(c.web, code_challenge="a" * 40 + "+/=")),
                                    "invalid_request"),
    "scope-outside-client": (lambda c: urlencode(request_pairs(c.web, scope="admin")), "invalid_scope"),
    "scope-partly-outside-client": (lambda c: urlencode(request_pairs(c.web, scope="profile:read admin")),
                                    "invalid_scope"),
    "scope-malformed": (lambda c: urlencode(request_pairs(c.web, scope='profile:read "x')), "invalid_scope"),
    "duplicate-scope": (lambda c: _dup(c.web, "scope"), "invalid_request"),
    "duplicate-scope-other-value": (lambda c: _dup(c.web, "scope", "profile:write"), "invalid_request"),
    "duplicate-code-challenge": (lambda c: _dup(c.web, "code_challenge"), "invalid_request"),
    "duplicate-code-challenge-method": (lambda c: _dup(c.web, "code_challenge_method"), "invalid_request"),
    "duplicate-response-type": (lambda c: _dup(c.web, "response_type"), "invalid_request"),
    "unauthorized-client": (lambda c: urlencode(request_pairs(c.cc_only)), "unauthorized_client"),
    "unknown-resource": (lambda c: urlencode(request_pairs(c.web, resource="https://unknown.example")),
                         "invalid_target"),
    "resource-not-an-audience-of-client": (lambda c: urlencode(request_pairs(c.web, resource="urn:tokenward:api")),
                                           "invalid_target"),
}


@pytest.mark.parametrize("case", list(REDIRECT_ERRORS))
def test_authorize_redirects_error_with_state_and_iss_when_client_is_trusted(
        server: ServerProcess, clients: Clients, issuer: str, case: str) -> None:
    build, error = REDIRECT_ERRORS[case]
    r = get_authorize(server, build(clients))
    assert_redirect_error(r, CB, error, issuer)


@pytest.mark.parametrize("second", [STATE, "other-state"], ids=["same-value", "other-value"])
def test_authorize_redirects_invalid_request_when_state_is_repeated(
        server: ServerProcess, clients: Clients, issuer: str, second: str) -> None:
    r = get_authorize(server, _dup(clients.web, "state", second))
    params = assert_redirect_error(r, CB, "invalid_request", issuer, state=ANY_STATE)
    assert params.get("state") in (None, [STATE], [second])


@pytest.mark.parametrize("state", ["a\x00b", "line\nbreak", "del\x7f"], ids=["nul", "newline", "del"])
def test_authorize_redirects_invalid_request_without_state_when_state_has_control_characters(
        server: ServerProcess, clients: Clients, issuer: str, state: str) -> None:
    r = get_authorize(server, urlencode(request_pairs(clients.web, state=state)))
    assert_redirect_error(r, CB, "invalid_request", issuer, state=None)


def test_nul_characters_in_client_id_request_id_or_username_are_unknown_values_not_errors(
        server: ServerProcess, clients: Clients, browser: httpx2.Client) -> None:
    """PostgreSQL text cannot hold NUL; a lookup with one must find nothing rather than fail (found by
    schemathesis: ``/login?request=%00…`` answered 500 on PostgreSQL)."""
    assert_error_page(get_authorize(server, urlencode(request_pairs(clients.web, client_id="web\x00"))))
    assert_error_page(browser.get("/login", params={"request": "\x00"}))
    page = browser.get(start(browser, clients.native, redirect_uri=LOOPBACK, state="s"))
    r = browser.post("/login", data={**hidden_fields(page.text), "username": "x\x00y", "password": "nope"})
    assert r.status_code == 401 and "incorrect" in r.text


def test_authorize_redirects_error_without_state_when_request_has_no_state(
        server: ServerProcess, clients: Clients, issuer: str) -> None:
    r = get_authorize(server, urlencode(request_pairs(clients.web, state=None, response_type="token")))
    assert_redirect_error(r, CB, "unsupported_response_type", issuer, state=None)


def test_authorize_redirects_error_to_the_only_registered_uri_when_redirect_uri_is_omitted(
        server: ServerProcess, clients: Clients, issuer: str) -> None:
    r = get_authorize(server, urlencode(request_pairs(clients.web, redirect_uri=None, code_challenge=None)))
    assert_redirect_error(r, CB, "invalid_request", issuer)


def test_authorize_keeps_registered_query_when_redirecting_an_error(
        server: ServerProcess, clients: Clients, issuer: str) -> None:
    r = get_authorize(server, urlencode(request_pairs(clients.with_query, response_type="token")))
    params = assert_redirect_error(r, "https://app.example/cb?tenant=a", "unsupported_response_type", issuer)
    assert params["tenant"] == ["a"]


def test_authorize_redirects_error_to_the_requested_loopback_port_when_client_is_native(
        server: ServerProcess, clients: Clients, issuer: str) -> None:
    r = get_authorize(server, urlencode(request_pairs(clients.native, redirect_uri="http://127.0.0.1:51004/cb",
                                                      code_challenge_method="plain")))
    assert_redirect_error(r, "http://127.0.0.1:51004/cb", "invalid_request", issuer)


def test_authorize_redirects_access_denied_with_state_and_iss_when_user_denies(
        server: ServerProcess, clients: Clients, issuer: str) -> None:
    user = server.add_user()
    auth = authorize(server, clients.web, user, state=STATE, decision="deny")
    assert auth.code == ""
    assert auth.location.startswith(CB + "?")
    assert auth.params["error"] == "access_denied"
    assert auth.params["state"] == STATE
    assert auth.params["iss"] == issuer
    assert "code" not in auth.params


# -- success: the shapes the errors are measured against -------------------------------------------------------

def test_authorize_redirects_code_state_and_iss_when_user_consents(
        server: ServerProcess, clients: Clients, issuer: str) -> None:
    auth = authorize(server, clients.web, clients.user, state=STATE)
    assert auth.location.startswith(CB + "?")
    assert auth.code.startswith("tw_ac_")
    assert auth.params["state"] == STATE
    assert auth.params["iss"] == issuer
    assert "error" not in auth.params
    assert all(len(v) == 1 for v in parse_qs(urlsplit(auth.location).query).values())


def test_authorize_uses_the_only_registered_uri_when_redirect_uri_is_omitted(
        server: ServerProcess, clients: Clients, issuer: str) -> None:
    with httpx2.Client(base_url=server.base_url, follow_redirects=False) as b:
        r = login(b, start(b, clients.web, redirect_uri=None), clients.user)
        consent = b.get(r.headers["location"])
        if consent.status_code == 200:
            consent = b.post("/consent", data={**hidden_fields(consent.text), "decision": "allow"})
        assert consent.status_code == 303
        location = consent.headers["location"]
    assert location.startswith(CB + "?")
    assert query_of(location)["code"] and query_of(location)["iss"] == issuer


@pytest.mark.parametrize(("client_name", "redirect_uri"), [
    ("native", "http://127.0.0.1:51004/cb"),
    ("native", "http://127.0.0.1:8080/cb"),
    ("native", "http://127.0.0.1/cb"),
    ("native6", "http://[::1]:51004/cb"),
])
def test_authorize_accepts_any_loopback_port_when_client_registered_loopback(
        server: ServerProcess, clients: Clients, issuer: str, client_name: str, redirect_uri: str) -> None:
    client: ClientInfo = getattr(clients, client_name)
    auth = authorize(server, client, clients.user, redirect_uri=redirect_uri)
    assert auth.location.startswith(redirect_uri + "?")
    assert auth.code and auth.params["state"] == "st-123" and auth.params["iss"] == issuer


def test_authorize_accepts_second_registered_uri_when_several_are_registered(
        server: ServerProcess, clients: Clients) -> None:
    auth = authorize(server, clients.multi, clients.user, redirect_uri=CB2)
    assert auth.location.startswith(CB2 + "?") and auth.code


# -- pages: headers, cookie, CSRF, binding to the browser -------------------------------------------------------

@pytest.mark.parametrize("page", ["login", "consent", "error", "authorize-redirect", "login-failed"])
def test_page_carries_anti_framing_referrer_and_no_store_headers_when_served(
        server: ServerProcess, clients: Clients, browser: httpx2.Client, page: str) -> None:
    if page == "error":
        r = browser.get("/authorize?client_id=no-such-client")
    elif page == "authorize-redirect":
        r = browser.get("/authorize?" + urlencode(request_pairs(clients.web)))
        assert r.status_code == 303
    elif page == "login":
        r = browser.get(start(browser, clients.web))
        assert r.status_code == 200 and 'name="password"' in r.text
    elif page == "login-failed":
        r = login(browser, start(browser, clients.web), clients.user, password="wrong password!")
        assert r.status_code == 401
    else:
        r = to_consent_page(server, browser, server.add_client(), server.add_user())
        assert 'name="decision"' in r.text
    assert_page_headers(r)
    # No third-party resources on authorization pages (RFC 9700 §4.2.4).
    assert not re.search(r"""(?:src|href|action)\s*=\s*["']?(?:[a-z][a-z0-9+.-]*:)?//""", r.text, re.I)


def test_session_cookie_is_httponly_and_samesite_lax_when_set(
        server: ServerProcess, clients: Clients, browser: httpx2.Client) -> None:
    r = browser.get("/authorize?" + urlencode(request_pairs(clients.web)))
    assert r.status_code == 303
    for response in (r, login(browser, r.headers["location"], clients.user)):
        cookies = [c for c in response.headers.get_list("set-cookie") if "tw_session=" in c]
        assert len(cookies) == 1, response.headers.get_list("set-cookie")
        attributes = [a.strip().lower() for a in cookies[0].split(";")[1:]]
        assert "httponly" in attributes
        assert "samesite=lax" in attributes
        assert "path=/" in attributes


def test_login_redirects_with_303_when_credentials_are_valid(
        server: ServerProcess, clients: Clients, browser: httpx2.Client) -> None:
    r = login(browser, start(browser, clients.web), clients.user)
    assert r.status_code == 303
    assert r.headers["location"].startswith("/consent?request=")


def test_login_page_is_401_without_redirect_when_password_is_wrong(
        server: ServerProcess, clients: Clients, browser: httpx2.Client) -> None:
    location = start(browser, clients.web)
    for username, password in ((clients.user, "wrong password!"), ("no-such-user", PASSWORD)):
        r = login(browser, location, username, password=password)
        assert r.status_code == 401
        assert "location" not in r.headers
        assert r.headers["content-type"].startswith("text/html")
    # The pending request is still usable after the failures.
    assert login(browser, location, clients.user).status_code == 303


@pytest.mark.parametrize("csrf", ["wrong", "", None], ids=["wrong", "empty", "missing"])
def test_login_is_403_when_csrf_token_is_wrong(server: ServerProcess, clients: Clients, browser: httpx2.Client,
                                               csrf: str | None) -> None:
    location = start(browser, clients.web)
    page = browser.get(location)
    fields = hidden_fields(page.text)
    if csrf is None:
        fields.pop("csrf_token")
    else:
        fields["csrf_token"] = csrf
    r = browser.post("/login", data={**fields, "username": clients.user, "password": PASSWORD})
    assert_error_page(r, 403)
    assert not [c for c in r.headers.get_list("set-cookie") if "tw_session=" in c]


@pytest.mark.parametrize("headers", [
    {"Origin": "https://evil.example"},
    {"Origin": "http://127.0.0.1:1"},
    {"Origin": "http://localhost"},
    {"Sec-Fetch-Site": "cross-site"},
    {"Sec-Fetch-Site": "same-site"},
    {"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"},
], ids=["evil-origin", "other-port", "localhost", "sec-fetch-cross-site", "sec-fetch-same-site", "both"])
def test_login_is_403_when_form_is_posted_from_another_origin(
        server: ServerProcess, clients: Clients, browser: httpx2.Client, headers: dict[str, str]) -> None:
    r = login(browser, start(browser, clients.web), clients.user, headers=headers)
    assert_error_page(r, 403)


@pytest.mark.parametrize("origin", ["same", "null"])
def test_login_succeeds_when_origin_is_the_issuer_or_null(
        server: ServerProcess, clients: Clients, browser: httpx2.Client, issuer: str, origin: str) -> None:
    parts = urlsplit(issuer)
    value = f"{parts.scheme}://{parts.netloc}" if origin == "same" else "null"
    r = login(browser, start(browser, clients.web), clients.user,
              headers={"Origin": value, "Sec-Fetch-Site": "same-origin"})
    assert r.status_code == 303


@pytest.mark.parametrize("csrf", ["wrong", "", None], ids=["wrong", "empty", "missing"])
def test_consent_is_403_and_issues_no_code_when_csrf_token_is_wrong(
        server: ServerProcess, browser: httpx2.Client, csrf: str | None) -> None:
    client = server.add_client()
    page = to_consent_page(server, browser, client, server.add_user())
    fields = hidden_fields(page.text)
    good = dict(fields)
    if csrf is None:
        fields.pop("csrf_token")
    else:
        fields["csrf_token"] = csrf
    r = browser.post("/consent", data={**fields, "decision": "allow"})
    assert_error_page(r, 403)
    # No code was issued: the genuine form still completes, exactly once.
    ok = browser.post("/consent", data={**good, "decision": "allow"})
    assert ok.status_code == 303 and query_of(ok.headers["location"])["code"]


def test_consent_is_403_when_form_is_posted_from_another_origin(server: ServerProcess, browser: httpx2.Client
                                                               ) -> None:
    page = to_consent_page(server, browser, server.add_client(), server.add_user())
    r = browser.post("/consent", data={**hidden_fields(page.text), "decision": "allow"},
                     headers={"Origin": "https://evil.example"})
    assert_error_page(r, 403)


@pytest.mark.parametrize("decision", [None, "", "maybe", "ALLOW"])
def test_consent_shows_error_page_when_decision_is_neither_allow_nor_deny(
        server: ServerProcess, browser: httpx2.Client, decision: str | None) -> None:
    page = to_consent_page(server, browser, server.add_client(), server.add_user())
    data = hidden_fields(page.text)
    if decision is not None:
        data["decision"] = decision
    assert_error_page(browser.post("/consent", data=data), 400)


@pytest.mark.parametrize("step", ["login-get", "login-post", "consent-get", "consent-post"])
@pytest.mark.parametrize("other", ["fresh-cookie-jar", "own-session"])
def test_pending_request_shows_error_page_when_used_from_another_browser(
        server: ServerProcess, clients: Clients, browser: httpx2.Client, step: str, other: str) -> None:
    client, user = server.add_client(), server.add_user()
    if step.startswith("consent"):
        fields = hidden_fields(to_consent_page(server, browser, client, user).text)
    else:
        fields = hidden_fields(browser.get(start(browser, client)).text)
    request_id = fields["request"]
    with httpx2.Client(base_url=server.base_url, follow_redirects=False) as thief:
        if other == "own-session":
            start(thief, clients.web)  # the other browser has a session of its own
            assert thief.cookies.get("tw_session")
        if step == "login-get":
            r = thief.get(f"/login?request={request_id}")
        elif step == "login-post":
            r = thief.post("/login", data={**fields, "username": user, "password": PASSWORD})
        elif step == "consent-get":
            r = thief.get(f"/consent?request={request_id}")
        else:
            r = thief.post("/consent", data={**fields, "decision": "allow"})
    assert_error_page(r, 400)


@pytest.mark.parametrize("path", ["/login", "/consent", "/login?request=", "/consent?request=nope",
                                  "/login?request=nope"])
def test_page_shows_error_when_pending_request_is_unknown(
        server: ServerProcess, clients: Clients, browser: httpx2.Client, path: str) -> None:
    start(browser, clients.web)  # a real session, so only the request id is wrong
    assert_error_page(browser.get(path), 400)


def test_remembered_consent_skips_consent_page_when_same_user_client_and_scope_ask_again(
        server: ServerProcess, browser: httpx2.Client, issuer: str) -> None:
    client, user = server.add_client(), server.add_user()
    first = authorize(server, client, user, browser=browser, scope="profile:read")
    assert first.code
    location = start(browser, client, scope="profile:read", state="second")
    assert location.startswith("/consent?request=")  # the session already knows the user
    r = browser.get(location)
    assert r.status_code == 303
    back = r.headers["location"]
    assert back.startswith(CB + "?")
    params = query_of(back)
    assert params["code"] and params["code"] != first.code
    assert params["state"] == "second" and params["iss"] == issuer


@pytest.mark.parametrize("method", ["GET", "OPTIONS"])
def test_authorize_sends_no_cors_headers_when_request_has_an_origin(
        server: ServerProcess, clients: Clients, method: str) -> None:
    headers = {"Origin": "https://x.example"}
    if method == "OPTIONS":
        headers |= {"Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "authorization"}
    for query in (urlencode(request_pairs(clients.web)), "client_id=no-such-client"):
        r = httpx2.request(method, server.base_url + "/authorize?" + query, headers=headers, follow_redirects=False)
        assert r.status_code < 500
        assert not [h for h in r.headers if h.lower().startswith("access-control-")], dict(r.headers)


# -- no write before the request is valid; bounded parameters (issue #12 §2.6) ----------------------------------

def row_counts(server: ServerProcess) -> tuple[int, int]:
    """(sessions, pending authorization requests), read from the server's own database."""
    sessions = server.query("SELECT count(*) FROM sessions")[0][0]
    pending = server.query("SELECT count(*) FROM authorization_requests")[0][0]
    return int(sessions), int(pending)


@pytest.mark.parametrize("case", ["unknown-client", "missing-client-id", "other-host", "duplicate-client-id"])
def test_authorize_writes_no_session_nor_pending_request_and_sets_no_cookie_when_request_is_untrusted(
        server: ServerProcess, clients: Clients, case: str) -> None:
    before = row_counts(server)
    r = get_authorize(server, PAGE_ERRORS[case](clients))
    assert_error_page(r, 400)
    assert "set-cookie" not in r.headers
    assert row_counts(server) == before


def test_authorize_writes_nothing_when_a_redirectable_error_is_answered(
        server: ServerProcess, clients: Clients, issuer: str) -> None:
    before = row_counts(server)
    r = get_authorize(server, urlencode(request_pairs(clients.web, code_challenge=None)))
    assert_redirect_error(r, CB, "invalid_request", issuer)
    assert "set-cookie" not in r.headers
    assert row_counts(server) == before


def test_authorize_refuses_a_10_kb_state_with_invalid_request_and_stores_nothing(
        server: ServerProcess, clients: Clients, issuer: str) -> None:
    before = row_counts(server)
    r = get_authorize(server, urlencode(request_pairs(clients.web, state="s" * 10_000)))
    # state is not echoed: the point is not to carry 10 KB around
    assert_redirect_error(r, CB, "invalid_request", issuer, state=None)
    assert row_counts(server) == before


def test_authorize_with_a_60_kb_state_is_refused_by_the_http_layer_and_stores_nothing(
        server: ServerProcess, clients: Clients) -> None:
    before = row_counts(server)
    r = get_authorize(server, urlencode(request_pairs(clients.web, state="s" * 60_000)))
    assert r.status_code == 431  # the 16 KiB request-head cap answers before the application (§2.1)
    assert row_counts(server) == before


def test_authorize_accepts_a_state_of_1024_bytes_and_refuses_1025(
        server: ServerProcess, clients: Clients, browser: httpx2.Client, issuer: str) -> None:
    assert start(browser, clients.web, state="é" * 512).startswith("/login?request=")  # 1024 UTF-8 bytes
    r = get_authorize(server, urlencode(request_pairs(clients.web, state="é" * 512 + "x")))
    assert_redirect_error(r, CB, "invalid_request", issuer, state=None)


@pytest.mark.parametrize("name", ["scope", "resource", "nonce", "prompt"])
def test_authorize_refuses_any_oversized_parameter_with_invalid_request_and_stores_nothing(
        server: ServerProcess, clients: Clients, issuer: str, name: str) -> None:
    before = row_counts(server)
    r = get_authorize(server, urlencode(request_pairs(clients.web, **{name: "a" * 5000})))
    assert_redirect_error(r, CB, "invalid_request", issuer)
    assert row_counts(server) == before
