"""``tokenward login --no-browser`` completed by a real headless Chromium: the command prints the authorization
URL alone on one stdout line, the browser signs in and allows, the loopback listener receives the redirect,
and the command exits 0 with the tokens stored. Chromium is Debian's; never run ``playwright install``."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.client.kit import CHROMIUM, CHROMIUM_ARGS, LOOPBACK, ProtectedApi
from tests.support import PASSWORD, TOKENWARD, ServerProcess
from tokenward.client import default_store

pytestmark = [pytest.mark.browser, pytest.mark.e2e]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(f"Chromium not found at {CHROMIUM}: apt-get install -y chromium (never `playwright install`)",
                    pytrace=False)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context()
    pg = context.new_page()
    pg.set_default_timeout(15_000)
    yield pg
    context.close()


def test_cli_login_completes_in_chromium_and_stores_tokens_when_user_allows(
        server: ServerProcess, api: ProtectedApi, page: Page, config_home: Path) -> None:
    with ThreadPoolExecutor(1) as pool:  # sync Playwright owns this thread's event loop; admin uses asyncio.run
        client = pool.submit(lambda: server.add_client(public=True, redirect_uri=LOOPBACK)).result()
        user = pool.submit(server.add_user).result()
    issuer = server.metadata()["issuer"]
    proc = subprocess.Popen([TOKENWARD, "login", "--issuer", issuer, f"--client-id={client.client_id}",
                             "--scope", "profile:read", "--no-browser", "--timeout", "60"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ))
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert re.fullmatch(re.escape(server.metadata()["authorization_endpoint"]) + r"\?\S+", url), url

        page.goto(url)
        page.get_by_label("Username").fill(user)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("heading", name="Allow access?")).to_be_visible()
        page.get_by_role("button", name="Allow").click()
        expect(page).to_have_url(re.compile(r"^http://127\.0\.0\.1:\d+/callback\?"))
        expect(page.get_by_role("heading", name="Signed in")).to_be_visible()

        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert out == ""  # stdout held the URL line alone
    assert "Signed in" in err
    token = default_store(issuer, client.client_id).load()
    assert token is not None and token.refresh_token and token.scope == "profile:read"
    claims = api.verify(token.access_token)
    assert claims is not None and claims["client_id"] == client.client_id
    assert token.access_token not in err and (token.refresh_token or "") not in err
