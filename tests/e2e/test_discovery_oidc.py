"""OpenID Provider discovery against a real server (OIDC Discovery 1.0 §4; issue #13 Part 2): both metadata
documents come from one source and agree on every RFC 8414 member."""

from __future__ import annotations

import httpx2

from tests.support import ServerProcess


def test_openid_configuration_is_served_with_the_oidc_members(server: ServerProcess) -> None:
    r = httpx2.get(server.base_url + "/.well-known/openid-configuration")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    doc = r.json()
    # §4.3: the issuer is exactly the URL the document was fetched from, minus the well-known suffix.
    assert doc["issuer"] == server.base_url
    assert doc["userinfo_endpoint"] == server.base_url + "/userinfo"
    assert doc["end_session_endpoint"] == server.base_url + "/end_session"
    assert doc["subject_types_supported"] == ["public"]
    assert doc["id_token_signing_alg_values_supported"] == ["RS256", "ES256", "EdDSA"]
    assert {"openid", "profile", "email", "address", "phone", "offline_access", "profile:read",
            "profile:write"} <= set(doc["scopes_supported"])
    assert doc["scopes_supported"][0] == "openid"
    assert doc["response_modes_supported"] == ["query", "form_post"]
    assert doc["claims_parameter_supported"] is True
    assert doc["request_parameter_supported"] is False and doc["request_uri_parameter_supported"] is False
    assert "none" in doc["prompt_values_supported"] and "sub" in doc["claims_supported"]
    assert "userinfo_signing_alg_values_supported" not in doc


def test_every_rfc_8414_member_is_identical_in_both_documents(server: ServerProcess) -> None:
    oauth = server.metadata()
    oidc = httpx2.get(server.base_url + "/.well-known/openid-configuration").json()
    assert {k: oidc[k] for k in oauth} == oauth
    assert "userinfo_endpoint" not in oauth and "end_session_endpoint" not in oauth
    assert oauth["response_modes_supported"] == ["query", "form_post"]


def test_the_advertised_userinfo_endpoint_answers(server: ServerProcess) -> None:
    oidc = httpx2.get(server.base_url + "/.well-known/openid-configuration").json()
    r = httpx2.get(oidc["userinfo_endpoint"])
    assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")
