"""The two conversions between HTTP and the protocol core: request → form, result/error → response."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from tokenward.protocol.errors import (
    InvalidRequestError,
    OAuthError,
    RequestTimeoutError,
    RequestTooLargeError,
    SlowDownError,
)
from tokenward.protocol.form import is_form_content_type, parse_form

log = logging.getLogger("tokenward.server")

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


BODY_TIMEOUT_SECONDS = 10.0


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The body, refusing more than ``max_bytes`` (413) without reading it all into memory first, and
    giving up on a client that takes more than 10 s to send it (408)."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > max_bytes):
        raise RequestTooLargeError("The request body is too large.")
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(BODY_TIMEOUT_SECONDS):
            async for chunk in request.stream():
                size += len(chunk)
                if size > max_bytes:
                    raise RequestTooLargeError("The request body is too large.")
                chunks.append(chunk)
    except TimeoutError:
        raise RequestTimeoutError("The request body was not received in time.") from None
    return b"".join(chunks)


async def to_form(request: Request, max_bytes: int) -> dict[str, str]:
    """An OAuth POST body: only ``application/x-www-form-urlencoded`` (RFC 6749 §3.2); no query parameters
    (a secret in the URL is refused, RFC 6749 §2.3.1)."""
    if request.url.query:
        raise InvalidRequestError("Parameters must be sent in the request body, not the URL.")
    if not is_form_content_type(request.headers.get("content-type")):
        raise InvalidRequestError("The body must be application/x-www-form-urlencoded.")
    return parse_form(await read_body(request, max_bytes))


def json_response(body: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(body), status_code=status, media_type="application/json",
                    headers={**NO_STORE, **(headers or {})})


def error_response(error: OAuthError, *, realm: str, request_id: str) -> Response:
    """RFC 6749 §5.2 JSON. ``invalid_client`` is 401 with a Basic challenge; 405 names the allowed method."""
    headers: dict[str, str] = {}
    if error.status == 401:
        headers["WWW-Authenticate"] = f'Basic realm="{realm}"'
    if error.status == 405:
        headers["Allow"] = "POST"
    if error.status == 503:
        headers["Retry-After"] = "5"
    if isinstance(error, SlowDownError):
        headers["Retry-After"] = str(error.retry_after)
    log.info("oauth error %s", error.error,
             extra={"request_id": request_id, "debug": error.debug or error.description})
    return json_response(error.to_wire(), status=error.status, headers=headers)
