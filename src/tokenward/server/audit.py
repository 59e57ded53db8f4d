"""Audit events: one structured log line per security-relevant event, on the ``tokenward.audit`` logger.

Each line carries the event name, the request id and client IP of the HTTP request it happened in (bound by
the web adapter through a context variable), and the client and subject — never a token or secret.
"""

from __future__ import annotations

import logging
from contextvars import ContextVar, Token
from dataclasses import dataclass

audit_log = logging.getLogger("tokenward.audit")


@dataclass(frozen=True, slots=True)
class RequestInfo:
    request_id: str
    ip: str | None


_current: ContextVar[RequestInfo | None] = ContextVar("tokenward_request", default=None)


def bind_request(request_id: str, ip: str | None) -> Token[RequestInfo | None]:
    return _current.set(RequestInfo(request_id, ip))


def unbind_request(token: Token[RequestInfo | None]) -> None:
    _current.reset(token)


def audit(event: str, *, client_id: str | None = None, sub: str | None = None, **fields: str | int | bool | None
          ) -> None:
    """Record ``event`` (e.g. ``token.issued``); ``fields`` must never hold a credential."""
    info = _current.get()
    extra: dict[str, object] = {"event": event, "client_id": client_id, "sub": sub, **fields}
    if info is not None:
        extra["request_id"] = info.request_id
        extra["ip"] = info.ip
    audit_log.info(event, extra={k: v for k, v in extra.items() if v is not None})
