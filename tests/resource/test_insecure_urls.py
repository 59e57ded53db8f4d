"""The guard fetches from and trusts only https URLs, or http on a loopback host (issue #12 §2.13; RFC 8414 §2,
RFC 9068 §4 relies on the JWKS being authentic): an http issuer, ``jwks_uri`` or introspection endpoint on any
other host is a configuration error at construction, a discovered http ``jwks_uri`` is refused (and never
fetched) unless on loopback, and an https issuer may not send the guard to an http ``jwks_uri`` at all.
``allow_http=True`` (the name ``tokenward.client`` uses) lifts these checks for tests and development."""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.resource.jwt_kit import AUDIENCE, KeyRing, claims_for, http_server
from tokenward.resource import IntrospectionVerifier, JwtVerifier
from tokenward.resource.discovery import DiscoveryError, InsecureUrlError, check_metadata
from tokenward.resource.jwks import JwksCache

REMOTE_HTTP = ["http://auth.example.com", "http://auth.example.com/tenant", "http://10.0.0.8:8000",
               "http://[2001:db8::1]", "http://localhost.example.com", "http://128.0.0.1"]
LOOPBACK_HTTP = ["http://127.0.0.1:8000", "http://127.9.8.7", "http://[::1]:8000", "http://localhost:8000",
                 "http://LOCALHOST"]


@pytest.mark.parametrize("issuer", REMOTE_HTTP)
def test_jwt_verifier_refuses_an_http_issuer_when_the_host_is_not_loopback(issuer: str) -> None:
    with pytest.raises(InsecureUrlError, match="issuer must use https"):
        JwtVerifier(issuer=issuer, audience=AUDIENCE)


@pytest.mark.parametrize("jwks_uri", [u + "/jwks.json" for u in REMOTE_HTTP])
def test_jwt_verifier_refuses_an_http_jwks_uri_when_the_host_is_not_loopback(jwks_uri: str) -> None:
    with pytest.raises(InsecureUrlError, match="jwks_uri must use https"):
        JwtVerifier(issuer="https://auth.example.com", audience=AUDIENCE, jwks_uri=jwks_uri)


@pytest.mark.parametrize("url", ["ftp://auth.example.com", "auth.example.com", "https://", "file:///etc/keys"])
def test_jwt_verifier_refuses_an_issuer_that_is_not_an_http_url_when_constructed(url: str) -> None:
    with pytest.raises(InsecureUrlError):
        JwtVerifier(issuer=url, audience=AUDIENCE)


def test_insecure_url_error_is_a_value_error_naming_the_setting_when_raised() -> None:
    with pytest.raises(ValueError, match=r"issuer must use https \(http only on a loopback host"):
        JwtVerifier(issuer="http://auth.example.com", audience=AUDIENCE)


def test_jwks_cache_refuses_an_http_uri_when_the_host_is_not_loopback() -> None:
    with pytest.raises(InsecureUrlError, match="jwks_uri must use https"):
        JwksCache("http://keys.example.com/jwks.json")


@pytest.mark.parametrize("issuer", REMOTE_HTTP)
def test_introspection_verifier_refuses_an_http_issuer_when_the_host_is_not_loopback(issuer: str) -> None:
    with pytest.raises(InsecureUrlError, match="issuer must use https"):
        IntrospectionVerifier(issuer=issuer, audience=AUDIENCE, client_id="api", client_secret="s3cret-value")


def test_introspection_verifier_refuses_an_http_endpoint_when_the_host_is_not_loopback() -> None:
    with pytest.raises(InsecureUrlError, match="introspection_endpoint must use https"):
        IntrospectionVerifier(issuer="https://auth.example.com", audience=AUDIENCE, client_id="api",
                              client_secret="s3cret-value", introspection_endpoint="http://auth.example.com/introspect")


@pytest.mark.parametrize("base", LOOPBACK_HTTP)
def test_guard_accepts_http_urls_when_the_host_is_loopback(base: str) -> None:
    JwtVerifier(issuer=base, audience=AUDIENCE)
    JwtVerifier(issuer="https://auth.example.com", audience=AUDIENCE, jwks_uri=base + "/jwks.json")
    JwksCache(base + "/jwks.json")
    IntrospectionVerifier(issuer=base, audience=AUDIENCE, client_id="api", client_secret="s3cret-value",
                          introspection_endpoint=base + "/introspect")


@pytest.mark.parametrize("base", REMOTE_HTTP)
def test_allow_http_lifts_the_check_when_a_test_or_dev_setup_asks_for_it(base: str) -> None:
    verifier = JwtVerifier(issuer=base, audience=AUDIENCE, allow_http=True)
    assert verifier.issuer == base
    JwtVerifier(issuer="https://auth.example.com", audience=AUDIENCE, jwks_uri=base + "/jwks.json", allow_http=True)
    JwksCache(base + "/jwks.json", allow_http=True)
    IntrospectionVerifier(issuer=base, audience=AUDIENCE, client_id="api", client_secret="s3cret-value",
                          introspection_endpoint=base + "/introspect", allow_http=True)


def test_guard_discovers_and_verifies_over_http_when_the_issuer_is_loopback(keys: KeyRing) -> None:
    with http_server() as http:
        http.reset({"issuer": http.url, "jwks_uri": http.url + "/jwks", "keys": [keys.es256.jwk]})
        verifier = JwtVerifier(issuer=http.url, audience=AUDIENCE)
        principal = verifier.verify_sync(keys.es256.token(claims_for(time.time(), iss=http.url)))
        assert principal.issuer == http.url
        assert http.requests == ["/.well-known/oauth-authorization-server", "/jwks"]


def test_discovered_http_jwks_uri_is_refused_and_never_fetched_when_its_host_is_not_loopback(keys: KeyRing) -> None:
    with http_server() as http:
        # a loopback issuer whose metadata points at a remote http JWKS: refused before any request to it
        http.reset({"issuer": http.url, "jwks_uri": "http://keys.example.com/jwks", "keys": [keys.es256.jwk]})
        verifier = JwtVerifier(issuer=http.url, audience=AUDIENCE)
        with pytest.raises(DiscoveryError, match="jwks_uri must use https"):
            verifier.verify_sync(keys.es256.token(claims_for(time.time(), iss=http.url)))
        assert verifier._jwks is None


def test_discovered_http_jwks_uri_is_refused_by_the_async_path_too(keys: KeyRing) -> None:
    with http_server() as http:
        http.reset({"issuer": http.url, "jwks_uri": "http://keys.example.com/jwks", "keys": [keys.es256.jwk]})
        verifier = JwtVerifier(issuer=http.url, audience=AUDIENCE)
        with pytest.raises(DiscoveryError, match="jwks_uri must use https"):
            asyncio.run(verifier.verify(keys.es256.token(claims_for(time.time(), iss=http.url))))


def test_discovered_http_introspection_endpoint_is_refused_when_its_host_is_not_loopback() -> None:
    with http_server() as http:
        http.reset({"issuer": http.url, "jwks_uri": http.url + "/jwks",
                    "introspection_endpoint": "http://auth.example.com/introspect"})
        verifier = IntrospectionVerifier(issuer=http.url, audience=AUDIENCE, client_id="api",
                                         client_secret="s3cret-value")
        with pytest.raises(DiscoveryError, match="introspection_endpoint must use https"):
            verifier.verify_sync("opaque-token")
        assert http.requests == ["/.well-known/oauth-authorization-server"]  # nothing was POSTed anywhere


@pytest.mark.parametrize("jwks_uri", ["http://keys.example.com/jwks", "http://127.0.0.1:8000/jwks",
                                      "http://localhost/jwks"])
def test_an_https_issuer_may_not_send_the_guard_to_an_http_jwks_uri_even_on_loopback(jwks_uri: str) -> None:
    """A downgrade: the metadata came over TLS, the keys would not."""
    issuer = "https://auth.example.com"
    with pytest.raises(DiscoveryError, match="jwks_uri must use https"):
        check_metadata(issuer, {"issuer": issuer, "jwks_uri": jwks_uri})
    assert check_metadata(issuer, {"issuer": issuer, "jwks_uri": jwks_uri}, allow_http=True)["jwks_uri"] == jwks_uri


def test_an_https_issuer_may_name_an_https_jwks_uri_on_another_host_when_discovered() -> None:
    issuer = "https://auth.example.com"
    document = {"issuer": issuer, "jwks_uri": "https://keys.example.net/jwks"}
    assert check_metadata(issuer, document) == document


def test_a_loopback_http_issuer_may_name_a_loopback_http_jwks_uri_when_discovered() -> None:
    issuer = "http://127.0.0.1:8000"
    document = {"issuer": issuer, "jwks_uri": "http://localhost:8000/jwks.json"}
    assert check_metadata(issuer, document) == document


def test_demo_api_refuses_an_http_issuer_when_the_host_is_not_loopback() -> None:
    from click.testing import CliRunner

    from tokenward.resource.cli import demo_api

    result = CliRunner().invoke(demo_api, ["--issuer", "http://auth.example.com", "--port", "0"])
    assert result.exit_code == 2, result.output
    assert "issuer must use https" in result.output and "Traceback" not in result.output
