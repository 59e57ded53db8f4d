"""The shared listening socket of ``serve --workers N``: accepted connections get TCP_NODELAY on asyncio."""

from __future__ import annotations

import asyncio
import socket

import uvicorn

from tokenward.server.web.serving import _Config


async def _nodelay_of_accepted(listener: socket.socket) -> int:
    accepted: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    class Probe(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            sock = transport.get_extra_info("socket")
            accepted.set_result(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            transport.close()

    server = await asyncio.get_running_loop().create_server(Probe, sock=listener)
    try:
        _, writer = await asyncio.open_connection(*listener.getsockname()[:2])
        value = await asyncio.wait_for(accepted, 5)
        writer.close()
        return value
    finally:
        server.close()


def test_worker_socket_accepts_connections_with_tcp_nodelay_on_asyncio() -> None:
    listener = _Config("x:y", host="127.0.0.1", port=0).bind_socket()
    assert listener.proto == socket.IPPROTO_TCP
    assert asyncio.run(_nodelay_of_accepted(listener)) != 0


def test_uvicorns_own_worker_socket_lacks_it_which_is_why_serving_exists() -> None:
    """If uvicorn fixes this upstream, this test fails and serving._Config can go."""
    listener = uvicorn.Config("x:y", host="127.0.0.1", port=0).bind_socket()
    assert asyncio.run(_nodelay_of_accepted(listener)) == 0
