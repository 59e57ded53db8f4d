"""What every grant shares: its context, its response (RFC 6749 §5.1), and token issuance."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from tokenward.protocol import oidc
from tokenward.protocol.errors import InvalidTargetError
from tokenward.protocol.scope import Scope
from tokenward.protocol.types import GrantType
from tokenward.server.crypto import SecretBox, random_token, token_hash
from tokenward.server.id_token import mint_id_token
from tokenward.server.jwt_access_token import mint_access_token
from tokenward.server.keys import KeyRing
from tokenward.server.model import AccessTokenRecord, Client, Grant, RefreshToken
from tokenward.server.settings import Settings
from tokenward.server.store.protocols import Store, Transaction

REFRESH_TOKEN_PREFIX = "tw_rt_"
AUTHORIZATION_CODE_PREFIX = "tw_ac_"
CLIENT_SECRET_PREFIX = "tw_cs_"


@dataclass(frozen=True, slots=True)
class GrantContext:
    """What a grant may use. Each grant opens the transaction it needs (client credentials: none)."""

    settings: Settings
    keys: KeyRing
    box: SecretBox  # seals what must be recoverable for a short while (the grace-window successor)
    store: Store
    now: int


@dataclass(frozen=True, slots=True)
class TokenResponse:
    """A successful token response; tokens never appear in its repr."""

    access_token: str = field(repr=False)
    expires_in: int
    scope: Scope
    refresh_token: str | None = field(default=None, repr=False)
    subject: str | None = field(default=None, compare=False)  # for audit events; not sent
    id_token: str | None = field(default=None, repr=False)  # OIDC Core §3.1.3.3

    def to_wire(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "access_token": self.access_token, "token_type": "Bearer", "expires_in": self.expires_in,
            "scope": str(self.scope),
        }
        if self.refresh_token is not None:
            body["refresh_token"] = self.refresh_token
        if self.id_token is not None:
            body["id_token"] = self.id_token
        return body


GrantHandler = Callable[[GrantContext, Client, dict[str, str]], Awaitable[TokenResponse]]


def select_audience(client: Client, resource: str | None, settings: Settings) -> str:
    """The ``aud`` of a client's tokens; ``resource`` (RFC 8707) picks one of its allowed audiences."""
    allowed = client.audiences or (settings.default_audience,)
    if resource is None:
        return allowed[0]
    if resource not in allowed:
        raise InvalidTargetError("The requested resource is not allowed for this client.")
    return resource


def access_token_ttl(client: Client, settings: Settings) -> int:
    return client.access_token_ttl or settings.access_token_ttl


def gets_refresh_token(client: Client, grant: Grant) -> bool:
    """RFC 6749 §5.1 makes a refresh token optional: one only for a client registered with the refresh grant
    (it could not use one otherwise), and for an OpenID Connect grant only when ``offline_access`` was
    granted (OIDC Core §11)."""
    if GrantType.REFRESH_TOKEN not in client.grant_types:
        return False
    return grant.oidc is None or oidc.OFFLINE_ACCESS in grant.scope


async def issue_for_grant(ctx: GrantContext, tx: Transaction, client: Client, grant: Grant, scope: Scope,
                          *, nonce: str | None = None) -> TokenResponse:
    """Issue an access token with ``scope``, a refresh token with the grant's full scope when
    ``gets_refresh_token``, and for an OpenID Connect grant whose ``scope`` has ``openid`` an ID token (with
    ``nonce`` at the code exchange; none on refresh, OIDC Core §12.2).

    Used by: the authorization_code and refresh_token grants, inside their write transaction.
    """
    refresh: str | None = None
    if gets_refresh_token(client, grant):
        refresh = random_token(REFRESH_TOKEN_PREFIX)
        await tx.save_refresh_token(RefreshToken(
            token_hash=token_hash(refresh), grant_id=grant.id, client_id=client.client_id, scope=grant.scope,
            created_at=ctx.now, expires_at=grant.expires_at))
    ttl = access_token_ttl(client, ctx.settings)
    jti = str(uuid.uuid4())
    await tx.save_access_token(AccessTokenRecord(
        jti=jti, grant_id=grant.id, client_id=client.client_id, expires_at=ctx.now + ttl))
    minted = await mint_access_token(
        ctx.keys, alg=client.signing_alg or ctx.settings.signing_alg, issuer=ctx.settings.issuer,
        subject=grant.user_id or client.client_id, audience=grant.audience, client_id=client.client_id,
        scope=scope, now=ctx.now, ttl=ttl, jti=jti)
    id_token = None
    if grant.oidc is not None and oidc.OPENID in scope and grant.user_id is not None:
        id_token = await _id_token(ctx, tx, client, grant, minted.token, nonce)
    return TokenResponse(access_token=minted.token, expires_in=ttl, scope=scope, refresh_token=refresh,
                         subject=grant.user_id, id_token=id_token)


async def _id_token(ctx: GrantContext, tx: Transaction, client: Client, grant: Grant, access_token: str,
                    nonce: str | None) -> str:
    """OIDC Core §3.1.3.6 / §12.2. Scope claims go to userinfo, not here, because an access token is issued
    with it (§5.4); claims the ``claims`` request names for the ID token do come here, and only then is the
    user read (no extra round trip otherwise)."""
    context = grant.oidc
    assert context is not None and grant.user_id is not None
    extra = None
    requested = context.claims_request().get("id_token")
    if requested:
        user = await tx.get_user(grant.user_id)
        if user is not None:
            extra = oidc.release(user.claims, set(), requested, username=user.username)
    return await mint_id_token(
        ctx.keys, alg=client.id_token_signing_alg or ctx.settings.id_token_signing_alg, issuer=ctx.settings.issuer,
        subject=grant.user_id, client_id=client.client_id, now=ctx.now, ttl=ctx.settings.id_token_ttl,
        auth_time=context.auth_time, nonce=nonce, sid=context.sid, access_token=access_token, extra=extra)


def new_grant_id() -> str:
    return str(uuid.uuid4())
