"""Sign-in for machines without a browser: the device authorization grant (RFC 8628).

The steps are sans-IO like ``flow.py`` (build a request, parse an answer) so the rules are tested from a table;
``device_login`` and ``device_login_async`` carry the bytes. Polling waits ``interval`` seconds between
requests, adds 5 s for good on every ``slow_down`` (§3.5), doubles the wait after a network timeout (§3.5), and
stops at ``expires_in`` (§3.2) or when the caller cancels. Tokens are saved to the store exactly as the
loopback login saves them, so renewal and ``tokenward token``/``call``/``logout`` work unchanged.
Used by: ``cli.py`` (``tokenward login --device``).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx2

from tokenward.client.discovery import ServerMetadata
from tokenward.client.errors import (
    DeviceAccessDeniedError,
    DeviceCodeExpiredError,
    DeviceFlowCancelledError,
    DeviceFlowError,
    DiscoveryError,
    TokenEndpointError,
    server_text,
)
from tokenward.client.flow import ClientConfig, HttpRequest, HttpResponse, Token, parse_token_response, token_request
from tokenward.client.store import TokenStore

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
DEFAULT_INTERVAL = 5  # §3.2: the client waits 5 s when the server names no interval
SLOW_DOWN_STEP = 5  # §3.5: "the interval MUST be increased by 5 seconds for this and all subsequent requests"


@dataclass(frozen=True, slots=True)
class DeviceAuthorization:
    """A device authorization response (RFC 8628 §3.2), with the absolute expiry.

    ``device_code`` is a credential: it never appears in ``repr``, and only ``public()`` is ever printed.
    """

    device_code: str = field(repr=False)
    user_code: str
    verification_uri: str
    verification_uri_complete: str | None
    expires_in: int
    interval: int
    expires_at: float

    def public(self) -> dict[str, Any]:
        """What the user (and ``--json``) may see: everything but the device code."""
        return {"user_code": self.user_code, "verification_uri": self.verification_uri,
                "verification_uri_complete": self.verification_uri_complete, "expires_in": self.expires_in,
                "interval": self.interval}


def device_authorization_request(endpoint: str, client: ClientConfig, scope: str | None = None,
                                 resource: str | None = None) -> HttpRequest:
    """POST to the device authorization endpoint (§3.1), the client authenticated as at the token endpoint."""
    params: dict[str, str] = {}
    if scope:
        params["scope"] = scope
    if resource:
        params["resource"] = resource
    return token_request(endpoint, client, params)


def _json(response: HttpResponse) -> object:
    try:
        return json.loads(response.body.decode("utf-8")) if response.body else None
    except (UnicodeDecodeError, ValueError):
        return None


def _positive_int(value: object, default: int | None) -> int | None:
    if isinstance(value, str) and value.isdigit():  # some servers send strings
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    return default


def parse_device_authorization_response(response: HttpResponse, *, now: float | None = None) -> DeviceAuthorization:
    """The §3.2 answer, or a ``TokenEndpointError`` for a §3.2-style error (same format as RFC 6749 §5.2)."""
    now = time.time() if now is None else now
    body = _json(response)
    if response.status != 200:
        if isinstance(body, dict) and isinstance(body.get("error"), str) and response.status < 500:
            raise TokenEndpointError(body["error"], str(body.get("error_description") or ""),
                                     status=response.status)
        raise TokenEndpointError("server_error", "unexpected answer from the device authorization endpoint",
                                 status=response.status, transient=True)
    if not isinstance(body, dict):
        raise TokenEndpointError("invalid_response", "the device authorization response is not a JSON object",
                                 status=200)
    for name in ("device_code", "user_code", "verification_uri"):
        if not isinstance(body.get(name), str) or not body[name]:
            raise TokenEndpointError("invalid_response", f"the device authorization response has no {name}",
                                     status=200)
    expires_in = _positive_int(body.get("expires_in"), None)
    if expires_in is None:
        raise TokenEndpointError("invalid_response", "the device authorization response has no expires_in",
                                 status=200)
    complete = body.get("verification_uri_complete")
    return DeviceAuthorization(
        device_code=body["device_code"], user_code=body["user_code"], verification_uri=body["verification_uri"],
        verification_uri_complete=complete if isinstance(complete, str) and complete else None,
        expires_in=expires_in, interval=_positive_int(body.get("interval"), DEFAULT_INTERVAL) or DEFAULT_INTERVAL,
        expires_at=now + expires_in)


def device_token_request(token_endpoint: str, client: ClientConfig, device_code: str) -> HttpRequest:
    """One poll of the token endpoint (§3.4)."""
    return token_request(token_endpoint, client, {"grant_type": DEVICE_GRANT, "device_code": device_code})


@dataclass(frozen=True, slots=True)
class Pending:
    """The user has not decided yet: poll again after ``interval`` seconds (grown on ``slow_down``)."""

    interval: int
    slow_down: bool = False


def parse_poll_response(response: HttpResponse, interval: int, *, now: float | None = None,
                        scope: str | None = None) -> Token | Pending:
    """A poll's answer (§3.5): tokens, ``Pending`` (``authorization_pending`` / ``slow_down``), or an error:
    ``DeviceAccessDeniedError``, ``DeviceCodeExpiredError``, else what ``parse_token_response`` raises."""
    if response.status == 400:
        body = _json(response)
        error = body.get("error") if isinstance(body, dict) else None
        description = server_text(body.get("error_description") or "") if isinstance(body, dict) else ""
        if error == "authorization_pending":
            return Pending(interval)
        if error == "slow_down":
            return Pending(interval + SLOW_DOWN_STEP, slow_down=True)
        if error == "access_denied":
            raise DeviceAccessDeniedError(description)
        if error == "expired_token":
            raise DeviceCodeExpiredError(description)
    return parse_token_response(response, now=now, requested_scope=scope)


def _response(reply: httpx2.Response) -> HttpResponse:
    return HttpResponse(reply.status_code, {k.lower(): v for k, v in reply.headers.items()}, reply.content)


def _endpoint(metadata: ServerMetadata) -> str:
    if metadata.device_authorization_endpoint is None:
        raise DiscoveryError("the server's metadata has no device_authorization_endpoint (RFC 8628 §4)")
    return metadata.device_authorization_endpoint


class _Poller:
    """The polling state shared by the sync and async drivers: the interval and the deadline."""

    def __init__(self, device: DeviceAuthorization, scope: str | None,
                 on_poll: Callable[[Pending], None] | None) -> None:
        self.device = device
        self.scope = scope
        self.interval = device.interval
        self.on_poll = on_poll
        self.polls = 0

    def wait_for(self, now: float) -> float:
        """Seconds to wait before the next poll; ``DeviceCodeExpiredError`` when that would pass the deadline."""
        if now + self.interval > self.device.expires_at:
            raise DeviceCodeExpiredError("the code expired before it was approved: start again")
        return float(self.interval)

    def timed_out(self) -> None:
        """§3.5: on a connection timeout the client SHOULD back off exponentially."""
        self.interval *= 2

    def answer(self, response: HttpResponse) -> Token | None:
        self.polls += 1
        outcome = parse_poll_response(response, self.interval, scope=self.scope)
        if isinstance(outcome, Pending):
            self.interval = outcome.interval
            if self.on_poll is not None:
                self.on_poll(outcome)
            return None
        return outcome


def start_device_authorization(metadata: ServerMetadata, client: ClientConfig | str, *, scope: str | None = None,
                               resource: str | None = None, http: httpx2.Client | None = None) -> DeviceAuthorization:
    """Ask for a device code and a user code (§3.1)."""
    client = ClientConfig(client) if isinstance(client, str) else client
    request = device_authorization_request(_endpoint(metadata), client, scope, resource)
    own = http is None
    sender = http or httpx2.Client(timeout=30)
    try:
        reply = sender.post(request.url, headers=dict(request.headers), content=request.body)
    finally:
        if own:
            sender.close()
    return parse_device_authorization_response(_response(reply))


def poll_for_token(metadata: ServerMetadata, client: ClientConfig | str, device: DeviceAuthorization, *,
                   store: TokenStore, scope: str | None = None, http: httpx2.Client | None = None,
                   cancel: threading.Event | None = None, on_poll: Callable[[Pending], None] | None = None,
                   sleep: Callable[[float], None] | None = None) -> Token:
    """Poll until the user decides, then save the tokens to ``store``.

    ``cancel`` (set from another thread) or Ctrl-C stop the wait at once; ``sleep`` replaces the wait (the CLI
    uses it to animate a countdown). Raises ``DeviceAccessDeniedError``, ``DeviceCodeExpiredError``,
    ``DeviceFlowCancelledError`` or the token endpoint's error.
    """
    client = ClientConfig(client) if isinstance(client, str) else client
    cancel = cancel or threading.Event()
    poller = _Poller(device, scope, on_poll)
    request = device_token_request(metadata.token_endpoint, client, device.device_code)
    own = http is None
    sender = http or httpx2.Client(timeout=30)
    try:
        while True:
            delay = poller.wait_for(time.time())
            if sleep is not None:
                sleep(delay)
            if cancel.wait(0 if sleep is not None else delay):
                raise DeviceFlowCancelledError()
            try:
                reply = sender.post(request.url, headers=dict(request.headers), content=request.body)
            except httpx2.TimeoutException:
                poller.timed_out()
                continue
            token = poller.answer(_response(reply))
            if token is not None:
                store.save(token)
                return token
    finally:
        if own:
            sender.close()


def device_login(metadata: ServerMetadata, client: ClientConfig | str, *, store: TokenStore,
                 scope: str | None = None, on_codes: Callable[[DeviceAuthorization], None] | None = None,
                 http: httpx2.Client | None = None, cancel: threading.Event | None = None,
                 on_poll: Callable[[Pending], None] | None = None) -> Token:
    """Start a device authorization, hand the codes to ``on_codes`` (show them), poll, save the tokens."""
    device = start_device_authorization(metadata, client, scope=scope, http=http)
    if on_codes is not None:
        on_codes(device)
    return poll_for_token(metadata, client, device, store=store, scope=scope, http=http, cancel=cancel,
                          on_poll=on_poll)


async def device_login_async(metadata: ServerMetadata, client: ClientConfig | str, *, store: TokenStore,
                             scope: str | None = None,
                             on_codes: Callable[[DeviceAuthorization], Awaitable[None] | None] | None = None,
                             http: httpx2.AsyncClient | None = None,
                             on_poll: Callable[[Pending], None] | None = None) -> Token:
    """``device_login`` for async code; cancelling the task stops the polling at its next await."""
    client = ClientConfig(client) if isinstance(client, str) else client
    own = http is None
    sender = http or httpx2.AsyncClient(timeout=30)
    try:
        request = device_authorization_request(_endpoint(metadata), client, scope)
        reply = await sender.post(request.url, headers=dict(request.headers), content=request.body)
        device = parse_device_authorization_response(_response(reply))
        if on_codes is not None:
            shown = on_codes(device)
            if shown is not None:
                await shown
        poller = _Poller(device, scope, on_poll)
        poll = device_token_request(metadata.token_endpoint, client, device.device_code)
        while True:
            await asyncio.sleep(poller.wait_for(time.time()))
            try:
                reply = await sender.post(poll.url, headers=dict(poll.headers), content=poll.body)
            except httpx2.TimeoutException:
                poller.timed_out()
                continue
            token = poller.answer(_response(reply))
            if token is not None:
                store.save(token)
                return token
    finally:
        if own:
            await sender.aclose()


__all__ = ["DEVICE_GRANT", "DeviceAccessDeniedError", "DeviceAuthorization", "DeviceCodeExpiredError",
           "DeviceFlowCancelledError", "DeviceFlowError", "Pending", "device_authorization_request", "device_login",
           "device_login_async", "device_token_request", "parse_device_authorization_response",
           "parse_poll_response", "poll_for_token", "start_device_authorization"]
