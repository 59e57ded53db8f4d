"""Run the app under uvicorn: in this process, or as N worker processes sharing one listening socket.

uvicorn binds the shared socket with ``proto=0``; accepted sockets inherit it, and asyncio sets TCP_NODELAY
only on sockets whose ``proto`` says TCP. Without it the second write of a response (headers, then body)
waits for the client's delayed ACK: ~44 ms per request, 700 instead of 1,600 to 2,500 client-credentials
requests/s at ``--workers 2`` on the asyncio loop (uvloop sets TCP_NODELAY itself).
"""

from __future__ import annotations

import socket
import sys
from typing import Any

import uvicorn
from uvicorn.config import STARTUP_FAILURE
from uvicorn.supervisors import Multiprocess


class _Config(uvicorn.Config):
    def bind_socket(self) -> socket.socket:
        sock = super().bind_socket()
        if sock.family not in (socket.AF_INET, socket.AF_INET6):
            return sock
        return socket.socket(fileno=sock.detach())  # re-opened: Python reads family, type and proto from the fd


def run(app: str, *, workers: int, **options: Any) -> None:
    """``uvicorn.run(app, factory=True, workers=workers, **options)`` with the listening socket fixed."""
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
