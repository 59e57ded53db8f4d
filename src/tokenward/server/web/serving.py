"""Run the app under uvicorn: in this process, or as N worker processes sharing one listening socket.

uvicorn before 0.55 bound the shared socket with ``proto=0``; accepted sockets inherit it, and asyncio sets
TCP_NODELAY only on sockets whose ``proto`` says TCP. Without it the second write of a response (headers,
then body) waits for the client's delayed ACK: ~44 ms per request, 700 instead of 1,600 to 2,500
client-credentials requests/s at ``--workers 2`` on the asyncio loop (uvloop sets TCP_NODELAY itself).
uvicorn 0.55 binds with ``IPPROTO_TCP``; the socket is then used as it is (feature detection, not a version
check, so a fix or a regression upstream is handled either way).

Connections are served by the protocol classes of ``http_limits`` (head size and deadline, connections per
IP), on httptools when it is installed (what ``http="auto"`` would pick), else on h11.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import sys
from typing import Any

import uvicorn
from uvicorn.config import STARTUP_FAILURE
from uvicorn.supervisors import Multiprocess

log = logging.getLogger("tokenward.server")


def with_tcp_proto(sock: socket.socket) -> socket.socket:
    """``sock`` itself when its ``proto`` already says TCP (or it is not a TCP socket); otherwise re-opened
    from its file descriptor, so that Python reads the real protocol and asyncio sets TCP_NODELAY."""
    if sock.family not in (socket.AF_INET, socket.AF_INET6) or sock.proto == socket.IPPROTO_TCP:
        return sock
    log.debug("uvicorn bound the listening socket with proto=%d; re-opened so that TCP_NODELAY applies",
              sock.proto)
    return socket.socket(fileno=sock.detach())


def limited_protocol(parser: str = "auto") -> type[asyncio.Protocol]:
    """uvicorn's ``parser`` protocol with Tokenward's HTTP limits; ``auto``: httptools when it is installed
    (what uvicorn's ``http="auto"`` picks), else h11."""
    from tokenward.server.web import http_limits

    if parser == "h11":
        return http_limits.LimitedH11Protocol
    if parser == "httptools":
        return http_limits.LimitedHttpToolsProtocol
    try:
        import httptools  # noqa: F401
    except ImportError:  # pragma: no cover - uvicorn[standard] installs it
        return http_limits.LimitedH11Protocol
    return http_limits.LimitedHttpToolsProtocol


class _Config(uvicorn.Config):
    def bind_socket(self) -> socket.socket:
        return with_tcp_proto(super().bind_socket())

    def load(self) -> None:
        """uvicorn's load, with its TLS context (``ssl_certfile``) held to TLS 1.2 or later whatever the
        Python or OpenSSL defaults (RFC 9325 §3.1.1: no TLS 1.0 or 1.1)."""
        super().load()
        if self.ssl is not None:
            self.ssl.minimum_version = ssl.TLSVersion.TLSv1_2


def run(app: str, *, workers: int, **options: Any) -> None:
    """``uvicorn.run(app, factory=True, workers=workers, **options)`` with the listening socket fixed and the
    HTTP limits applied (``http=`` in ``options`` overrides the protocol)."""
    options.setdefault("http", limited_protocol())
    config = _Config(app, factory=True, workers=workers, **options)
    server = uvicorn.Server(config)
    try:
        if workers > 1:
            Multiprocess(config, sockets=[config.bind_socket()]).run()
        else:
            config.load_app()
            server.run()
    except KeyboardInterrupt:
        pass
    if workers == 1 and not server.started:
        sys.exit(STARTUP_FAILURE)
