"""JWT access tokens (RFC 9068): header ``typ: at+jwt`` and ``kid``; claims iss, sub, aud, exp, iat, jti,
client_id, scope."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from joserfc import jwt
from joserfc.errors import JoseError

from tokenward.protocol.scope import Scope
from tokenward.server.jws import sign_compact
from tokenward.server.keys import KeyRing


@dataclass(frozen=True, slots=True)
class MintedAccessToken:
    token: str
    jti: str
    expires_at: int

    def __repr__(self) -> str:
        return f"MintedAccessToken(jti={self.jti!r}, expires_at={self.expires_at})"


async def mint_access_token(
    keys: KeyRing, *, alg: str, issuer: str, subject: str, audience: str, client_id: str, scope: Scope,
    now: int, ttl: int, jti: str | None = None,
) -> MintedAccessToken:
    """Sign one access token. For client credentials ``sub`` is the client_id (RFC 9068 §2.2)."""
    kid, key = await keys.signing_key(alg)
    jti = jti or str(uuid.uuid4())
    claims = {
        "iss": issuer, "sub": subject, "aud": audience, "exp": now + ttl, "iat": now, "jti": jti,
        "client_id": client_id, "scope": str(scope),
    }
    token = sign_compact({"alg": alg, "typ": "at+jwt", "kid": kid}, claims, key.private_key)
    return MintedAccessToken(token=token, jti=jti, expires_at=now + ttl)


async def read_own_access_token(keys: KeyRing, token: str, issuer: str) -> dict[str, Any] | None:
    """The claims of an access token this server signed with a still-published key, else None.

    Expiry is not checked here (callers decide). Used by: revocation and introspection.
    """
    if token.count(".") != 2 or len(token) > 8192:
        return None
    try:
        decoded = jwt.decode(token, await keys.published_keys(), algorithms=["ES256", "RS256", "EdDSA"])
    except (JoseError, ValueError, TypeError, KeyError):
        return None
    if str(decoded.header.get("typ", "")).lower() != "at+jwt" or decoded.claims.get("iss") != issuer:
        return None
    claims = dict(decoded.claims)
    if not isinstance(claims.get("jti"), str) or not isinstance(claims.get("exp"), int):
        return None
    return claims
