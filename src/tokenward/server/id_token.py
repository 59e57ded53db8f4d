"""ID tokens (OIDC Core 1.0 §2, §3.1.3.6, §12.2): minted at the token endpoint, read back as ``id_token_hint``.

Signed like access tokens (server/jws.py, a ``kid`` in the header) but RS256 by default, the algorithm every
relying party must support (Core §15.1); ``typ`` is ``JWT`` so no resource server takes one for an access
token (RFC 9068 requires ``at+jwt`` there).
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

from joserfc import jwt
from joserfc.errors import JoseError

from tokenward.server.jws import sign_compact
from tokenward.server.keys import KeyRing

ID_TOKEN_ALGS = ("RS256", "ES256", "EdDSA")


def at_hash(access_token: str, alg: str) -> str:
    """§3.1.3.6: the left half of the hash of the access token's ASCII octets, base64url; the hash is the
    one of the signature algorithm (SHA-256 for RS256/ES256/PS256, SHA-512 for EdDSA with Ed25519)."""
    digest = hashlib.sha512 if alg == "EdDSA" else hashlib.sha256
    value = digest(access_token.encode("ascii")).digest()
    return base64.urlsafe_b64encode(value[: len(value) // 2]).rstrip(b"=").decode("ascii")


async def mint_id_token(
    keys: KeyRing, *, alg: str, issuer: str, subject: str, client_id: str, now: int, ttl: int,
    auth_time: int | None, nonce: str | None, sid: str | None, access_token: str | None,
    extra: dict[str, Any] | None = None,
) -> str:
    """One signed ID token. ``extra`` (claims the ``claims`` request asked for in the ID token) never
    replaces a protocol claim."""
    kid, key = await keys.signing_key(alg)
    claims: dict[str, Any] = dict(extra or {})
    claims.update({"iss": issuer, "sub": subject, "aud": client_id, "exp": now + ttl, "iat": now,
                   "amr": ["pwd"]})
    if auth_time is not None:
        claims["auth_time"] = auth_time
    if nonce is not None:
        claims["nonce"] = nonce
    if sid is not None:
        claims["sid"] = sid
    if access_token is not None:
        claims["at_hash"] = at_hash(access_token, alg)
    return sign_compact({"alg": alg, "typ": "JWT", "kid": kid}, claims, key.private_key)


async def read_own_id_token(keys: KeyRing, token: str, issuer: str) -> dict[str, Any] | None:
    """The claims of an ID token this server signed with a still-published key, expired or not (Core
    §3.1.2.1 ``id_token_hint``); None for anything else: a tampered, foreign or malformed token, or an
    access token."""
    if token.count(".") != 2 or len(token) > 8192:
        return None
    try:
        decoded = jwt.decode(token, await keys.published_keys(), algorithms=list(ID_TOKEN_ALGS))
    except (JoseError, ValueError, TypeError, KeyError):
        return None
    claims = dict(decoded.claims)
    if str(decoded.header.get("typ", "JWT")).lower() != "jwt" or claims.get("iss") != issuer:
        return None
    if not isinstance(claims.get("sub"), str) or "client_id" in claims or "scope" in claims:
        return None
    return claims
