"""Authorization server metadata (RFC 8414 §2), built from the issuer alone so URLs never come from Host."""

from __future__ import annotations

from typing import Any

from .types import ClientAuthMethod, GrantType


def authorization_server_metadata(issuer: str, *, scopes: list[str], signing_algs: list[str]) -> dict[str, Any]:
    base = issuer.rstrip("/")
    return {
        "issuer": issuer,
        "authorization_endpoint": f"{base}/authorize",
        "token_endpoint": f"{base}/token",
        "jwks_uri": f"{base}/jwks.json",
        "revocation_endpoint": f"{base}/revoke",
        "introspection_endpoint": f"{base}/introspect",
        "device_authorization_endpoint": f"{base}/device_authorization",  # RFC 8628 §4
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": [g.value for g in GrantType],
        "token_endpoint_auth_methods_supported": [m.value for m in ClientAuthMethod],
        "revocation_endpoint_auth_methods_supported": [m.value for m in ClientAuthMethod],
        "introspection_endpoint_auth_methods_supported": [
            ClientAuthMethod.CLIENT_SECRET_BASIC.value, ClientAuthMethod.CLIENT_SECRET_POST.value],
        "code_challenge_methods_supported": ["S256"],
        "authorization_response_iss_parameter_supported": True,
        "scopes_supported": scopes,
        "access_token_signing_alg_values_supported": signing_algs,
    }
