"""FastAPI integration (no ``from __future__ import annotations``: FastAPI must evaluate the local
annotations of the dependencies built here): a security scheme that shows up in OpenAPI as HTTP bearer (JWT) and a
``require_scopes(...)`` dependency. It reuses the middleware's Principal when the middleware ran.

With ``resource_metadata``, ``guard.serve_metadata(app)`` adds the RFC 9728 document's route (outside the OpenAPI
schema) and every challenge names its URL (``resource_metadata="…"``, RFC 9728 §5.1).

An issuer that cannot be asked (``DiscoveryError``, ``IntrospectionError``) gets 503 ``temporarily_unavailable``
(``{"detail": {"error": …}}`` like every error here, ``Cache-Control: no-store``) and one warning log line."""


from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Request, Response, Security
from fastapi.openapi.models import HTTPBearer as HTTPBearerModel
from fastapi.security.base import SecurityBase

from tokenward.protocol.bearer import BearerError, InsufficientScopeError, bearer_token_from_headers
from tokenward.resource.asgi import PRINCIPAL_KEY, query_has_token
from tokenward.resource.discovery import DiscoveryError, bearer_error_for
from tokenward.resource.metadata import ResourceMetadata
from tokenward.resource.principal import Principal, TokenVerifier


def http_error(error: BearerError, realm: str, resource_metadata: ResourceMetadata | None = None) -> HTTPException:
    challenge = error.challenge(realm, resource_metadata.url if resource_metadata else None)
    return HTTPException(status_code=error.status, detail=error.to_wire(),
                         headers={"WWW-Authenticate": challenge, "Cache-Control": "no-store"})


class TokenwardBearer(SecurityBase):
    """``Depends(guard)`` yields the caller's Principal; ``guard.require_scopes("a")`` also checks scopes."""

    def __init__(self, verifier: TokenVerifier, *, realm: str = "api", scheme_name: str = "TokenwardBearer",
                 resource_metadata: ResourceMetadata | None = None) -> None:
        self.verifier = verifier
        self.realm = realm
        self.resource_metadata = resource_metadata
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
            raise http_error(bearer_error_for(error), self.realm, self.resource_metadata) from None

    def serve_metadata(self, app: FastAPI) -> None:
        """Serve ``resource_metadata`` (RFC 9728 §3) at its well-known path on ``app``, for GET and HEAD."""
        metadata = self.resource_metadata
        if metadata is None:
            raise ValueError("this guard has no resource_metadata to serve")

        async def protected_resource_metadata() -> Response:
            return Response(metadata.body(), headers=metadata.headers(), media_type="application/json")

        app.add_api_route(metadata.path, protected_resource_metadata, methods=["GET", "HEAD"],
                          include_in_schema=False)

    def require_scopes(self, *scopes: str) -> Any:
        async def dependency(principal: Annotated[Principal, Security(self, scopes=list(scopes))]) -> Principal:
            if not principal.has_scopes(*scopes):
                missing = InsufficientScopeError("The access token lacks a required scope.", scope=" ".join(scopes))
                raise http_error(missing, self.realm, self.resource_metadata)
            return principal

        return Depends(dependency)
