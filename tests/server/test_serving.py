"""The shared listening socket of ``serve --workers N``: accepted connections get TCP_NODELAY on asyncio."""

from __future__ import annotations

import asyncio
import socket

import uvicorn

from tokenward.server.web.serving import _Config, with_tcp_proto


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


def test_a_socket_bound_with_proto_zero_is_reopened_so_accepted_connections_get_tcp_nodelay() -> None:
    """The shape uvicorn < 0.55 bound: the workaround must still turn TCP_NODELAY on for it."""
    bare = socket.socket(socket.AF_INET, socket.SOCK_STREAM, 0)
    bare.bind(("127.0.0.1", 0))
    bare.listen()
    assert bare.proto == 0
    fixed = with_tcp_proto(bare)
    assert fixed is not bare and fixed.proto == socket.IPPROTO_TCP
    assert asyncio.run(_nodelay_of_accepted(fixed)) != 0


def test_a_socket_that_already_says_tcp_is_used_as_it_is() -> None:
    """uvicorn >= 0.55 binds with IPPROTO_TCP: nothing to re-open, whatever uvicorn version is installed."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        assert with_tcp_proto(sock) is sock
    finally:
        sock.close()


def test_uvicorns_own_socket_is_handled_whichever_way_it_is_bound() -> None:
    listener = uvicorn.Config("x:y", host="127.0.0.1", port=0).bind_socket()
    assert asyncio.run(_nodelay_of_accepted(with_tcp_proto(listener))) != 0
