"""Authorization server metadata (RFC 8414 §2) and OpenID Provider metadata (OIDC Discovery 1.0 §3), built
from the issuer alone so URLs never come from Host. The OpenID document is the RFC 8414 one plus OIDC
members, so the two never disagree on what they share (Discovery §4.3 / RFC 8414 §3.3)."""

from __future__ import annotations

from typing import Any

from .oidc import PROMPT_VALUES, RESPONSE_MODES, STANDARD_CLAIMS
from .types import ClientAuthMethod, GrantType

# Claims an ID token may carry besides the user's own (OIDC Core §2), for ``claims_supported``.
ID_TOKEN_CLAIMS = ("iss", "aud", "exp", "iat", "auth_time", "nonce", "acr", "amr", "azp", "at_hash", "sid")


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
        "response_modes_supported": list(RESPONSE_MODES),
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


def openid_provider_metadata(issuer: str, *, scopes: list[str], signing_algs: list[str],
                             id_token_signing_algs: list[str]) -> dict[str, Any]:
    """OIDC Discovery 1.0 §3: the RFC 8414 document plus the OpenID Provider members. Userinfo answers
    plain JSON only, so ``userinfo_signing_alg_values_supported`` is left out; ``request`` and
    ``request_uri`` are refused (Core §6), the ``claims`` parameter is honoured (Core §5.5)."""
    base = issuer.rstrip("/")
    return {
        **authorization_server_metadata(issuer, scopes=scopes, signing_algs=signing_algs),
        "userinfo_endpoint": f"{base}/userinfo",
        "end_session_endpoint": f"{base}/end_session",
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": id_token_signing_algs,
        "claims_supported": list(dict.fromkeys((*STANDARD_CLAIMS, *ID_TOKEN_CLAIMS))),
        "claims_parameter_supported": True,
        "request_parameter_supported": False,
        "request_uri_parameter_supported": False,
        "prompt_values_supported": list(PROMPT_VALUES),
    }
