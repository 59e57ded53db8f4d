"""The authorization_code grant (RFC 6749 §4.1.3, RFC 7636 §4.5, OAuth 2.1 §4.1.3).

Client, redirect URI and PKCE are checked before the code is consumed, so a replay with wrong parameters
revokes nothing (OAuth 2.1 §7.5.2); a valid replay revokes what the first redemption issued.
"""

from __future__ import annotations

from dataclasses import replace

from tokenward.protocol import pkce
from tokenward.protocol.errors import InvalidGrantError, InvalidRequestError, InvalidTargetError, ReuseDetectedError
from tokenward.protocol.types import GrantType
from tokenward.server.crypto import token_hash
from tokenward.server.grants.base import GrantContext, TokenResponse, issue_for_grant, new_grant_id
from tokenward.server.model import Client, Grant
from tokenward.server.store.protocols import Transaction

grant_type = GrantType.AUTHORIZATION_CODE


async def exchange(ctx: GrantContext, client: Client, form: dict[str, str]) -> TokenResponse:
    code_value = form.get("code")
    if code_value is None:
        raise InvalidRequestError("code is required.")
    async with ctx.store.transaction(write=True) as tx:
        return await _redeem(ctx, tx, client, code_value, form)


async def _redeem(ctx: GrantContext, tx: Transaction, client: Client, code_value: str, form: dict[str, str]
                  ) -> TokenResponse:
    code = await tx.get_code(token_hash(code_value))
    if code is None or code.client_id != client.client_id:
        raise InvalidGrantError("The authorization code is invalid.", debug="unknown code or other client")
    if code.expires_at <= ctx.now:
        raise InvalidGrantError("The authorization code has expired.")
    redirect_uri = form.get("redirect_uri")
    if (code.redirect_uri_explicit or redirect_uri is not None) and redirect_uri != code.redirect_uri:
        raise InvalidGrantError("The redirect_uri does not match the authorization request.")
    resource = form.get("resource")
    if resource is not None and resource != code.audience:  # RFC 8707 §2
        raise InvalidTargetError("The resource was not part of the authorization request.")
    if code.code_challenge:
        pkce.verify(form.get("code_verifier"), code.code_challenge)
    elif "code_verifier" in form:  # RFC 9700 §2.1.1: no challenge was sent, so a verifier is a downgrade sign
        raise InvalidGrantError("code_verifier was sent but the authorization request had no code_challenge.")

    grant_id = new_grant_id()
    if not await tx.consume_code(code.code_hash, grant_id, ctx.now):
        replayed = await tx.get_code(code.code_hash)  # re-read: the winner has committed its grant id
        if replayed is not None and replayed.grant_id is not None:
            await tx.revoke_grant(replayed.grant_id, ctx.now)
        tx.keep_on_error()  # the revocation stays although this request fails (RFC 9700 §4.14.2)
        raise ReuseDetectedError("The authorization code has already been used.",
                                 debug=f"code replay; revoked grant {replayed.grant_id if replayed else None}")
    context = code.oidc
    grant = Grant(id=grant_id, client_id=client.client_id, user_id=code.user_id, scope=code.scope,
                  audience=code.audience, created_at=ctx.now,
                  expires_at=ctx.now + ctx.settings.refresh_token_ttl,
                  oidc=replace(context, nonce=None) if context is not None else None)
    await tx.save_grant(grant)
    return await issue_for_grant(ctx, tx, client, grant, code.scope, nonce=context.nonce if context else None)
