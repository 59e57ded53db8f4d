"""Flask (WSGI) integration: ``@guard.require_scopes("profile:read")`` puts the Principal in ``flask.g``.

With ``resource_metadata``, ``guard.serve_metadata(app)`` adds the RFC 9728 document's URL rule and every
challenge names its URL (``resource_metadata="…"``, RFC 9728 §5.1).

An issuer that cannot be asked (``DiscoveryError``, ``IntrospectionError``) gets 503 ``temporarily_unavailable``
with the usual JSON body and ``Cache-Control: no-store``, and one warning log line, never a 500."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Any, TypeVar, cast

from flask import Flask, Response, g, request

from tokenward.protocol.bearer import BearerError, bearer_token_from_headers
from tokenward.resource.discovery import DiscoveryError, bearer_error_for
from tokenward.resource.metadata import ResourceMetadata
from tokenward.resource.principal import TokenVerifier

F = TypeVar("F", bound=Callable[..., Any])


class FlaskGuard:
    def __init__(self, verifier: TokenVerifier, *, realm: str = "api",
                 resource_metadata: ResourceMetadata | None = None) -> None:
        self.verifier = verifier
        self.realm = realm
        self.resource_metadata = resource_metadata

    def serve_metadata(self, app: Flask) -> None:
        """Serve ``resource_metadata`` (RFC 9728 §3) at its well-known path on ``app`` (GET, and HEAD by Flask)."""
        metadata = self.resource_metadata
        if metadata is None:
            raise ValueError("this guard has no resource_metadata to serve")

        def protected_resource_metadata() -> Response:
            return Response(metadata.body(), headers=metadata.headers(), mimetype="application/json")

        app.add_url_rule(metadata.path, "tokenward_protected_resource_metadata", protected_resource_metadata,
                         methods=["GET"])

    def require_scopes(self, *scopes: str) -> Callable[[F], F]:
        def decorator(view: F) -> F:
            @functools.wraps(view)
            def wrapped(*args: Any, **kwargs: Any) -> Any:
                try:
                    token = bearer_token_from_headers(request.headers.getlist("Authorization"),
                                                      "access_token" in request.args)
                    g.principal = self.verifier.verify_sync(token, scopes)
                except (BearerError, DiscoveryError) as caught:
                    error = bearer_error_for(caught)
                    return Response(json.dumps(error.to_wire()), status=error.status, mimetype="application/json",
                                    headers={"WWW-Authenticate": error.challenge(
                                        self.realm, self.resource_metadata.url if self.resource_metadata else None),
                                             "Cache-Control": "no-store"})
                return view(*args, **kwargs)

            return cast(F, wrapped)

        return decorator
