"""A real headless Chromium plays the user of the device flow (RFC 8628) while a device polls the token endpoint
in a thread: open ``verification_uri_complete`` (the code is pre-filled), continue, sign in, read the consent
page (client, scopes, time, IP, user agent, the warning), Allow or Deny. Chromium is Debian's
``/usr/bin/chromium``, launched as in tests/browser/test_code_flow_chromium.py.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx2
import pytest
from playwright.sync_api import Page, expect

from tests.device import DEVICE_GRANT, add_device_client, start
from tests.support import PASSWORD, ClientInfo, ServerProcess

pytestmark = pytest.mark.browser

WARNING = "Only continue if you started this sign-in yourself on a device you own"


@pytest.fixture
def device_server(fresh_server: ServerProcess) -> Iterator[ServerProcess]:
    fresh_server.start(env={"TOKENWARD_DEVICE_POLL_INTERVAL": "1", "TOKENWARD_DEVICE_CODE_TTL": "60"})
    yield fresh_server


@dataclass
class Poller:
    """A device polling at its interval, honouring slow_down (+5 s), until an answer other than pending."""

    server: ServerProcess
    client: ClientInfo
    device_code: str
    interval: int
    answers: list[str] = field(default_factory=list)
    result: dict[str, Any] = field(default_factory=dict)
    done: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        with httpx2.Client() as http:
            while not self.done.is_set():
                time.sleep(self.interval)
                try:
                    r = http.post(self.server.base_url + "/token", data={
                        "grant_type": DEVICE_GRANT, "device_code": self.device_code,
                        "client_id": self.client.client_id})
                except httpx2.HTTPError:  # the server is gone (the test failed and stopped it)
                    self.done.set()
                    return
                body = r.json()
                self.answers.append(body.get("error", "ok"))
                if body.get("error") == "slow_down":
                    self.interval += 5
                elif body.get("error") != "authorization_pending":
                    self.result = body
                    self.done.set()


def begin(server: ServerProcess) -> tuple[ClientInfo, str, dict[str, Any], Poller, threading.Thread]:
    with ThreadPoolExecutor(1) as pool:  # the admin helpers use asyncio.run; Playwright owns this thread's loop
        client = pool.submit(lambda: add_device_client(server, scope="profile:read")).result()
        user = pool.submit(server.add_user).result()
    body = start(server, client, headers={"User-Agent": "tw-set-top-box/1.0"})
    poller = Poller(server, client, body["device_code"], body["interval"])
    thread = threading.Thread(target=poller.run, daemon=True)
    thread.start()
    return client, user, body, poller, thread


def sign_in_and_reach_consent(tab: Page, server: ServerProcess, body: dict[str, Any], user: str) -> None:
    tab.goto(body["verification_uri_complete"])
    expect(tab.locator("#user_code")).to_have_value(body["user_code"])
    tab.get_by_role("button", name="Continue").click()
    tab.locator("#username").fill(user)
    tab.locator("#password").fill(PASSWORD)
    tab.get_by_role("button", name="Sign in").click()
    expect(tab.get_by_role("heading", name="Allow this device?")).to_be_visible()
    expect(tab.get_by_text(WARNING)).to_be_visible()
    expect(tab.locator(".device-ip")).to_have_text("127.0.0.1")
    expect(tab.locator(".device-user-agent")).to_have_text("tw-set-top-box/1.0")
    expect(tab.locator(".device-time")).to_contain_text("UTC")
    expect(tab.get_by_text("Read your profile")).to_be_visible()


def test_chromium_approves_a_device_that_is_polling_and_the_device_gets_tokens(
        device_server: ServerProcess, page: Page) -> None:
    _, user, body, poller, thread = begin(device_server)
    sign_in_and_reach_consent(page, device_server, body, user)
    assert not poller.done.is_set()
    page.get_by_role("button", name="Allow").click()
    expect(page.get_by_role("heading", name="Device signed in")).to_be_visible()
    assert poller.done.wait(20)
    thread.join(5)
    assert poller.result.get("access_token") and poller.result.get("scope") == "profile:read"
    assert set(poller.answers[:-1]) <= {"authorization_pending"} and poller.answers[-1] == "ok"


def test_chromium_denies_and_the_polling_device_gets_access_denied(
        device_server: ServerProcess, page: Page) -> None:
    _, user, body, poller, thread = begin(device_server)
    sign_in_and_reach_consent(page, device_server, body, user)
    page.get_by_role("button", name="Deny").click()
    expect(page.get_by_role("heading", name="Request denied")).to_be_visible()
    assert poller.done.wait(20)
    thread.join(5)
    assert poller.result.get("error") == "access_denied"


def test_chromium_shows_a_clear_message_for_a_wrong_code(device_server: ServerProcess,
                                                          page: Page) -> None:
    page.goto(device_server.base_url + "/device")
    page.locator("#user_code").fill("bcdf-ghjk")
    page.get_by_role("button", name="Continue").click()
    expect(page.get_by_role("alert")).to_contain_text("This code is not valid")
