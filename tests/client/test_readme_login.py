"""The README's client example, run as the README prints it: ``tokenward login`` (the real command; the user's
steps done over HTTP by ``browse_login``), then the README's ``BearerAuth.from_login`` loop in its own Python
process against the real ``tokenward demo-api``. Only the placeholders are replaced (issuer, client id, API
address); the loop runs unchanged, its ``time.sleep(5)`` included, across a token renewal."""

from __future__ import annotations

import ast
import base64
import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.client.kit import LOOPBACK, ROOT, audit_events, browse_login, settled
from tests.e2e.test_guard import start_demo_api
from tests.support import PASSWORD, TOKENWARD, ServerProcess
from tokenward.client import default_store

pytestmark = pytest.mark.e2e

# Renewal is due after 75 % of a token's lifetime (a quarter of it, at most 60 s, is kept in hand): a 5-second
# token is renewed 3.75 s after it was issued, so the loop's second turn, 5 s after its first, renews.
TTL = 5


def readme_example() -> str:
    """The README's Python block that uses ``BearerAuth.from_login``."""
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.DOTALL)
    matching = [block for block in blocks if "BearerAuth.from_login(" in block]
    assert len(matching) == 1, "README.md must have one Python example of BearerAuth.from_login"
    return str(matching[0])


def fill_in(code: str, **placeholders: str) -> str:
    for placeholder, value in placeholders.items():
        assert placeholder in code, f"the README example no longer contains {placeholder!r}"
        code = code.replace(placeholder, value)
    return code


@pytest.fixture
def demo_api(server: ServerProcess) -> Iterator[str]:
    proc, base = start_demo_api(server.base_url)
    yield base
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(timeout=10)


def tokenward_login(issuer: str, client_id: str, user: str) -> None:
    """``tokenward login --issuer … --client-id … --scope profile:read``, as the README says (``--no-browser``:
    the user's browser is ``browse_login``)."""
    proc = subprocess.Popen([TOKENWARD, "login", "--issuer", issuer, "--client-id", client_id, "--scope",
                             "profile:read", "--no-browser", "--timeout", "30"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ))
    try:
        assert proc.stdout is not None
        page = browse_login(proc.stdout.readline().strip(), user, PASSWORD)
        assert page.status_code == 200 and "Signed in" in page.text
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err


def subject_of(access_token: str) -> Any:
    segment = access_token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))["sub"]


def test_readme_from_login_loop_calls_demo_api_and_renews_by_itself_after_tokenward_login(
        server: ServerProcess, demo_api: str, config_home: Path) -> None:
    # README step 1: a public client with a loopback redirect that may read profiles, and a user
    client = server.add_client(public=True, redirect_uri=LOOPBACK, scope="profile:read", access_token_ttl=TTL)
    user = server.add_user()
    issuer = server.metadata()["issuer"]
    tokenward_login(issuer, client.client_id, user)
    first = default_store(issuer, client.client_id).load()
    assert first is not None and first.refresh_token

    code = fill_in(readme_example(), **{"http://127.0.0.1:8000": issuer, "<CLIENT_ID>": client.client_id,
                                        "http://127.0.0.1:8001": demo_api})
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"}, start_new_session=True)
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        while sum(line.startswith("{") for line in lines) < 2:  # two turns of the loop: two profiles printed
            line = proc.stdout.readline()
            assert line, f"the README example stopped: {lines} {proc.communicate(timeout=10)[1]}"
            lines.append(line.strip())
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # the loop is `while True`
        proc.wait(timeout=10)

    profiles = [ast.literal_eval(line) for line in lines if line.startswith("{")]
    assert profiles[0] == profiles[1]
    assert profiles[0]["id"] == subject_of(first.access_token) and profiles[0]["display_name"]
    renewals = lines.count("renewed; refresh token rotated")
    assert renewals >= 1 and len(lines) == 2 + renewals, lines
    assert lines.index("renewed; refresh token rotated") < len(lines) - 1  # renewed before the second call

    renewed = default_store(issuer, client.client_id).load()  # the rotated refresh token was saved
    assert renewed is not None and renewed.refresh_token not in (None, first.refresh_token)
    assert renewed.access_token != first.access_token
    assert settled(lambda: audit_events(server, client.client_id, "token.refreshed"), renewals) == renewals
