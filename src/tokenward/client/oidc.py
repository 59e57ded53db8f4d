"""OpenID Connect for the client, sans-IO: the nonce, ID-token validation, userinfo and RP-initiated logout.

Core 1.0 §3.1.3.7 lists what a relying party must check of an ID token; each check here raises a typed
``IdTokenError`` so the login stores nothing on failure. Keys come from the provider's discovered ``jwks_uri``
and only asymmetric algorithms are accepted (never ``none``, never HMAC: a public client has no secret, and a
JWKS-published key must not double as an HMAC secret). Used by ``loopback.py`` (login), ``auth.py``
(refreshed ID tokens, §12.2) and ``cli.py`` (``whoami``, ``logout``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode, urlsplit

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from tokenward.client.discovery import ServerMetadata
from tokenward.client.errors import _CONTROL, IdTokenError, UserInfoError, server_text
from tokenward.client.flow import HttpRequest, HttpResponse

ASYMMETRIC_ALGS = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512",
                             "EdDSA"})
LEEWAY = 60.0  # seconds of clock skew tolerated on exp and iat
MAX_ID_TOKEN = 16384


def is_openid(scope: str | None) -> bool:
    return scope is not None and "openid" in scope.split()


def new_nonce() -> str:
    """256 random bits (Core §15.5.2 asks for enough entropy that it cannot be guessed)."""
    return secrets.token_urlsafe(32)


def login_scope(scope: str | None, metadata: ServerMetadata) -> str | None:
    """The scope a login asks for: with ``openid``, ``offline_access`` is added when the provider lists it in
    ``scopes_supported``, since Core §11 gives an OIDC request a refresh token only for that scope."""
    if not is_openid(scope):
        return scope
    assert scope is not None
    parts = scope.split()
    supported = metadata.document.get("scopes_supported")
    if "offline_access" not in parts and isinstance(supported, list) and "offline_access" in supported:
        parts.append("offline_access")
    return " ".join(parts)


def id_token_algorithms(metadata: ServerMetadata) -> list[str]:
    """The provider's ``id_token_signing_alg_values_supported`` that are asymmetric; RS256 when it lists none
    (Core §3.1.3.7 step 7: RS256 is the default)."""
    listed = metadata.document.get("id_token_signing_alg_values_supported")
    if isinstance(listed, list):
        algs = [a for a in listed if isinstance(a, str) and a in ASYMMETRIC_ALGS]
        if algs:
            return algs
        raise IdTokenError("signature", "the provider signs ID tokens with no asymmetric algorithm")
    return ["RS256"]


def jwks_request(metadata: ServerMetadata) -> HttpRequest:
    if metadata.jwks_uri is None:
        raise IdTokenError("jwks", "the provider's metadata has no jwks_uri")
    return HttpRequest("GET", metadata.jwks_uri, {"Accept": "application/json"})


def parse_jwks(response: HttpResponse) -> KeySet:
    if response.status != 200:
        raise IdTokenError("jwks", f"the provider's JWKS answered {response.status}")
    try:
        data = json.loads(response.body)
        keys = [k for k in data["keys"] if isinstance(k, dict) and k.get("kty") != "oct"]
        return KeySet.import_key_set({"keys": keys})
    except (ValueError, KeyError, TypeError, JoseError):
        raise IdTokenError("jwks", "the provider's JWKS is not a readable key set") from None


def at_hash(access_token: str, alg: str) -> str:
    """Core §3.1.3.6: left half of the hash of the access token (the hash of the signing algorithm; SHA-512 for
    EdDSA with Ed25519)."""
    bits = "512" if alg == "EdDSA" else alg[-3:]
    digest = hashlib.new({"256": "sha256", "384": "sha384", "512": "sha512"}[bits], access_token.encode("ascii"))
    value = digest.digest()
    return base64.urlsafe_b64encode(value[: len(value) // 2]).rstrip(b"=").decode("ascii")


def validate_id_token(id_token: str, keys: KeySet, *, issuer: str, client_id: str, algorithms: list[str],
                      now: float, nonce: str | None = None, access_token: str | None = None,
                      leeway: float = LEEWAY) -> dict[str, Any]:
    """The claims of ``id_token`` after every check of Core §3.1.3.7, or ``IdTokenError``.

    ``nonce`` is the one this login sent (None on refresh, where §12.2 says none is expected); ``access_token``
    the one issued with it, checked against ``at_hash`` when the token carries one.
    """
    if not isinstance(id_token, str) or id_token.count(".") != 2 or len(id_token) > MAX_ID_TOKEN:
        raise IdTokenError("malformed", "not a compact JWS")
    allowed = [a for a in algorithms if a in ASYMMETRIC_ALGS]
    try:
        decoded = jwt.decode(id_token, keys, algorithms=allowed)
    except (JoseError, ValueError, TypeError, KeyError):
        raise IdTokenError("signature", "the signature does not verify with the provider's keys") from None
    claims = dict(decoded.claims)
    alg = str(decoded.header.get("alg"))
    if claims.get("iss") != issuer:
        raise IdTokenError("issuer", "it was issued by another issuer")
    if not isinstance(claims.get("sub"), str) or not claims["sub"]:
        raise IdTokenError("malformed", "it has no sub")
    aud = claims.get("aud")
    audiences = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
    if client_id not in audiences:
        raise IdTokenError("audience", "it was issued to another client")
    azp = claims.get("azp")
    if (len(audiences) > 1 or azp is not None) and azp != client_id:
        raise IdTokenError("azp", "its authorized party is another client")
    exp, iat = claims.get("exp"), claims.get("iat")
    if not isinstance(exp, int | float) or isinstance(exp, bool) or now > exp + leeway:
        raise IdTokenError("expired", "it has expired")
    if not isinstance(iat, int | float) or isinstance(iat, bool) or iat > now + leeway:
        raise IdTokenError("iat", "its issue time is missing or in the future")
    got = claims.get("nonce")
    if nonce is not None and (not isinstance(got, str) or not hmac.compare_digest(got.encode(), nonce.encode())):
        raise IdTokenError("nonce", "it does not carry this login's nonce")
    if access_token is not None and "at_hash" in claims:
        expected = at_hash(access_token, alg)
        if not isinstance(claims["at_hash"], str) or not hmac.compare_digest(claims["at_hash"], expected):
            raise IdTokenError("at_hash", "it was not issued with this access token")
    return claims


def check_refreshed(new: Mapping[str, Any], old: Mapping[str, Any]) -> None:
    """Core §12.2: a refreshed ID token keeps ``iss``, ``sub`` and ``aud`` (and ``auth_time`` when both have
    one) of the one the login got."""
    for name in ("iss", "sub", "aud"):
        if new.get(name) != old.get(name):
            raise IdTokenError("refresh_mismatch", f"its {name} differs from the login's ID token")
    if "auth_time" in new and "auth_time" in old and new["auth_time"] != old["auth_time"]:
        raise IdTokenError("refresh_mismatch", "its auth_time differs from the login's ID token")


# ------------------------------------------------------------------ userinfo (Core §5.3)

def userinfo_request(endpoint: str, access_token: str) -> HttpRequest:
    """GET with the bearer token in the header (RFC 6750 §2.1, Core §5.3.1)."""
    return HttpRequest("GET", endpoint, {"Authorization": f"Bearer {access_token}", "Accept": "application/json"})


def parse_userinfo(response: HttpResponse, expected_sub: str | None) -> dict[str, Any]:
    """The userinfo claims; Core §5.3.2: their ``sub`` must be the ID token's (else they are another user's)."""
    if response.status != 200:
        challenge = server_text(response.headers.get("www-authenticate", ""))
        raise UserInfoError(f"the userinfo endpoint answered {response.status}" +
                            (f" ({challenge})" if challenge else ""))
    if response.headers.get("content-type", "").split(";")[0].strip() == "application/jwt":
        raise UserInfoError("signed userinfo responses are not supported")
    try:
        claims = json.loads(response.body)
    except ValueError:
        raise UserInfoError("the userinfo answer is not JSON") from None
    if not isinstance(claims, dict) or not isinstance(claims.get("sub"), str):
        raise UserInfoError("the userinfo answer has no sub")
    if expected_sub is not None and claims["sub"] != expected_sub:
        raise UserInfoError("the userinfo answer is about another user than the ID token")
    return claims


# ------------------------------------------------------------------ RP-initiated logout 1.0 §2

def end_session_url(endpoint: str, *, client_id: str, id_token: str | None = None,
                    post_logout_redirect_uri: str | None = None, state: str | None = None) -> str:
    params = {"client_id": client_id}
    if id_token:
        params["id_token_hint"] = id_token
    if post_logout_redirect_uri:
        params["post_logout_redirect_uri"] = post_logout_redirect_uri
    if state:
        params["state"] = state
    separator = "&" if urlsplit(endpoint).query else "?"
    return f"{endpoint}{separator}{urlencode(params)}"


def who(claims: Mapping[str, Any]) -> str:
    """A one-line description of the signed-in user for status lines: sub and the friendly claims present
    (verified claims, not secrets; control characters removed)."""
    parts = [f"sub {_CONTROL.sub(' ', str(claims.get('sub')))[:200]}"]
    for name in ("preferred_username", "email", "name"):
        value = claims.get(name)
        if isinstance(value, str) and value:
            parts.append(f"{name} {_CONTROL.sub(' ', value)[:200]}")
    return ", ".join(parts)
