"""HTTP-layer limits of a real ``tokenward serve`` (web/http_limits.py), on the httptools and h11 parsers alike:
request-head size (431) and deadline (408 or close), keep-alive idle timeout, connections per client address.

The HTTP layer does not touch the database: these run on SQLite only.
"""

from __future__ import annotations

import contextlib
import resource
import socket
import time
from collections.abc import Iterator

import httpx2
import pytest

from tests.conftest import dispose, new_server
from tests.support import ServerProcess

HEAD_TIMEOUT = 2.5
KEEP_ALIVE = 1
CAP = 8
PARSERS = ["httptools", "h11"]


@pytest.fixture(scope="module", params=PARSERS)
def limited(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = new_server(tmp_path_factory.mktemp(f"limits-{request.param}"))
    proc.start(env={"TOKENWARD_HTTP_PARSER": request.param, "TOKENWARD_HEADER_TIMEOUT_SECONDS": str(HEAD_TIMEOUT),
                    "TOKENWARD_KEEP_ALIVE_SECONDS": str(KEEP_ALIVE), "TOKENWARD_MAX_CONNECTIONS_PER_IP": str(CAP)})
    yield proc
    dispose(proc)


def address(server: ServerProcess) -> tuple[str, int]:
    host, port = server.base_url.removeprefix("http://").split(":")
    return host, int(port)


def connect(server: ServerProcess, source: str = "127.0.0.1") -> socket.socket:
    sock = socket.socket()
    sock.bind((source, 0))
    sock.connect(address(server))
    return sock


def read_until_closed(sock: socket.socket, limit: float) -> tuple[bytes, float]:
    """Everything the server sends until it closes, and when it closed (seconds from now); fails after
    ``limit`` seconds of an open connection."""
    start = time.monotonic()
    sock.settimeout(limit)
    got = b""
    try:
        while chunk := sock.recv(65536):
            got += chunk
    except TimeoutError:
        pytest.fail(f"connection still open after {limit} s (got {got[:200]!r})")
    except ConnectionResetError:
        pass
    return got, time.monotonic() - start


GET = b"GET /jwks.json HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


def read_response(sock: socket.socket) -> bytes:
    """One complete response (headers and Content-Length body) from a keep-alive connection."""
    sock.settimeout(5)
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length")))
    while len(body) < length:
        body += sock.recv(65536)
    return head


def dribble(sock: socket.socket, start: float) -> bytes:
    """Send a header line every 0.3 s until the server closes; what it answered. Fails when the connection is
    still open well past the head deadline."""
    got = b""
    sock.settimeout(0.3)
    while time.monotonic() - start < HEAD_TIMEOUT + 5:
        try:
            sock.sendall(b"X-Slow: a\r\n")
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        except (BrokenPipeError, ConnectionResetError):
            return got
        if not chunk:
            return got
        got += chunk
    pytest.fail(f"request head still accepted {HEAD_TIMEOUT + 5} s after it began")


def test_an_idle_connection_is_closed_at_the_head_deadline(limited: ServerProcess) -> None:
    with connect(limited) as sock:
        got, after = read_until_closed(sock, HEAD_TIMEOUT + 5)
    assert got == b""  # nothing was sent: closed without a response (RFC 9112 §9.5)
    assert HEAD_TIMEOUT - 0.5 < after < HEAD_TIMEOUT + 2


def test_a_slowloris_dribbling_header_bytes_is_cut_at_the_deadline(limited: ServerProcess) -> None:
    """Bytes arriving do not extend the deadline: a header line every 0.3 s is cut at the head deadline."""
    with connect(limited) as sock:
        start = time.monotonic()
        sock.sendall(b"GET /jwks.json HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        got = dribble(sock, start)
        after = time.monotonic() - start
    assert got.startswith(b"HTTP/1.1 408 "), got[:200]
    assert HEAD_TIMEOUT - 0.5 < after < HEAD_TIMEOUT + 2


def test_each_head_on_a_keep_alive_connection_has_the_deadline(limited: ServerProcess) -> None:
    with connect(limited) as sock:
        sock.sendall(GET)
        assert read_response(sock).startswith(b"HTTP/1.1 200 ")
        start = time.monotonic()
        sock.sendall(b"GET /jwks.json HTTP/1.1\r\n")  # stops the keep-alive idle timer; the head deadline runs
        got = dribble(sock, start)
        after = time.monotonic() - start
    assert got.startswith(b"HTTP/1.1 408 "), got[:200]
    assert HEAD_TIMEOUT - 0.5 < after < HEAD_TIMEOUT + 2


def test_an_idle_keep_alive_connection_is_closed_after_the_idle_timeout(limited: ServerProcess) -> None:
    with connect(limited) as sock:
        sock.sendall(GET)
        assert read_response(sock).startswith(b"HTTP/1.1 200 ")
        got, after = read_until_closed(sock, HEAD_TIMEOUT + 5)
    assert got == b""
    assert after < KEEP_ALIVE + 1 < HEAD_TIMEOUT


@pytest.mark.parametrize("size", [32 * 1024, 1024 * 1024])
def test_headers_over_16_kib_are_answered_431(limited: ServerProcess, size: int) -> None:
    with connect(limited) as sock:
        head = b"GET /jwks.json HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        filler = b"".join(b"X-Fill-%05d: %s\r\n" % (i, b"a" * 1000) for i in range(size // 1015 + 1))
        # The server may stop reading at the cap; its answer is already on the way.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(head + filler + b"\r\n")
        got, _ = read_until_closed(sock, 5)
    assert got.startswith(b"HTTP/1.1 431 "), got[:200]
    assert b"cache-control: no-store" in got.lower() and b'"error": "invalid_request"' in got


def test_headers_just_under_the_cap_are_accepted(limited: ServerProcess) -> None:
    r = httpx2.get(limited.base_url + "/jwks.json", headers={"X-Fill": "a" * 15000})
    assert r.status_code == 200


def test_the_connection_over_the_per_ip_cap_is_refused(limited: ServerProcess) -> None:
    held = [connect(limited) for _ in range(CAP)]
    try:
        time.sleep(0.3)  # let the server accept every one of them
        with connect(limited) as extra:
            got, _ = read_until_closed(extra, 5)
        assert got.startswith(b"HTTP/1.1 503 "), got[:200]
        assert b"retry-after:" in got.lower()
        # The held connections are served; closing one makes room for a new one.
        held[0].sendall(GET)
        assert read_response(held[0]).startswith(b"HTTP/1.1 200 ")
        held.pop(0).close()
        time.sleep(0.3)
        with connect(limited) as again:
            again.sendall(GET)
            assert read_response(again).startswith(b"HTTP/1.1 200 ")
    finally:
        for sock in held:
            sock.close()


@pytest.fixture(scope="module")
def defaults(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """The default limits, but a head deadline long enough that idle sockets stay open during the test."""
    proc = new_server(tmp_path_factory.mktemp("limits-defaults"))
    proc.start(env={"TOKENWARD_HEADER_TIMEOUT_SECONDS": "60"})
    yield proc
    dispose(proc)


def test_a_thousand_idle_sockets_from_one_address_do_not_stop_another(defaults: ServerProcess) -> None:
    """Before the cap, 1,000 idle connections filled uvicorn's ``limit_concurrency`` and every request got 503;
    now 127.0.0.1 holds at most 256 and 127.0.0.2 (bound explicitly, loopback routes all of 127/8) is served."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 2048:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(4096, hard), hard))
    idle = []
    try:
        for _ in range(1000):
            idle.append(connect(defaults, "127.0.0.1"))
        time.sleep(0.5)
        idle[-1].settimeout(5)
        assert idle[-1].recv(100).startswith(b"HTTP/1.1 503 ")  # the 1,000th is over the cap of 256
        with httpx2.Client(transport=httpx2.HTTPTransport(local_address="127.0.0.2"), timeout=5) as other:
            r = other.get(defaults.base_url + "/jwks.json")
        assert r.status_code == 200, r.text
    finally:
        for sock in idle:
            sock.close()
