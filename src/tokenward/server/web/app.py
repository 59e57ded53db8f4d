"""The ASGI application: one routes table, three-line handlers, errors mapped in one place."""

from __future__ import annotations

import asyncio
import logging
import os
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tokenward.protocol.bearer import BearerError
from tokenward.protocol.errors import (
    MethodNotAllowedError,
    OAuthError,
    ServerError,
    TemporarilyUnavailableError,
)
from tokenward.protocol.form import is_form_content_type, parse_form
from tokenward.protocol.metadata import authorization_server_metadata, openid_provider_metadata
from tokenward.protocol.oidc import OIDC_SCOPES
from tokenward.server.audit import bind_request, unbind_request
from tokenward.server.authorization_server import AuthorizationServer
from tokenward.server.endpoints.userinfo import userinfo_token
from tokenward.server.id_token import ID_TOKEN_ALGS
from tokenward.server.logs import configure_logging
from tokenward.server.maintenance import maintenance_loop
from tokenward.server.settings import Settings
from tokenward.server.store.protocols import StoreUnavailableError
from tokenward.server.web import account_pages, device_pages, pages
from tokenward.server.web.http import error_response, json_response, read_body, to_form
from tokenward.server.web.openapi import openapi_document
from tokenward.server.web.security import SecurityHeadersMiddleware

log = logging.getLogger("tokenward.server")
access_log = logging.getLogger("tokenward.access")

ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


def request_id(request: Request) -> str:
    rid: str = request.scope.get("state", {}).get("request_id", "-")
    return rid


def client_ip(request: Request) -> str | None:
    """The peer address; uvicorn replaces it with X-Forwarded-For only for trusted proxies."""
    return request.client.host if request.client else None


def server_of(request: Request) -> AuthorizationServer:
    server: AuthorizationServer = request.app.state.server
    return server


async def token(request: Request) -> Response:
    """POST /token (RFC 6749 §3.2)."""
    server = server_of(request)
    if request.method != "POST":
        raise MethodNotAllowedError("The token endpoint only accepts POST.")
    form = await to_form(request, server.settings.max_body_bytes)
    result = await server.token.handle(request.headers.get("authorization"), form, client_ip(request))
    return json_response(result.to_wire())


async def revoke(request: Request) -> Response:
    """POST /revoke (RFC 7009 §2.1): 200 with an empty body whether or not the token was known."""
    server = server_of(request)
    if request.method != "POST":
        raise MethodNotAllowedError("The revocation endpoint only accepts POST.")
    form = await to_form(request, server.settings.max_body_bytes)
    await server.revocation.handle(request.headers.get("authorization"), form, client_ip(request))
    return Response(status_code=200, headers={"Cache-Control": "no-store"})


async def introspect(request: Request) -> Response:
    """POST /introspect (RFC 7662 §2.1)."""
    server = server_of(request)
    if request.method != "POST":
        raise MethodNotAllowedError("The introspection endpoint only accepts POST.")
    form = await to_form(request, server.settings.max_body_bytes)
    return json_response(await server.introspection.handle(request.headers.get("authorization"), form,
                                                           client_ip(request)))


async def device_authorization(request: Request) -> Response:
    """POST /device_authorization (RFC 8628 §3.1)."""
    server = server_of(request)
    if request.method != "POST":
        raise MethodNotAllowedError("The device authorization endpoint only accepts POST.")
    form = await to_form(request, server.settings.max_body_bytes)
    result = await server.device_authorization.handle(request.headers.get("authorization"), form,
                                                      client_ip(request), request.headers.get("user-agent"))
    return json_response(result.to_wire())


async def userinfo(request: Request) -> Response:
    """GET/POST /userinfo (OIDC Core §5.3): JSON claims; token errors carry a Bearer challenge (RFC 6750 §3)."""
    server = server_of(request)
    if request.method not in ("GET", "POST"):
        response = error_response(MethodNotAllowedError("The userinfo endpoint accepts GET and POST."),
                                  realm=server.settings.issuer, request_id=request_id(request))
        response.headers["Allow"] = "GET, POST"
        return response
    form_token = None
    if request.method == "POST" and is_form_content_type(request.headers.get("content-type")):
        form_token = parse_form(await read_body(request, server.settings.max_body_bytes)).get("access_token")
    try:
        token = userinfo_token(request.headers.getlist("authorization"), form_token,
                               "access_token" in request.query_params)
        return json_response(await server.userinfo.handle(token, client_ip(request)))
    except BearerError as exc:
        return json_response(exc.to_wire(), status=exc.status,
                             headers={"WWW-Authenticate": exc.challenge(server.settings.issuer)})


def provider_metadata(settings: Settings) -> dict[str, Any]:
    """The one source of both discovery documents: the OpenID one, whose RFC 8414 members are exactly the
    OAuth document (served without the OIDC-only members)."""
    scopes = sorted(set(pages.SCOPE_DESCRIPTIONS) - set(OIDC_SCOPES))
    return openid_provider_metadata(settings.issuer, scopes=[*OIDC_SCOPES, *scopes],
                                    signing_algs=[a.value for a in settings.signing_algs],
                                    id_token_signing_algs=list(ID_TOKEN_ALGS))


async def metadata(request: Request) -> Response:
    """GET /.well-known/oauth-authorization-server (RFC 8414 §3)."""
    settings = server_of(request).settings
    body = provider_metadata(settings)
    oauth = authorization_server_metadata(settings.issuer, scopes=[], signing_algs=[])
    return JSONResponse({k: v for k, v in body.items() if k in oauth},
                        headers={"Cache-Control": "public, max-age=300"})


async def openid_configuration(request: Request) -> Response:
    """GET /.well-known/openid-configuration (OIDC Discovery 1.0 §4)."""
    return JSONResponse(provider_metadata(server_of(request).settings),
                        headers={"Cache-Control": "public, max-age=300"})


async def openapi(request: Request) -> Response:
    return JSONResponse(openapi_document(server_of(request).settings.issuer))


async def jwks(request: Request) -> Response:
    # Short cache: a key rotated in is published before it signs, and guards refetch on an unknown kid.
    return JSONResponse(await server_of(request).keys.jwks(), headers={"Cache-Control": "public, max-age=60"})


def oauth_endpoint(handler: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
    """Map every failure of a JSON endpoint to an RFC 6749 §5.2 answer: never a 500 page or a trace."""

    async def endpoint(request: Request) -> Response:
        realm = server_of(request).settings.issuer
        rid = request_id(request)
        try:
            return await handler(request)
        except OAuthError as exc:
            return error_response(exc, realm=realm, request_id=rid)
        except StoreUnavailableError as exc:
            log.warning("database unavailable", extra={"request_id": rid, "debug": str(exc)})
            return error_response(TemporarilyUnavailableError("The service is temporarily unavailable."),
                                  realm=realm, request_id=rid)
        except Exception:
            log.exception("unexpected error", extra={"request_id": rid})
            return error_response(ServerError("An unexpected error occurred."), realm=realm, request_id=rid)

    return endpoint


def page_endpoint(handler: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
    """The same for HTML pages: an error page, never a trace."""

    async def endpoint(request: Request) -> Response:
        try:
            return await handler(request)
        except StoreUnavailableError:
            log.warning("database unavailable", extra={"request_id": request_id(request)})
            return pages.error_page(request, "The service is temporarily unavailable. Try again shortly.", 503)
        except Exception:
            log.exception("unexpected error", extra={"request_id": request_id(request)})
            return pages.error_page(request, "An unexpected error occurred.", 500)

    return endpoint


class RequestContextMiddleware:
    """Pure ASGI: gives each request an id and writes one access-log line without the query string
    (it can carry codes and state)."""

    def __init__(self, app: ASGIApp, observe: Callable[[str, int, float], None] | None = None) -> None:
        self.app = app
        self.observe = observe

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = uuid.uuid4().hex[:16]
        scope.setdefault("state", {})["request_id"] = rid
        client = scope.get("client")
        bound = bind_request(rid, client[0] if client else None)
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", rid.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            unbind_request(bound)
            elapsed = time.perf_counter() - started
            if self.observe is not None:
                self.observe(scope["path"], status, elapsed)
            access_log.info("request", extra={
                "request_id": rid, "method": scope["method"], "path": scope["path"], "status": status,
                "duration_ms": round(elapsed * 1000, 2), "ip": client[0] if client else None})


def create_app(settings: Settings) -> Starlette:
    """The ASGI app for ``settings``; the database must already be migrated (``tokenward serve`` does it)."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        server = app.state.server = await AuthorizationServer.open(settings)
        tasks = [asyncio.create_task(maintenance_loop(server.store, server.box, settings)),
                 asyncio.create_task(server.keys.run()), asyncio.create_task(server.limiter.run())]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await server.close()

    routes = [
        Route("/", page_endpoint(pages.home)),
        Route("/authorize", page_endpoint(pages.authorize), methods=["GET", "POST"]),
        Route("/login", page_endpoint(pages.login), methods=["GET", "POST"]),
        Route("/consent", page_endpoint(pages.consent), methods=["GET", "POST"]),
        Route("/device", page_endpoint(device_pages.device), methods=["GET", "POST"]),
        Route("/end_session", page_endpoint(account_pages.end_session), methods=["GET", "POST"]),
        Route("/end_session/confirm", page_endpoint(account_pages.end_session_confirm), methods=["POST"]),
        Route("/account", page_endpoint(account_pages.account), methods=["GET", "POST"]),
        Route("/account/login", page_endpoint(account_pages.account_login), methods=["GET", "POST"]),
        Route("/token", oauth_endpoint(token), methods=ALL_METHODS),
        Route("/revoke", oauth_endpoint(revoke), methods=ALL_METHODS),
        Route("/introspect", oauth_endpoint(introspect), methods=ALL_METHODS),
        Route("/device_authorization", oauth_endpoint(device_authorization), methods=ALL_METHODS),
        Route("/userinfo", oauth_endpoint(userinfo), methods=ALL_METHODS),
        Route("/.well-known/oauth-authorization-server", oauth_endpoint(metadata)),
        Route("/.well-known/openid-configuration", oauth_endpoint(openid_configuration)),
        Route("/jwks.json", oauth_endpoint(jwks)),
        Route("/openapi.json", oauth_endpoint(openapi)),
        Mount("/static", StaticFiles(directory=str(Path(__file__).with_name("static"))), name="static"),
    ]
    observe = None
    if settings.metrics:
        from tokenward.server import metrics

        metrics.install()
        observe = metrics.observe_request
        routes.append(Route("/metrics", prometheus_metrics))
    app = Starlette(routes=routes, lifespan=lifespan)
    app.add_middleware(SecurityHeadersMiddleware, hsts=settings.issuer.startswith("https://"))
    app.add_middleware(RequestContextMiddleware, observe=observe)
    return app


async def prometheus_metrics(request: Request) -> Response:
    from tokenward.server import metrics

    async with server_of(request).store.transaction() as tx:
        metrics.record_keys(list(await tx.list_signing_keys()))
    body, content_type = metrics.exposition()
    return Response(body, media_type=content_type)


def create_app_from_env() -> Starlette:
    """Factory for worker processes: ``uvicorn --factory tokenward.server.web.app:create_app_from_env``.

    Worker processes start fresh, so they set up logging themselves (``TOKENWARD_LOG_LEVEL``).
    """
    configure_logging(os.environ.get("TOKENWARD_LOG_LEVEL", "INFO").upper())
    return create_app(Settings.from_env())
