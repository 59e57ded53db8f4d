"""Limits at the HTTP layer, below the app: request-head size and deadline, and connections per IP.

uvicorn leaves these open: ``h11_max_incomplete_event_size`` binds only its h11 protocol (httptools, which
``http="auto"`` picks, buffers a head of any size), and no timer runs while a connection waits for a request
head (its keep-alive timer stops at the first byte), so slow or idle connections are held forever and fill
``limit_concurrency``. The two protocol classes here add, for httptools and h11 alike:

- a cap on the request head (request line and header fields): 431 beyond it (RFC 6585 §5);
- a deadline for each request head, armed when the connection is made and again after each response,
  cancelled only when the head is complete, never by bytes arriving (a slowloris sends a byte a second):
  408 and close (RFC 9110 §15.5.9), or a silent close when nothing arrived (RFC 9112 §9.5);
- a cap on open connections per client address (IPv6 grouped by /64, which one host usually owns), per
  worker process: the connection over it gets 503 and is closed before any byte is read.

Limits come from ``TOKENWARD_*`` variables through :class:`~tokenward.server.settings.Settings`, read once per
worker process (workers are spawned and get their settings through the environment).
"""

from __future__ import annotations

import asyncio
import json
import logging
from asyncio import TimerHandle
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from tokenward.server.addresses import address_group

log = logging.getLogger("tokenward.server")


@dataclass(frozen=True, slots=True)
class HttpLimits:
    max_header_bytes: int
    header_timeout: float
    max_connections_per_ip: int  # 0: no cap


@cache
def limits() -> HttpLimits:
    from tokenward.server.settings import Settings

    s = Settings.from_env()
    return HttpLimits(s.max_header_bytes, s.header_timeout_seconds, s.max_connections_per_ip)


# Open connections per address group in this worker process (one event loop: no lock needed).
_open: dict[str, int] = {}


def open_connections(group: str) -> int:
    return _open.get(group, 0)


def _response(status: int, reason: str, error: str, description: str, default_headers: list[tuple[bytes, bytes]],
              extra: tuple[tuple[bytes, bytes], ...] = ()) -> bytes:
    """A complete ``Connection: close`` response with an RFC 6749-style JSON error body."""
    body = json.dumps({"error": error, "error_description": description}).encode()
    lines = [f"HTTP/1.1 {status} {reason}".encode()]
    lines += [name + b": " + value for name, value in (*default_headers, *extra)]
    lines += [b"content-type: application/json", b"cache-control: no-store", b"connection: close",
              b"content-length: " + str(len(body)).encode()]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


class _Limited(asyncio.Protocol):
    """What both protocol classes add: placed before uvicorn's protocol in their bases, so ``super()`` here is
    uvicorn's httptools or h11 protocol. Each subclass adds only where its parser says a head is complete."""

    transport: asyncio.Transport
    loop: asyncio.AbstractEventLoop
    client: tuple[str, int] | None
    server_state: Any

    _head_timer: TimerHandle | None = None
    _awaiting_head = False
    _head_bytes = 0
    _group: str | None = None
    _refused = False  # over the per-IP cap, or answered 408/431: nothing more is parsed

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._admit()

    def connection_lost(self, exc: Exception | None) -> None:
        self._release()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self._feed(data, super().data_received)

    def _reject(self, response: bytes) -> None:
        """Send ``response`` and stop parsing. The write side is shut and what the client still sends is read
        and dropped for a second before closing: closing with unread bytes would make the kernel send a RST,
        which can destroy the response before the client reads it (RFC 9112 §9.6, lingering close)."""
        self._refused = True
        self._cancel_head_timer()
        self.transport.write(response)
        if self.transport.can_write_eof():
            self.transport.write_eof()
            self.loop.call_later(1.0, self.transport.close)
        else:
            self.transport.close()

    def _admit(self) -> bool:
        """Count the connection under its address group; False (503 sent, closing) when over the cap."""
        cap = limits().max_connections_per_ip
        if cap and self.client is not None:
            group = address_group(self.client[0])
            if _open.get(group, 0) >= cap:
                self._refused = True
                log.warning("connection refused: %d open from %s", cap, group, extra={"ip": group})
                self.transport.write(_response(
                    503, "Service Unavailable", "temporarily_unavailable", "too many connections from this address",
                    self.server_state.default_headers, ((b"retry-after", b"10"),)))
                self.transport.close()
                return False
            _open[group] = _open.get(group, 0) + 1
            self._group = group
        self._await_head()
        return True

    def _release(self) -> None:
        self._cancel_head_timer()
        if self._group is not None:
            left = _open.get(self._group, 1) - 1
            if left > 0:
                _open[self._group] = left
            else:
                _open.pop(self._group, None)
            self._group = None

    def _await_head(self) -> None:
        """The connection now waits for a request head: start its deadline."""
        self._awaiting_head = True
        self._head_bytes = 0
        self._cancel_head_timer()
        if not self.transport.is_closing():
            self._head_timer = self.loop.call_later(limits().header_timeout, self._head_timed_out)

    def _head_complete(self) -> None:
        self._awaiting_head = False
        self._cancel_head_timer()

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.transport.is_closing():
            return
        if self._head_bytes:
            self._reject(_response(408, "Request Timeout", "invalid_request", "request head not received in time",
                                   self.server_state.default_headers))
        else:
            self.transport.close()

    def _feed(self, data: bytes, feed: Callable[[bytes], None]) -> None:
        """Hand ``data`` to the parser, at most the head cap's worth while a head is incomplete: a head still
        incomplete at the cap is answered 431 without buffering more of it."""
        if self._refused or self.transport.is_closing():
            return  # a rejected connection's remaining bytes are dropped
        if not self._awaiting_head:
            feed(data)
            return
        room = limits().max_header_bytes - self._head_bytes
        if len(data) <= room:
            self._head_bytes += len(data)
            feed(data)
            return
        if room > 0:
            self._head_bytes += room
            feed(data[:room])
        if self.transport.is_closing():
            return
        if self._awaiting_head:
            self._reject(_response(431, "Request Header Fields Too Large", "invalid_request",
                                   "request header fields too large", self.server_state.default_headers))
            return
        feed(data[room:])


class LimitedHttpToolsProtocol(_Limited, HttpToolsProtocol):
    """uvicorn's httptools protocol with the limits of this module."""

    def on_headers_complete(self) -> None:
        self._head_complete()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        # A queued pipelined request already has its head; otherwise the next head is awaited.
        pipelined = bool(self.pipeline)
        super().on_response_complete()
        if not pipelined and not self.transport.is_closing():
            self._await_head()


class LimitedH11Protocol(_Limited, H11Protocol):
    """uvicorn's h11 protocol with the limits of this module."""

    def handle_events(self) -> None:
        # h11 yields a Request event once the whole head is parsed; it starts a new cycle.
        before = self.cycle
        super().handle_events()
        if self.cycle is not before:
            self._head_complete()

    def on_response_complete(self) -> None:
        if not self.transport.is_closing():
            self._await_head()  # before the parent's handle_events, which may find a buffered head
        super().on_response_complete()
