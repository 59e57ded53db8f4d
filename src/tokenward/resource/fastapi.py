"""FastAPI integration (no ``from __future__ import annotations``: FastAPI must evaluate the local
annotations of the dependencies built here): a security scheme that shows up in OpenAPI as HTTP bearer (JWT) and a
``require_scopes(...)`` dependency. It reuses the middleware's Principal when the middleware ran.

An issuer that cannot be asked (``DiscoveryError``, ``IntrospectionError``) gets 503 ``temporarily_unavailable``
(``{"detail": {"error": …}}`` like every error here, ``Cache-Control: no-store``) and one warning log line."""


from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, Security
from fastapi.openapi.models import HTTPBearer as HTTPBearerModel
from fastapi.security.base import SecurityBase

from tokenward.protocol.bearer import BearerError, InsufficientScopeError, bearer_token_from_headers
from tokenward.resource.asgi import PRINCIPAL_KEY, query_has_token
from tokenward.resource.discovery import DiscoveryError, bearer_error_for
from tokenward.resource.principal import Principal, TokenVerifier


def http_error(error: BearerError, realm: str) -> HTTPException:
    return HTTPException(status_code=error.status, detail=error.to_wire(),
                         headers={"WWW-Authenticate": error.challenge(realm), "Cache-Control": "no-store"})


class TokenwardBearer(SecurityBase):
    """``Depends(guard)`` yields the caller's Principal; ``guard.require_scopes("a")`` also checks scopes."""

    def __init__(self, verifier: TokenVerifier, *, realm: str = "api", scheme_name: str = "TokenwardBearer") -> None:
        self.verifier = verifier
        self.realm = realm
        self.model = HTTPBearerModel(bearerFormat="JWT", description="An RFC 9068 access token.")
        self.scheme_name = scheme_name

    async def __call__(self, request: Request) -> Principal:
        principal = request.scope.get(PRINCIPAL_KEY)
        if isinstance(principal, Principal):
            return principal
        try:
            token = bearer_token_from_headers(request.headers.getlist("authorization"),
                                              query_has_token(request.scope["query_string"]))
            return await self.verifier.verify(token)
        except (BearerError, DiscoveryError) as error:
            raise http_error(bearer_error_for(error), self.realm) from None

    def require_scopes(self, *scopes: str) -> Any:
        async def dependency(principal: Annotated[Principal, Security(self, scopes=list(scopes))]) -> Principal:
            if not principal.has_scopes(*scopes):
                missing = InsufficientScopeError("The access token lacks a required scope.", scope=" ".join(scopes))
                raise http_error(missing, self.realm)
            return principal

        return Depends(dependency)
