"""The client's device flow (RFC 8628) against node-oidc-provider, an independent server with its own
``deviceFlow`` feature: ``tokenward login --device`` in a subprocess while the test is the user on the
provider's own pages (code confirmation, development login, consent) over HTTP forms; deny, expiry, and the
spacing of the polls as the provider saw them (its default interval: 5 s, RFC 8628 §3.2).

node and npm must be installed; oidc-provider comes from npm as for the benchmark (bench/token_bench.py).
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx2
import pytest

from tests.support import TOKENWARD, free_port
from tokenward.client import default_store

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(shutil.which("npm") is None, reason="needs node and npm")]
HERE = Path(__file__).parent
CLIENT_ID = "tokenward-device-cli"


@dataclass
class NodeProvider:
    issuer: str
    log: Path
    process: subprocess.Popen[bytes]

    def polls(self) -> list[float]:
        """When the provider received each POST /token, in seconds (its own clock)."""
        return [int(m) / 1000 for m in re.findall(r"^poll (\d+)$", self.log.read_text(), flags=re.M)]


def start_provider(tmp: Path, ttl: int = 60) -> NodeProvider:
    from bench.token_bench import install_oidc_provider

    script = install_oidc_provider().parent / "node_oidc_device.mjs"
    shutil.copyfile(HERE / "node_oidc_device.mjs", script)
    port = free_port()
    log = tmp / "node-oidc.log"
    process = subprocess.Popen(["node", str(script), str(port), CLIENT_ID], stdout=log.open("wb"),
                               stderr=subprocess.STDOUT, env={**os.environ, "DEVICE_TTL": str(ttl)},
                               cwd=script.parent)
    issuer = f"http://127.0.0.1:{port}"
    for _ in range(100):
        if "listening" in log.read_text():
            return NodeProvider(issuer, log, process)
        time.sleep(0.1)
    process.kill()
    raise RuntimeError(log.read_text())


@pytest.fixture
def config_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``XDG_CONFIG_HOME`` for this test (the CLI keeps tokens in ``<it>/tokenward``)."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    return tmp_path / "config"


@pytest.fixture
def provider(tmp_path: Path) -> Iterator[NodeProvider]:
    started = start_provider(tmp_path)
    yield started
    started.process.terminate()
    started.process.wait(10)


def hidden(html: str) -> dict[str, str]:
    return dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', html))


def be_the_user(provider: NodeProvider, complete_uri: str, *, approve: bool = True) -> str:
    """Open ``verification_uri_complete`` and click through the provider's own pages; returns the last page."""
    with httpx2.Client(follow_redirects=True) as browser:
        page = browser.get(complete_uri)  # an auto-submitting form carrying the code
        page = browser.post(provider.issuer + "/device", data=hidden(page.text))
        assert "Confirm Device" in page.text, page.text
        fields = hidden(page.text)
        if not approve:
            fields.pop("confirm")
            fields["abort"] = "yes"
        page = browser.post(provider.issuer + "/device", data=fields)
        for _ in range(4):
            if not approve or "Sign-in Success" in page.text:
                break
            action = re.findall(r'<form[^>]*action="([^"]+)"', page.text)[0]
            data = hidden(page.text)
            if 'name="login"' in page.text:
                data |= {"login": "alice", "password": "any"}
            page = browser.post(action, data=data)
        return page.text


def login(provider: NodeProvider) -> tuple[subprocess.Popen[str], dict[str, object]]:
    proc = subprocess.Popen([TOKENWARD, "login", "--device", "--issuer", provider.issuer, "--client-id", CLIENT_ID,
                             "--scope", "openid", "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ))
    assert proc.stdout is not None
    return proc, json.loads(proc.stdout.readline())


def finish(proc: subprocess.Popen[str], timeout: float = 60) -> tuple[int, dict[str, object], str]:
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, json.loads(out.strip().splitlines()[-1]), err


def test_login_device_against_node_oidc_provider_polls_every_5_s_and_saves_tokens(
        provider: NodeProvider, config_home: Path) -> None:
    proc, codes = login(provider)
    assert set(codes) == {"user_code", "verification_uri", "verification_uri_complete", "expires_in", "interval"}
    assert codes["interval"] == 5  # the provider names none: §3.2's default
    time.sleep(6)  # let one poll be answered authorization_pending first
    assert "Sign-in Success" in be_the_user(provider, str(codes["verification_uri_complete"]))
    code, outcome, err = finish(proc)
    assert code == 0 and outcome["outcome"] == "signed_in", err
    polls = provider.polls()
    assert len(polls) >= 2
    assert all(b - a >= 4.9 for a, b in itertools.pairwise(polls)), polls  # never faster than 5 s
    token = default_store(provider.issuer, CLIENT_ID).load()
    assert token is not None and token.access_token not in err
    printed = subprocess.run([TOKENWARD, "token"], capture_output=True, text=True, timeout=30)
    assert printed.returncode == 0 and printed.stdout.strip() == token.access_token, printed.stderr


def test_login_device_against_node_oidc_provider_reports_access_denied_on_abort(
        provider: NodeProvider, config_home: Path) -> None:
    proc, codes = login(provider)
    be_the_user(provider, str(codes["verification_uri_complete"]), approve=False)
    code, outcome, err = finish(proc)
    assert code == 1 and outcome["outcome"] == "access_denied", (outcome, err)
    assert default_store(provider.issuer, CLIENT_ID).load() is None


def test_login_device_against_node_oidc_provider_gives_up_at_expires_in(tmp_path: Path, config_home: Path) -> None:
    provider = start_provider(tmp_path, ttl=7)
    try:
        began = time.monotonic()
        proc, codes = login(provider)
        assert codes["expires_in"] == 7
        code, outcome, err = finish(proc)
        assert code == 1 and outcome["outcome"] == "expired_token", (outcome, err)
        assert time.monotonic() - began < 15
    finally:
        provider.process.terminate()
        provider.process.wait(10)
