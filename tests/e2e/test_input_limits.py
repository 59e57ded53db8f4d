"""Input limits: oversized bodies, too many parameters, huge headers and slow clients get a precise 4xx,
never a 5xx, and never stop the server from serving others."""

from __future__ import annotations

import socket
import threading
import time

import httpx2

from tests.support import ServerProcess


def test_oversized_body_and_too_many_parameters_are_refused(server: ServerProcess) -> None:
    big = httpx2.post(server.base_url + "/token", content=b"grant_type=client_credentials&x=" + b"a" * 70_000,
                      headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert big.status_code == 413 and big.json()["error"] == "invalid_request"
    many = httpx2.post(server.base_url + "/token", content="&".join(f"p{i}=v" for i in range(100)).encode(),
                       headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert many.status_code == 400 and many.json()["error"] == "invalid_request"
    assert many.headers["cache-control"] == "no-store"


def test_huge_header_is_refused_without_server_error(server: ServerProcess) -> None:
    r = httpx2.post(server.base_url + "/token", data={"grant_type": "client_credentials"},
                    headers={"X-Padding": "a" * 100_000})
    assert 400 <= r.status_code < 500
    assert httpx2.get(server.base_url + "/jwks.json").status_code == 200


def test_slow_client_times_out_while_others_are_served(server: ServerProcess) -> None:
    host, port = server.base_url.removeprefix("http://").split(":")
    answer: list[bytes] = []

    def slow() -> None:
        with socket.create_connection((host, int(port))) as s:
            s.sendall(b"POST /token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
                      b"Content-Length: 100\r\n\r\ngrant_type=")
            s.settimeout(30)
            data = b""
            while b"}" not in data:  # headers and body may arrive in separate segments
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
            answer.append(data)

    thread = threading.Thread(target=slow)
    started = time.monotonic()
    thread.start()
    time.sleep(0.5)
    assert httpx2.get(server.base_url + "/jwks.json").status_code == 200  # not blocked by the slow one
    thread.join(timeout=40)
    assert answer and answer[0].startswith(b"HTTP/1.1 408")
    assert b'"error": "invalid_request"' in answer[0]
    assert 9 <= time.monotonic() - started < 30
