"""The client side of the device grant (RFC 8628) against a real ``tokenward serve`` on both backends:
``tokenward login --device`` in a subprocess while the test is the user on the /device page (HTTP forms),
then ``token``/``call``/``logout``; deny, expiry, ``slow_down`` honoured, Ctrl-C and task cancellation."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from tests.client.kit import ProtectedApi
from tests.device import add_device_client, decide_in_store, decide_over_http, device_row
from tests.support import TOKENWARD, ClientInfo, ServerProcess
from tokenward.client import MemoryTokenStore, default_store, discover
from tokenward.client.device import (
    DeviceAccessDeniedError,
    DeviceAuthorization,
    DeviceFlowCancelledError,
    Pending,
    device_login_async,
    poll_for_token,
    start_device_authorization,
)
from tokenward.client.discovery import ServerMetadata

pytestmark = pytest.mark.e2e
CODE_KEYS = {"user_code", "verification_uri", "verification_uri_complete", "expires_in", "interval"}


@pytest.fixture
def device_server(fresh_server: ServerProcess) -> ServerProcess:
    fresh_server.start(env={"TOKENWARD_DEVICE_POLL_INTERVAL": "1", "TOKENWARD_DEVICE_CODE_TTL": "30"})
    return fresh_server


def cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([TOKENWARD, *args], capture_output=True, text=True, timeout=timeout, env=dict(os.environ))


def start_login(server: ServerProcess, client: ClientInfo) -> tuple[subprocess.Popen[str], dict[str, object]]:
    """``tokenward login --device --json`` running; returns it and its first JSON line (the codes)."""
    proc = subprocess.Popen([TOKENWARD, "login", "--device", "--issuer", server.metadata()["issuer"],
                             "--client-id", client.client_id, "--scope", "profile:read", "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ))
    assert proc.stdout is not None
    codes = json.loads(proc.stdout.readline())
    return proc, codes


def finish(proc: subprocess.Popen[str], timeout: float = 30) -> tuple[int, dict[str, object], str]:
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, json.loads(out.strip().splitlines()[-1]), err


@pytest.fixture
def api(device_server: ServerProcess) -> Iterator[ProtectedApi]:
    metadata = device_server.metadata()
    protected = ProtectedApi(metadata["issuer"], metadata["jwks_uri"]).start()
    yield protected
    protected.stop()


def test_login_device_saves_tokens_that_token_call_and_logout_use_when_user_approves_on_page(
        device_server: ServerProcess, config_home: Path, api: ProtectedApi) -> None:
    client = add_device_client(device_server)
    user = device_server.add_user()
    proc, codes = start_login(device_server, client)
    assert set(codes) == CODE_KEYS, codes  # never the device code
    assert codes["verification_uri"] == device_server.metadata()["issuer"] + "/device"
    assert codes["interval"] == 1 and codes["expires_in"] == 30
    page = decide_over_http(device_server, str(codes["user_code"]), user)
    assert page.status_code == 200 and "Device signed in" in page.text, page.text
    code, outcome, err = finish(proc)
    assert code == 0, err
    assert outcome["outcome"] == "signed_in" and outcome["refresh_token"] is True
    assert outcome["scope"] == "profile:read"
    issuer = device_server.metadata()["issuer"]
    stored = default_store(issuer, client.client_id).load()
    assert stored is not None and stored.refresh_token
    for secret in (stored.access_token, stored.refresh_token):  # never printed
        assert secret not in err and secret not in json.dumps(outcome)
    token = cli("token")
    assert token.returncode == 0 and token.stdout.strip() == stored.access_token, token.stderr
    called = cli("call", api.url + "/user/profile")
    assert called.returncode == 0, called.stderr
    assert api.presented[-1] == stored.access_token
    out = cli("logout", "--json")
    assert out.returncode == 0 and json.loads(out.stdout)["revoked"] is True, out.stderr
    assert default_store(issuer, client.client_id).load() is None


def test_login_device_fails_with_access_denied_and_saves_nothing_when_user_denies(
        device_server: ServerProcess, config_home: Path) -> None:
    client = add_device_client(device_server)
    user = device_server.add_user()
    proc, codes = start_login(device_server, client)
    page = decide_over_http(device_server, str(codes["user_code"]), user, decision="deny")
    assert page.status_code == 200, page.text
    code, outcome, err = finish(proc)
    assert code == 1 and outcome["outcome"] == "access_denied", (outcome, err)
    assert "denied" in err
    assert default_store(device_server.metadata()["issuer"], client.client_id).load() is None


def test_login_device_fails_with_expired_token_when_nobody_approves_in_time(
        fresh_server: ServerProcess, config_home: Path) -> None:
    fresh_server.start(env={"TOKENWARD_DEVICE_POLL_INTERVAL": "1", "TOKENWARD_DEVICE_CODE_TTL": "3"})
    client = add_device_client(fresh_server)
    began = time.monotonic()
    proc, codes = start_login(fresh_server, client)
    assert codes["expires_in"] == 3
    code, outcome, err = finish(proc)
    assert code == 1 and outcome["outcome"] == "expired_token", (outcome, err)
    assert time.monotonic() - began < 10  # the deadline is expires_in, not the CLI's --timeout


def metadata_of(server: ServerProcess) -> ServerMetadata:
    return discover(server.metadata()["issuer"])


def test_poll_adds_five_seconds_after_slow_down_and_then_gets_the_tokens(fresh_server: ServerProcess) -> None:
    """The client is made to start below the server's interval (2 s): the second poll earns ``slow_down``;
    the next poll must wait 1 + 5 s, which the server (now at 7 s since the last accepted poll) accepts."""
    fresh_server.start(env={"TOKENWARD_DEVICE_POLL_INTERVAL": "2", "TOKENWARD_DEVICE_CODE_TTL": "60"})
    client = add_device_client(fresh_server)
    user = fresh_server.add_user()
    metadata = metadata_of(fresh_server)
    device = start_device_authorization(metadata, client.client_id, scope="profile:read")
    assert device.interval == 2
    answers: list[tuple[float, Pending]] = []

    def on_poll(pending: Pending) -> None:
        answers.append((time.monotonic(), pending))
        if pending.slow_down:
            decide_in_store(fresh_server, device.user_code, user)

    store = MemoryTokenStore()
    token = poll_for_token(metadata, client.client_id, replace(device, interval=1), store=store,
                           scope="profile:read", on_poll=on_poll)
    done = time.monotonic()
    assert [p for _, p in answers] == [Pending(1), Pending(6, slow_down=True)]
    assert done - answers[-1][0] >= 6.0  # 1 s + 5 s, kept after the slow_down
    assert store.load() == token and token.refresh_token
    assert device_row(fresh_server, device.device_code)["interval"] == 7  # the server grew it too


def test_poll_stops_at_once_with_cancelled_error_when_cancel_is_set(device_server: ServerProcess) -> None:
    client = add_device_client(device_server)
    metadata = metadata_of(device_server)
    device = start_device_authorization(metadata, client.client_id)
    cancel = threading.Event()
    threading.Timer(1.5, cancel.set).start()
    began = time.monotonic()
    store = MemoryTokenStore()
    with pytest.raises(DeviceFlowCancelledError):
        poll_for_token(metadata, client.client_id, replace(device, interval=10), store=store, cancel=cancel)
    assert 1.4 < time.monotonic() - began < 3.0
    assert store.load() is None


def test_login_device_exits_130_on_ctrl_c_and_saves_nothing(device_server: ServerProcess,
                                                             config_home: Path) -> None:
    client = add_device_client(device_server)
    proc, _ = start_login(device_server, client)
    time.sleep(1.5)
    proc.send_signal(signal.SIGINT)
    code, outcome, err = finish(proc, timeout=10)
    assert code == 130 and outcome == {"outcome": "cancelled", "error": "cancelled"}, err
    assert "Traceback" not in err
    assert default_store(device_server.metadata()["issuer"], client.client_id).load() is None


def test_async_device_login_stops_polling_when_task_is_cancelled(device_server: ServerProcess) -> None:
    client = add_device_client(device_server)
    metadata = metadata_of(device_server)
    store = MemoryTokenStore()
    polls: list[Pending] = []
    shown = asyncio.Event()

    async def go() -> None:
        task = asyncio.create_task(device_login_async(metadata, client.client_id, store=store,
                                                      on_codes=lambda _: shown.set(), on_poll=polls.append))
        await shown.wait()
        await asyncio.sleep(2.5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        count = len(polls)
        await asyncio.sleep(2.0)
        assert len(polls) == count >= 1  # no poll after the cancel

    asyncio.run(go())
    assert store.load() is None


def test_async_device_login_gets_tokens_and_raises_denied_after_deny(device_server: ServerProcess) -> None:
    client = add_device_client(device_server)
    user = device_server.add_user()
    metadata = metadata_of(device_server)

    async def go(decision: str) -> object:
        async def approve(device: object) -> None:
            code = device.user_code  # type: ignore[attr-defined]
            await asyncio.to_thread(decide_over_http, device_server, code, user, decision=decision)

        return await device_login_async(metadata, client.client_id, store=MemoryTokenStore(), on_codes=approve)

    token = asyncio.run(go("allow"))
    assert getattr(token, "access_token", None)
    with pytest.raises(DeviceAccessDeniedError):
        asyncio.run(go("deny"))


def test_login_device_draws_a_qr_code_only_when_stdout_is_a_terminal(device_server: ServerProcess,
                                                                       config_home: Path) -> None:
    import pty

    client = add_device_client(device_server)
    issuer = device_server.metadata()["issuer"]
    args = [TOKENWARD, "login", "--device", "--issuer", issuer, "--client-id", client.client_id]
    primary, secondary = pty.openpty()
    proc = subprocess.Popen(args, stdout=secondary, stderr=subprocess.DEVNULL, env=dict(os.environ))
    os.close(secondary)
    seen = b""
    try:  # a pty raises EIO once the child has closed it: what was read so far is checked below
        while seen.count(b"\n") < 12:
            chunk = os.read(primary, 4096)
            seen += chunk
            if not chunk:
                break
    except OSError:
        pass
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(10)
        os.close(primary)
    text = seen.decode()
    assert "/device?user_code=" in text and any(block in text for block in "▀▄█"), text
    piped = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=dict(os.environ))
    assert piped.stdout is not None
    lines = [piped.stdout.readline(), piped.stdout.readline()]
    piped.send_signal(signal.SIGINT)
    rest, _ = piped.communicate(timeout=10)
    assert not any(block in "".join(lines) + rest for block in "▀▄█"), lines


def test_confidential_client_signs_in_with_device_login_and_basic_auth(device_server: ServerProcess) -> None:
    from tokenward.client import ClientConfig
    from tokenward.client.device import device_login

    client = add_device_client(device_server, public=False)
    user = device_server.add_user()
    assert client.client_secret
    store = MemoryTokenStore()

    def approve(device: DeviceAuthorization) -> None:
        decide_over_http(device_server, device.user_code, user)

    token = device_login(metadata_of(device_server), ClientConfig(client.client_id, client.client_secret),
                         store=store, scope="profile:read", on_codes=approve)
    assert store.load() == token and token.scope == "profile:read"
