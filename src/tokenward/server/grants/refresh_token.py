"""The refresh_token grant with rotation and reuse detection (RFC 6749 §6, RFC 9700 §4.14.2).

Each refresh token works once: consuming it is one conditional UPDATE. Presenting a consumed token again
revokes the whole grant family and its access tokens, and that revocation commits although the request fails.
"""

from __future__ import annotations

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
from tokenward.server.model import Client

grant_type = GrantType.REFRESH_TOKEN


async def exchange(ctx: GrantContext, client: Client, form: dict[str, str]) -> TokenResponse:
    value = form.get("refresh_token")
    if value is None:
        raise InvalidRequestError("refresh_token is required.")
    requested = Scope.parse(form.get("scope"))
    token = await ctx.tx.get_refresh_token(token_hash(value))
    if token is None or token.client_id != client.client_id:
        raise InvalidGrantError("The refresh token is invalid.", debug="unknown token or other client")
    grant = await ctx.tx.get_grant(token.grant_id)
    if grant is None or grant.revoked_at is not None or token.revoked_at is not None:
        raise InvalidGrantError("The refresh token has been revoked.")
    if token.expires_at <= ctx.now or grant.expires_at <= ctx.now:
        raise InvalidGrantError("The refresh token has expired.")
    if token.consumed_at is None and not requested <= grant.scope:
        raise InvalidScopeError("The requested scope exceeds the original grant.")
    if token.consumed_at is not None or not await ctx.tx.consume_refresh_token(token.token_hash, ctx.now):
        await ctx.tx.revoke_grant(grant.id, ctx.now)
        raise ReuseDetectedError("The refresh token has already been used.",
                                 debug=f"refresh token reuse; revoked grant {grant.id}")
    return await issue_for_grant(ctx, client, grant, requested or grant.scope)
