"""Server logging: one JSON object per line, with secrets scrubbed as a last line of defence.

Code never logs tokens on purpose; the filter catches what slips through (a token inside an exception
message, a URL with a code) by its shape: Tokenward prefixes, JWTs, and credential-named fields.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import time
from typing import Any

# One pass over each line: Tokenward-prefixed secrets, JWTs, credential-named fields, Authorization values.
_SECRETS = re.compile(
    r"tw_(?:rt|ac|cs)_[A-Za-z0-9_\-]+"
    r"|eyJ[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]*"
    r"|(?i:((?:password|client_secret|refresh_token|access_token|code_verifier|code)=)[^&\s\"']+)"
    r"|(?i:(authorization:\s*(?:basic|bearer)\s+)\S+)"
)
_EXTRA_FIELDS = ("event", "request_id", "client_id", "sub", "ip", "grant_type", "grant_id", "token_type", "active",
                 "kid", "alg", "reason", "debug", "method", "path", "status", "duration_ms")


def redact(text: str) -> str:
    # Most lines hold none of the anchors; the substring checks cost well under a microsecond, the regex ~20.
    if "tw_" not in text and "eyJ" not in text and "=" not in text and "authorization" not in text.lower():
        return text
    return _SECRETS.sub(lambda m: (m.group(1) or m.group(2) or "") + "[redacted]", text)


class JsonFormatter(logging.Formatter):
    _last: tuple[int, str] = (-1, "")

    def _second(self, seconds: int) -> str:
        """The formatted second, reused while it lasts (most lines of a busy server share one)."""
        if self._last[0] != seconds:
            self._last = (seconds, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)))
        return self._last[1]

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": f"{self._second(int(record.created))}.{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "pid": os.getpid(),  # which worker wrote it: `serve --workers N` runs N processes on one log
        }
        fields = record.__dict__
        for name in _EXTRA_FIELDS:
            if name in fields:
                entry[name] = fields[name]
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
    """Route every logger (ours, uvicorn's) through the JSON formatter on stderr, with one access line per
    request (Tokenward's) and the listening URL printed once (by ``serve``).

    Records skip what the JSON lines never show (caller frame, thread, process names): ~40% of the cost
    of a line, and the server writes one or two lines per request.
    """
    logging._srcfile = None  # documented in the logging HOWTO, "Optimization"
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
    logging.getLogger("uvicorn.error").filters[:] = [_drop_uvicorn_banner]
    # Tokenward's access line (request id, no query string) is the one per request: uvicorn's protocols log
    # theirs only while this logger has a handler somewhere up its chain.
    access = logging.getLogger("uvicorn.access")
    access.handlers[:] = []
    access.propagate = False


def _drop_uvicorn_banner(record: logging.LogRecord) -> bool:
    """``serve`` prints its URL itself; uvicorn's "running on URL (Press CTRL+C to quit)" would repeat it."""
    return "running on" not in str(record.msg) or "CTRL+C" not in str(record.msg)
