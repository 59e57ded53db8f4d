"""schemathesis checks for Tokenward (loaded through SCHEMATHESIS_HOOKS=tests.fuzz.hooks).

Beyond the schema: no 5xx except a documented 503, JSON errors carry an RFC error code and
``Cache-Control: no-store``, and no response shows a stack trace or echoes raw input back.
"""

from __future__ import annotations

import json
from typing import Any

import schemathesis

RFC_ERRORS = {"invalid_request", "invalid_client", "invalid_grant", "unauthorized_client", "unsupported_grant_type",
              "invalid_scope", "invalid_target", "slow_down", "temporarily_unavailable", "access_denied",
              "unsupported_response_type", "server_error",
              "invalid_token", "insufficient_scope",  # RFC 6750 §3.1, at userinfo
              "unauthorized"}  # the body of a bare Bearer challenge (no credentials: RFC 6750 §3.1 sets no code)
MARKERS = ("Traceback (most recent call last)", 'File "/', "sqlalchemy.exc", "psycopg.", "sqlite3.")


@schemathesis.check
def tokenward_error_hygiene(ctx: Any, response: Any, case: Any) -> None:
    body = response.text or ""
    for marker in MARKERS:
        if marker in body:
            raise AssertionError(f"internal detail {marker!r} in the response")
    if response.status_code >= 500 and response.status_code != 503:
        raise AssertionError(f"server error {response.status_code}")
    content_type = response.headers.get("content-type", [""])
    content_type = content_type[0] if isinstance(content_type, list) else content_type
    if response.status_code >= 400 and content_type.startswith("application/json"):
        error = json.loads(body).get("error")
        if error not in RFC_ERRORS:
            raise AssertionError(f"error code {error!r} is not an RFC error code")
        cache = response.headers.get("cache-control", [""])
        if "no-store" not in (cache[0] if isinstance(cache, list) else cache):
            raise AssertionError("a JSON error without Cache-Control: no-store")
    for value in _long_inputs(case):
        if value in body:
            raise AssertionError("the response echoes raw input back")


def _long_inputs(case: Any) -> list[str]:
    """Generated string inputs long and odd enough that finding them in a response means an echo."""
    values: list[str] = []
    for container in (getattr(case, "query", None), getattr(case, "body", None)):
        if isinstance(container, dict):
            values.extend(v for v in container.values() if isinstance(v, str) and len(v) >= 12
                          and any(c in v for c in "<>\"'") )
    return values
