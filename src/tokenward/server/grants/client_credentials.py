"""The client_credentials grant (RFC 6749 §4.4): confidential clients only; no refresh token (§4.4.3).

Nothing is written to the database: the token is a signed JWT and the client is read once.
"""

from __future__ import annotations

from tokenward.protocol.errors import InvalidScopeError, UnauthorizedClientError
from tokenward.protocol.scope import Scope
from tokenward.protocol.types import GrantType
from tokenward.server.grants.base import GrantContext, TokenResponse, access_token_ttl, select_audience
from tokenward.server.jwt_access_token import mint_access_token
from tokenward.server.model import Client

grant_type = GrantType.CLIENT_CREDENTIALS


async def exchange(ctx: GrantContext, client: Client, form: dict[str, str]) -> TokenResponse:
    if client.public:
        raise UnauthorizedClientError("Public clients cannot use client_credentials.")
    requested = Scope.parse(form.get("scope"))
    if not requested <= client.scope:
        raise InvalidScopeError("The requested scope is not allowed for this client.")
    scope = requested or client.scope
    audience = select_audience(client, form.get("resource"), ctx.settings)
    ttl = access_token_ttl(client, ctx.settings)
    minted = await mint_access_token(
        ctx.keys, alg=client.signing_alg or ctx.settings.signing_alg, issuer=ctx.settings.issuer,
        subject=client.client_id, audience=audience, client_id=client.client_id, scope=scope,
        now=ctx.now, ttl=ttl)
    return TokenResponse(access_token=minted.token, expires_in=ttl, scope=scope)
