"""Redirect URI rules (security.md §1.1 R1-R4): exact string match, except the port of loopback URIs."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from tokenward.protocol import redirect_uri
from tokenward.protocol.redirect_uri import RedirectUriError, matches, validate_registration

APP = "https://app.example/cb"
LOOPBACK_V4 = "http://127.0.0.1/cb"
LOOPBACK_V6 = "http://[::1]/cb"


@pytest.mark.parametrize(("requested", "registered"), [
    (APP, [APP]),
    (APP, ["https://other.example/cb", APP]),
    ("https://app.example/cb?client=1", ["https://app.example/cb?client=1"]),
    ("https://app.example:8443/cb", ["https://app.example:8443/cb"]),
    (LOOPBACK_V4, [LOOPBACK_V4]),
    ("http://127.0.0.1:8080/cb", ["http://127.0.0.1:8080/cb"]),
], ids=["single", "second-of-two", "with-query", "with-port", "loopback-no-port", "loopback-same-port"])
def test_matches_is_true_when_requested_is_exactly_a_registered_uri(requested: str, registered: list[str]) -> None:
    assert matches(requested, registered) is True


@pytest.mark.parametrize(("requested", "registered"), [
    ("https://app.example/cb/", [APP]),
    ("https://app.example/c", [APP]),
    ("HTTPS://app.example/cb", [APP]),
    ("Https://app.example/cb", [APP]),
    ("https://APP.EXAMPLE/cb", [APP]),
    ("https://app.example/CB", [APP]),
    ("https://app.example/cb?x=1", [APP]),
    ("https://app.example/cb?", [APP]),
    ("https://app.example/cb#", [APP]),
    ("https://app.example/cb#x", [APP]),
    ("https://app.example/cb?client=2", ["https://app.example/cb?client=1"]),
    ("https://app.example/cb", ["https://app.example/cb?client=1"]),
    ("https://app.example/x/../cb", [APP]),
    ("https://app.example/x/%2e%2e/cb", [APP]),
    ("https://app.example/x/%2E%2E/cb", [APP]),
    ("https://app.example/%63b", [APP]),
    ("https://app.example//cb", [APP]),
    ("https://app@evil.example/cb", [APP]),
    ("https://user@app.example/cb", [APP]),
    ("https://app.example:443/cb", [APP]),
    ("https://app.example:8443/cb", [APP]),
    ("https://app.example.evil.example/cb", [APP]),
    ("http://app.example/cb", [APP]),
    ("https://app.example/cb ", [APP]),
    (" https://app.example/cb", [APP]),
    ("https://app.example/cb\n", [APP]),
    ("", [APP]),
    ("/cb", [APP]),
    (APP, []),
], ids=["trailing-slash", "prefix", "upper-scheme", "mixed-scheme", "upper-host", "upper-path", "extra-query",
        "empty-query", "empty-fragment", "fragment", "changed-query-value", "missing-query", "dot-dot",
        "encoded-dot-dot", "encoded-dot-dot-upper", "encoded-char", "double-slash", "userinfo-evil-host",
        "userinfo", "default-port", "other-port", "suffix-host", "http-downgrade", "trailing-space",
        "leading-space", "trailing-newline", "empty", "relative", "nothing-registered"])
def test_matches_is_false_when_requested_differs_from_every_registered_uri(
        requested: str, registered: list[str]) -> None:
    assert matches(requested, registered) is False


@pytest.mark.parametrize(("requested", "registered"), [
    ("http://127.0.0.1:51004/cb", [LOOPBACK_V4]),
    ("http://127.0.0.1:1/cb", [LOOPBACK_V4]),
    ("http://127.0.0.1:65535/cb", [LOOPBACK_V4]),
    ("http://127.0.0.1/cb", ["http://127.0.0.1:8080/cb"]),
    ("http://127.0.0.1:51004/cb", ["http://127.0.0.1:8080/cb"]),
    ("http://[::1]:5000/cb", [LOOPBACK_V6]),
    ("http://[::1]/cb", ["http://[::1]:8080/cb"]),
    ("http://[::1]:5000/cb", [LOOPBACK_V4, LOOPBACK_V6]),
    ("http://127.0.0.1:51004/cb?x=1", ["http://127.0.0.1/cb?x=1"]),
    ("http://127.0.0.1:51004", ["http://127.0.0.1"]),
], ids=["v4-any-port", "v4-port-1", "v4-port-65535", "v4-registered-port-dropped", "v4-registered-port-changed",
        "v6-any-port", "v6-registered-port-dropped", "v6-among-two", "v4-same-query", "v4-no-path"])
def test_matches_is_true_when_loopback_uri_differs_only_in_port(requested: str, registered: list[str]) -> None:
    assert matches(requested, registered) is True


@pytest.mark.parametrize(("requested", "registered"), [
    ("http://localhost:51004/cb", [LOOPBACK_V4]),
    ("http://LOCALHOST:51004/cb", [LOOPBACK_V4]),
    ("http://localhost/cb", [LOOPBACK_V4]),
    ("http://127.000.000.001:51004/cb", [LOOPBACK_V4]),
    ("http://127.1:51004/cb", [LOOPBACK_V4]),
    ("http://2130706433:51004/cb", [LOOPBACK_V4]),
    ("http://127.0.0.2:51004/cb", [LOOPBACK_V4]),
    ("http://127.0.0.1:51004/x/../cb", [LOOPBACK_V4]),
    ("http://127.0.0.1:51004/x/%2e%2e/cb", [LOOPBACK_V4]),
    ("http://127.0.0.1:51004/cb/", [LOOPBACK_V4]),
    ("http://127.0.0.1:51004/CB", [LOOPBACK_V4]),
    ("http://127.0.0.1:51004/cb?x=1", [LOOPBACK_V4]),
    ("http://127.0.0.1:51004/cb?", [LOOPBACK_V4]),
    ("http://127.0.0.1:51004/cb#", [LOOPBACK_V4]),
    ("http://127.0.0.1:51004/cb#x", [LOOPBACK_V4]),
    ("https://127.0.0.1:51004/cb", [LOOPBACK_V4]),
    ("HTTP://127.0.0.1:51004/cb", [LOOPBACK_V4]),
    ("http://127.0.0.1:51004/cb", ["HTTP://127.0.0.1/cb"]),
    ("http://user@127.0.0.1:51004/cb", [LOOPBACK_V4]),
    ("http://127.0.0.1:51004@evil.example/cb", [LOOPBACK_V4]),
    ("http://127.0.0.1@evil.example/cb", [LOOPBACK_V4]),
    ("http://[::1]:5000@evil.example/cb", [LOOPBACK_V6]),
    ("http://[::1]@evil.example/cb", [LOOPBACK_V6]),
    ("http://127.0.0.1.evil.example:51004/cb", [LOOPBACK_V4]),
    ("http://127.0.0.1:99999/cb", [LOOPBACK_V4]),
    ("http://127.0.0.1:51004x/cb", [LOOPBACK_V4]),
    ("http://127.0.0.1:51004/cb", ["http://127.0.0.1/other"]),
    ("http://[::1]:5000/cb", [LOOPBACK_V4]),
    ("http://127.0.0.1:5000/cb", [LOOPBACK_V6]),
    ("http://[0:0:0:0:0:0:0:1]:5000/cb", [LOOPBACK_V6]),
    ("http://[::ffff:127.0.0.1]:5000/cb", [LOOPBACK_V4]),
    ("http://app.example:5000/cb", ["http://app.example/cb"]),
], ids=["localhost", "localhost-upper", "localhost-no-port", "zero-padded-v4", "short-v4", "integer-v4",
        "other-loopback-address", "dot-dot", "encoded-dot-dot", "trailing-slash", "upper-path", "extra-query",
        "empty-query", "empty-fragment", "fragment", "https", "upper-scheme", "upper-scheme-registered",
        "userinfo", "port-then-userinfo", "loopback-as-userinfo", "v6-port-then-userinfo",
        "v6-as-userinfo", "suffix-host", "port-out-of-range", "port-not-a-number", "other-path",
        "v6-when-only-v4-registered", "v4-when-only-v6-registered", "v6-uncompressed", "v4-mapped-v6",
        "non-loopback-http"])
def test_matches_is_false_when_loopback_uri_differs_in_more_than_port(requested: str, registered: list[str]) -> None:
    assert matches(requested, registered) is False


@pytest.mark.parametrize("uri", [
    APP,
    "https://app.example/cb?client=1",
    "https://app.example:8443/cb",
    LOOPBACK_V4,
    "http://127.0.0.1:8080/cb",
    LOOPBACK_V6,
    "http://[::1]:8080/cb",
    "com.example.app:/oauth2redirect",
    "com.example.app:/cb?client=1",
    "app.example.mobile:/",
])
def test_validate_registration_returns_uri_when_it_is_acceptable(uri: str) -> None:
    assert validate_registration(uri) == uri


@pytest.mark.parametrize("uri", [
    "https://app.example/cb#x",
    "https://app.example/cb#",
    "https://user@app.example/cb",
    "https://user:pw@app.example/cb",
    "http://user@127.0.0.1/cb",
    "http://127.0.0.1:80@evil.example/cb",
    "http://app.example/cb",
    "HTTP://app.example/cb",
    "http://localhost/cb",
    "http://localhost:8080/cb",
    "http://127.000.000.001/cb",
    "/cb",
    "cb",
    "//app.example/cb",
    "app.example/cb",
    "",
    "https://app.example/c b",
    "https://app.example/cb\n",
    "https://app.example/c\"b",
    "https://app.example/cé",
    "https://app.example:99999/cb",
    "http://127.0.0.1:99999/cb",
    "com.example.app:cb",
    "Com.Example.App:/cb",
    "exampleapp:/cb",
    "com.example.app:/cb#x",
    "javascript:/alert(1)",
    "javascript://x%0aalert(1)",
    "data://text/html,x",
    "file:/etc/passwd",
], ids=["fragment", "empty-fragment", "userinfo", "userinfo-password", "loopback-userinfo",
        "loopback-port-userinfo", "http-off-loopback", "upper-http-off-loopback", "localhost",
        "localhost-port", "zero-padded-v4", "relative-path", "relative-name", "scheme-relative", "no-scheme",
        "empty", "space", "newline", "quote", "non-ascii", "bad-port", "loopback-bad-port",
        "private-use-no-slash", "private-use-upper-case", "private-use-no-dot", "private-use-fragment",
        "javascript", "javascript-authority", "data", "file"])
def test_validate_registration_raises_when_uri_may_not_be_registered(uri: str) -> None:
    with pytest.raises(RedirectUriError):
        validate_registration(uri)


@pytest.mark.parametrize(("uri", "expected"), [
    (LOOPBACK_V4, True),
    ("http://127.0.0.1:51004/cb", True),
    (LOOPBACK_V6, True),
    ("http://[::1]:5000", True),
    ("http://localhost/cb", False),
    ("https://127.0.0.1/cb", False),
    ("HTTP://127.0.0.1/cb", False),
    ("http://127.0.0.1:51004@evil.example/cb", False),
    ("http://[::1]@evil.example/cb", False),
    ("http://user@127.0.0.1/cb", False),
    ("http://127.0.0.1:99999/cb", False),
    ("http://127.0.0.1.evil.example/cb", False),
], ids=["v4", "v4-port", "v6", "v6-port-no-path", "localhost", "https", "upper-scheme", "port-then-userinfo",
        "v6-as-userinfo", "userinfo", "bad-port", "suffix-host"])
def test_is_loopback_is_true_only_when_uri_is_http_to_a_literal_loopback_address(uri: str, expected: bool) -> None:
    assert redirect_uri.is_loopback(uri) is expected


# --- properties -------------------------------------------------------------------------------------------

schemes = st.sampled_from(["http", "https", "HTTP", "Http", "com.example.app", ""])
hosts = st.sampled_from([
    "127.0.0.1", "[::1]", "localhost", "LOCALHOST", "app.example", "APP.example", "127.000.000.001", "127.1",
    "2130706433", "[::ffff:127.0.0.1]", "127.0.0.1.evil.example", "evil.example", "user@127.0.0.1",
    "127.0.0.1:80@evil.example", "127.0.0.1@evil.example", "[::1]@evil.example", "[::1]:80@evil.example", "",
])
ports = st.one_of(st.just(""), st.just(":"), st.integers(0, 70000).map(lambda p: f":{p}"))
tails = st.text(alphabet="/abcC.%2e?#=&@:\\ \t\n", max_size=12)
uris = st.one_of(
    st.builds(lambda scheme, host, port, tail: f"{scheme}://{host}{port}{tail}", schemes, hosts, ports, tails),
    st.text(max_size=40),
)
registered_lists = st.lists(st.one_of(uris, st.sampled_from([APP, LOOPBACK_V4, LOOPBACK_V6])), max_size=4)


def goes_to_loopback(uri: str) -> bool:
    """Where a client would really send the browser: plain http to 127.0.0.1 or ::1."""
    try:
        host = urlsplit(uri).hostname
    except ValueError:
        return False
    return uri.startswith("http://") and host in ("127.0.0.1", "::1")


@given(uris, registered_lists)
def test_matches_is_false_when_non_loopback_uri_differs_from_every_registered_uri(
        requested: str, registered: list[str]) -> None:
    assume(requested not in registered and not goes_to_loopback(requested))
    assert matches(requested, registered) is False


@given(uris, registered_lists)
def test_matches_is_true_when_uri_is_registered(requested: str, registered: list[str]) -> None:
    assert matches(requested, [*registered, requested]) is True


@given(st.sampled_from([LOOPBACK_V4, LOOPBACK_V6, "http://127.0.0.1/cb?x=1", "http://[::1]"]),
       st.integers(1, 65535))
def test_matches_is_true_when_loopback_request_adds_any_valid_port(registered: str, port: int) -> None:
    host_end = registered.index("]") + 1 if "[" in registered else len("http://127.0.0.1")
    requested = f"{registered[:host_end]}:{port}{registered[host_end:]}"
    assert matches(requested, [registered]) is True
