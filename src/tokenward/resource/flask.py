"""Flask (WSGI) integration: ``@guard.require_scopes("profile:read")`` puts the Principal in ``flask.g``.

An issuer that cannot be asked (``DiscoveryError``, ``IntrospectionError``) gets 503 ``temporarily_unavailable``
with the usual JSON body and ``Cache-Control: no-store``, and one warning log line, never a 500."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Any, TypeVar, cast

from flask import Response, g, request

from tokenward.protocol.bearer import BearerError, bearer_token_from_headers
from tokenward.resource.discovery import DiscoveryError, bearer_error_for
from tokenward.resource.principal import TokenVerifier

F = TypeVar("F", bound=Callable[..., Any])


class FlaskGuard:
    def __init__(self, verifier: TokenVerifier, *, realm: str = "api") -> None:
        self.verifier = verifier
        self.realm = realm

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
                                    headers={"WWW-Authenticate": error.challenge(self.realm),
                                             "Cache-Control": "no-store"})
                return view(*args, **kwargs)

            return cast(F, wrapped)

        return decorator
