"""The whole device sign-in as a person does it: ``tokenward login --device`` polls in a subprocess while a real
headless Chromium opens the printed verification URI, types the printed user code, signs in and allows; then
``tokenward token`` prints the saved access token. Chromium is launched as in test_code_flow_chromium.py."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.device import add_device_client
from tests.support import PASSWORD, TOKENWARD, ServerProcess
from tokenward.client import default_store

pytestmark = pytest.mark.browser


@pytest.fixture
def device_server(fresh_server: ServerProcess) -> Iterator[ServerProcess]:
    fresh_server.start(env={"TOKENWARD_DEVICE_POLL_INTERVAL": "1", "TOKENWARD_DEVICE_CODE_TTL": "60"})
    yield fresh_server


def test_chromium_user_enters_the_printed_code_and_tokenward_login_device_saves_tokens(
        device_server: ServerProcess, page: Page, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    with ThreadPoolExecutor(1) as pool:  # the admin helpers use asyncio.run; Playwright owns this thread's loop
        client = pool.submit(lambda: add_device_client(device_server, scope="profile:read")).result()
        user = pool.submit(device_server.add_user).result()
    issuer = device_server.metadata()["issuer"]
    proc = subprocess.Popen([TOKENWARD, "login", "--device", "--issuer", issuer, "--client-id", client.client_id,
                             "--scope", "profile:read"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ))
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()  # "Open <verification_uri> in a browser and enter the code <user_code>"
        uri, code = first.split()[1], first.split()[-1]
        second = proc.stdout.readline()  # "or open <verification_uri_complete>"
        assert second.strip() == f"or open {uri}?user_code={code}", second
        assert uri == issuer + "/device", first
        page.goto(uri)
        page.locator("#user_code").fill(code.lower().replace("-", ""))  # case- and hyphen-insensitive
        page.get_by_role("button", name="Continue").click()
        page.locator("#username").fill(user)
        page.locator("#password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("heading", name="Allow this device?")).to_be_visible()
        assert proc.poll() is None  # still polling: nothing is decided before Allow
        page.get_by_role("button", name="Allow").click()
        expect(page.get_by_role("heading", name="Device signed in")).to_be_visible()
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert "Signed in" in err
    token = default_store(issuer, client.client_id).load()
    assert token is not None and token.refresh_token and token.access_token not in out + err
    printed = subprocess.run([TOKENWARD, "token", "--json"], capture_output=True, text=True, timeout=30,
                             env=dict(os.environ))
    assert printed.returncode == 0 and json.loads(printed.stdout)["access_token"] == token.access_token
