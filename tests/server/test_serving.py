"""The shared listening socket of ``serve --workers N`` (accepted connections get TCP_NODELAY on asyncio), and
what a running ``serve`` writes: its URL once, one access-log line per request."""

from __future__ import annotations

import asyncio
import json
import socket
import time
import uuid
from collections.abc import Iterator

import httpx2
import pytest
import uvicorn

from tests.conftest import dispose, new_server
from tests.support import ServerProcess
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


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = new_server(tmp_path_factory.mktemp("serving"))
    proc.start()
    yield proc
    dispose(proc)


def test_one_access_log_line_per_request(plain: ServerProcess) -> None:
    """Tokenward's own access line (request id, no query string) is the only one: uvicorn's is off."""
    path = f"/no-such-page-{uuid.uuid4().hex}"
    assert httpx2.get(plain.base_url + path).status_code == 404
    time.sleep(0.3)
    lines = [line for line in plain.log_text().splitlines() if path in line]
    assert len(lines) == 1, lines
    entry = json.loads(lines[0])
    assert entry["logger"] == "tokenward.access" and entry["status"] == 404


def test_serve_prints_its_url_once(plain: ServerProcess) -> None:
    startup = plain.log_text()
    assert startup.count(plain.base_url) == 1, [line for line in startup.splitlines() if plain.base_url in line]
    line = next(line for line in startup.splitlines() if plain.base_url in line)
    assert line.startswith(f"Tokenward serving {plain.base_url} (1 worker, db sqlite:///"), line
