"""The refresh_token grant with rotation, reuse detection and a grace window (RFC 6749 §6, RFC 9700 §4.14.2).

Each refresh token works once: consuming it is one conditional UPDATE. Presenting a consumed token again
revokes the whole grant family and its access tokens, and that revocation commits although the request
fails — except once, inside the client's grace window, while its successor is still unused: then the
client gets the very same successor pair back (the response it lost in transit). Refresh tokens stay
hashed at rest; the successor pair is kept sealed under the key-encryption key, for the window only.
"""

from __future__ import annotations

import json

from tokenward.protocol.errors import (
    InvalidGrantError,
    InvalidRequestError,
    InvalidScopeError,
    ReuseDetectedError,
)
from tokenward.protocol.scope import Scope
from tokenward.protocol.types import GrantType
from tokenward.server.crypto import token_hash
from tokenward.server.grants.base import GrantContext, TokenResponse, issue_for_grant
from tokenward.server.model import Client, Grant, RefreshToken
from tokenward.server.store.protocols import Transaction

grant_type = GrantType.REFRESH_TOKEN


async def exchange(ctx: GrantContext, client: Client, form: dict[str, str]) -> TokenResponse:
    value = form.get("refresh_token")
    if value is None:
        raise InvalidRequestError("refresh_token is required.")
    requested = Scope.parse(form.get("scope"))
    async with ctx.store.transaction(write=True) as tx:
        return await _rotate(ctx, tx, client, token_hash(value), requested)


async def _rotate(ctx: GrantContext, tx: Transaction, client: Client, presented: bytes, requested: Scope
                  ) -> TokenResponse:
    # The family's lock first (rotations and revocations of one grant queue on it), then one conditional
    # UPDATE decides whether this is the token's first use: two statements on the success path.
    grant = await tx.lock_refresh_family(presented)
    token = await tx.consume_refresh_token(presented, ctx.now) if grant is not None else None
    if grant is None or token is None:
        return await _not_consumable(ctx, tx, client, presented, grant)
    # Consumed: any refusal below raises, and the transaction's rollback un-consumes the token.
    if token.client_id != client.client_id:
        raise InvalidGrantError("The refresh token is invalid.", debug="other client")
    if grant.revoked_at is not None:
        raise InvalidGrantError("The refresh token has been revoked.")
    if token.expires_at <= ctx.now or grant.expires_at <= ctx.now:
        raise InvalidGrantError("The refresh token has expired.")
    if not requested <= grant.scope:
        raise InvalidScopeError("The requested scope exceeds the original grant.")
    issued = await issue_for_grant(ctx, tx, client, grant, requested or grant.scope)
    if ctx.settings.refresh_grace(client.public) > 0:
        await _keep_for_grace(ctx, tx, token, issued)
    return issued


async def _not_consumable(ctx: GrantContext, tx: Transaction, client: Client, presented: bytes,
                          grant: Grant | None) -> TokenResponse:
    """Unknown, another client's, revoked, expired — or already used: a grace retry, or reuse."""
    token = await tx.get_refresh_token(presented) if grant is not None else None
    if grant is None or token is None or token.client_id != client.client_id:
        raise InvalidGrantError("The refresh token is invalid.", debug="unknown token or other client")
    if grant.revoked_at is not None or token.revoked_at is not None:
        raise InvalidGrantError("The refresh token has been revoked.")
    if token.expires_at <= ctx.now or grant.expires_at <= ctx.now:
        raise InvalidGrantError("The refresh token has expired.")
    retried = await _grace_retry(ctx, tx, client, token, grant.user_id)
    if retried is not None:
        return retried
    await tx.revoke_grant(grant.id, ctx.now)
    tx.keep_on_error()  # the revocation stays although this request fails (RFC 9700 §4.14.2)
    raise ReuseDetectedError("The refresh token has already been used.",
                             debug=f"refresh token reuse; revoked grant {grant.id}")


async def _keep_for_grace(ctx: GrantContext, tx: Transaction, token: RefreshToken, issued: TokenResponse) -> None:
    assert issued.refresh_token is not None
    pair = json.dumps(issued.to_wire()).encode()
    await tx.keep_successor(token.token_hash, token_hash(issued.refresh_token),
                                ctx.box.seal(pair, token.token_hash))


async def _grace_retry(ctx: GrantContext, tx: Transaction, client: Client, token: RefreshToken, subject: str | None
                       ) -> TokenResponse | None:
    """The successor pair for a first retry inside the window, if the successor has not been used yet."""
    current = await tx.get_refresh_token(token.token_hash)  # re-read: a racing rotation may have just won
    if current is None or current.consumed_at is None or current.successor_sealed is None:
        return None
    if current.grace_used_at is not None or ctx.now - current.consumed_at > ctx.settings.refresh_grace(client.public):
        return None
    successor = await tx.get_refresh_token(current.successor_hash) if current.successor_hash else None
    if successor is None or successor.consumed_at is not None or successor.revoked_at is not None:
        return None
    if not await tx.claim_grace_retry(token.token_hash, ctx.now):
        return None
    wire = json.loads(ctx.box.open(current.successor_sealed, token.token_hash))
    return TokenResponse(access_token=wire["access_token"], expires_in=wire["expires_in"],
                         scope=Scope.parse(wire["scope"]), refresh_token=wire["refresh_token"], subject=subject)

