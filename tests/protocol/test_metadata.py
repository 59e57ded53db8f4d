"""Authorization server metadata (RFC 8414 §2; RFC 9207; RFC 9700 §2.1.1; OAuth 2.1 drops implicit and password)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tokenward.protocol.metadata import authorization_server_metadata, openid_provider_metadata
from tokenward.protocol.types import ClientAuthMethod, GrantType

ISSUER = "https://auth.example"


def metadata(issuer: str = ISSUER) -> dict[str, Any]:
    return authorization_server_metadata(issuer, scopes=["profile", "read"], signing_algs=["ES256", "RS256"])


@pytest.mark.parametrize("field", ["issuer", "authorization_endpoint", "token_endpoint", "response_types_supported"])
def test_metadata_has_required_rfc_8414_field_when_built(field: str) -> None:
    assert metadata()[field]


def test_metadata_publishes_jwks_uri_when_built() -> None:
    assert metadata()["jwks_uri"] == f"{ISSUER}/jwks.json"


@pytest.mark.parametrize(("field", "path"), [
    ("authorization_endpoint", "/authorize"),
    ("token_endpoint", "/token"),
    ("jwks_uri", "/jwks.json"),
    ("revocation_endpoint", "/revoke"),
    ("introspection_endpoint", "/introspect"),
    ("device_authorization_endpoint", "/device_authorization"),
])
@pytest.mark.parametrize("issuer", [ISSUER, "https://auth.example/tenant", "https://auth.example/"])
def test_endpoint_urls_derive_from_issuer_when_built(field: str, path: str, issuer: str) -> None:
    assert metadata(issuer)[field] == issuer.rstrip("/") + path


@pytest.mark.parametrize("issuer", [ISSUER, "https://auth.example/", "https://auth.example/tenant"])
def test_issuer_is_echoed_exactly_when_built(issuer: str) -> None:
    assert metadata(issuer)["issuer"] == issuer


def test_code_challenge_methods_supported_is_only_s256_when_built() -> None:
    assert metadata()["code_challenge_methods_supported"] == ["S256"]


def test_iss_parameter_is_advertised_when_built() -> None:
    assert metadata()["authorization_response_iss_parameter_supported"] is True


def test_only_the_code_response_type_is_offered_when_built() -> None:
    assert metadata()["response_types_supported"] == ["code"]
    assert metadata()["response_modes_supported"] == ["query", "form_post"]  # OAuth 2.0 Form Post §2


@pytest.mark.parametrize("grant", ["implicit", "password", "token"])
def test_grant_is_not_offered_when_removed_by_oauth_2_1(grant: str) -> None:
    assert grant not in metadata()["grant_types_supported"]


def test_grant_types_are_exactly_the_supported_ones_when_built() -> None:
    assert metadata()["grant_types_supported"] == [g.value for g in GrantType]
    assert set(metadata()["grant_types_supported"]) == {
        "authorization_code", "refresh_token", "client_credentials", "urn:ietf:params:oauth:grant-type:device_code"}


def test_auth_methods_are_wire_names_when_built() -> None:
    assert metadata()["token_endpoint_auth_methods_supported"] == [
        "client_secret_basic", "client_secret_post", "none"]
    assert "none" not in metadata()["introspection_endpoint_auth_methods_supported"]
    assert set(metadata()["revocation_endpoint_auth_methods_supported"]) == {
        m.value for m in ClientAuthMethod}


def test_scopes_and_algorithms_are_passed_through_when_built() -> None:
    doc = metadata()
    assert doc["scopes_supported"] == ["profile", "read"]
    assert doc["access_token_signing_alg_values_supported"] == ["ES256", "RS256"]


def test_document_is_plain_json_when_serialised() -> None:
    doc = metadata()
    assert json.loads(json.dumps(doc)) == doc


def provider(issuer: str = ISSUER) -> dict[str, Any]:
    return openid_provider_metadata(issuer, scopes=["openid", "profile", "read"], signing_algs=["ES256", "RS256"],
                                    id_token_signing_algs=["RS256", "ES256", "EdDSA"])


@pytest.mark.parametrize("issuer", [ISSUER, "https://auth.example/tenant", "https://auth.example/"])
def test_openid_document_repeats_every_rfc_8414_member_exactly_when_built(issuer: str) -> None:
    oauth, oidc = authorization_server_metadata(issuer, scopes=["openid", "profile", "read"],
                                                signing_algs=["ES256", "RS256"]), provider(issuer)
    assert {k: oidc[k] for k in oauth} == oauth


@pytest.mark.parametrize(("field", "value"), [
    ("userinfo_endpoint", f"{ISSUER}/userinfo"),
    ("end_session_endpoint", f"{ISSUER}/end_session"),
    ("subject_types_supported", ["public"]),
    ("claims_parameter_supported", True),
    ("request_parameter_supported", False),
    ("request_uri_parameter_supported", False),
    ("prompt_values_supported", ["none", "login", "consent", "select_account"]),
    ("response_modes_supported", ["query", "form_post"]),
])
def test_openid_document_has_discovery_member_when_built(field: str, value: object) -> None:
    assert provider()[field] == value


def test_openid_document_offers_rs256_first_and_no_userinfo_signing_when_built() -> None:
    doc = provider()
    assert doc["id_token_signing_alg_values_supported"][0] == "RS256"  # Discovery §3: RS256 MUST be included
    assert "userinfo_signing_alg_values_supported" not in doc  # userinfo answers plain JSON only


def test_openid_document_lists_standard_and_id_token_claims_when_built() -> None:
    claims = provider()["claims_supported"]
    for name in ("sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "name", "email", "email_verified",
                 "address", "phone_number", "preferred_username", "updated_at"):
        assert name in claims
    assert len(claims) == len(set(claims))
