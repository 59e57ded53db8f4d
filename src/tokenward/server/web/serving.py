"""Run the app under uvicorn: in this process, or as N worker processes sharing one listening socket.

uvicorn before 0.55 bound the shared socket with ``proto=0``; accepted sockets inherit it, and asyncio sets
TCP_NODELAY only on sockets whose ``proto`` says TCP. Without it the second write of a response (headers,
then body) waits for the client's delayed ACK: ~44 ms per request, 700 instead of 1,600 to 2,500
client-credentials requests/s at ``--workers 2`` on the asyncio loop (uvloop sets TCP_NODELAY itself).
uvicorn 0.55 binds with ``IPPROTO_TCP``; the socket is then used as it is (feature detection, not a version
check, so a fix or a regression upstream is handled either way).

With ``workers > 1`` on Linux every worker listens on a socket of its own, bound with ``SO_REUSEPORT``, and
the kernel spreads new connections over them by address hash. One shared socket let whichever worker woke
first accept a whole burst (asyncio accepts up to the backlog per wake-up): 600 of 640 requests on 32
keep-alive connections went to one of two workers, one core did the work (issue #17). Elsewhere the
workers share one socket as before.

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


def reuse_port_socket(family: int, address: tuple[str, int]) -> socket.socket:
    """A TCP socket bound to ``address`` with ``SO_REUSEPORT`` (not yet listening: the server listens)."""
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(address)
    return sock


class PerWorkerListener(socket.socket):
    """The supervisor's stand-in for the listening socket. It is bound with ``SO_REUSEPORT`` but never
    listens, so it holds the port (a bind error shows at once, and across worker restarts) without joining
    the group the kernel balances over. uvicorn's supervisor pickles its sockets into each worker it
    starts; this one unpickles as a new socket bound to the same address, the worker's own."""

    def __reduce__(self) -> tuple[Any, ...]:
        return reuse_port_socket, (self.family, self.getsockname()[:2])

    @classmethod
    def reserve(cls, host: str, port: int) -> PerWorkerListener:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = cls(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            sock.close()
            log.error("cannot listen on %s port %d: %s", host, port, exc)
            sys.exit(STARTUP_FAILURE)
        return sock


def balances_by_reuse_port() -> bool:
    """Linux spreads connections over ``SO_REUSEPORT`` listeners; BSD and macOS accept the option but
    give every connection to the last one bound."""
    return sys.platform == "linux" and hasattr(socket, "SO_REUSEPORT")


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
            listener = (PerWorkerListener.reserve(config.host, config.port) if balances_by_reuse_port()
                        else config.bind_socket())
            Multiprocess(config, sockets=[listener]).run()
        else:
            config.load_app()
            server.run()
    except KeyboardInterrupt:
        pass
    if workers == 1 and not server.started:
        sys.exit(STARTUP_FAILURE)
