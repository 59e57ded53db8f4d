"""Server logging: one JSON object per line, with secrets scrubbed as a last line of defence.

Code never logs tokens on purpose; the filter catches what slips through (a token inside an exception
message, a URL with a code) by its shape: Tokenward prefixes, JWTs, and credential-named fields.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from typing import Any

_SECRET_PATTERNS = [
    re.compile(r"tw_(?:rt|ac|cs)_[A-Za-z0-9_\-]+"),
    re.compile(r"eyJ[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]*"),
    re.compile(r"(?i)((?:password|client_secret|refresh_token|access_token|code_verifier|code)=)[^&\s\"']+"),
    re.compile(r"(?i)(authorization:\s*(?:basic|bearer)\s+)\S+"),
]
_EXTRA_FIELDS = ("event", "request_id", "client_id", "sub", "ip", "grant_type", "grant_id", "token_type", "active",
                 "kid", "alg", "reason", "debug", "method", "path", "status", "duration_ms")


def redact(text: str) -> str:
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(lambda m: (m.group(1) if m.groups() else "") + "[redacted]", text)
    return text


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in _EXTRA_FIELDS:
            if hasattr(record, name):
                entry[name] = getattr(record, name)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return redact(json.dumps(entry, default=str))


def configure_audit_for_cli() -> None:
    """Admin commands write their audit events (client created, key rotated…) as JSON lines on stderr."""
    logger = logging.getLogger("tokenward.audit")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter())
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False


def configure_logging(level: str = "INFO") -> None:
    """Route every logger (ours, uvicorn's) through the JSON formatter on stderr."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
