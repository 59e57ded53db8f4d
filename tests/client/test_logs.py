"""No access token, refresh token, code or secret in any log line, with every logger at DEBUG (the client's own
and httpx2, httpx, httpcore, urllib3, filelock, keyring), across login, proactive and 401-driven refresh,
the requests adapter, client credentials, the encrypted store and a refused refresh."""

from __future__ import annotations

import asyncio
import logging
import threading
import traceback
from pathlib import Path

import httpx
import httpx2
import pytest
import requests

from tests.client.kit import LOOPBACK, ProtectedApi, browse_login, expired
from tests.support import PASSWORD, ServerProcess
from tokenward.client import (
    BearerAuth,
    EncryptedFileTokenStore,
    KeyFileKey,
    LoginRequiredError,
    MemoryTokenStore,
    PassphraseKey,
    login,
)
from tokenward.client.discovery import discover

pytestmark = pytest.mark.e2e
BROWSER = "simulated-browser"
LOGGERS = ["tokenward", "httpx2", "httpx", "httpcore", "httpcore2", "urllib3", "filelock", "keyring", "asyncio"]


def test_debug_logs_hold_no_token_code_or_secret_when_client_does_everything(
        server: ServerProcess, api: ProtectedApi, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    for name in LOGGERS:
        caplog.set_level(logging.DEBUG, logger=name)
    secrets: list[str] = [PASSWORD, "log-test-passphrase"]
    metadata = discover(server.metadata()["issuer"])

    # login through the loopback listener, with a passphrase-protected encrypted file
    client = server.add_client(public=True, redirect_uri=LOOPBACK)
    user = server.add_user()
    store = EncryptedFileTokenStore(tmp_path / "t.json", key=PassphraseKey("log-test-passphrase"))
    pages: list[httpx2.Response] = []

    def browser(url: str) -> None:  # the user's browser, not the client: its own log lines are left out below
        threading.Thread(target=lambda: pages.append(browse_login(url, user, PASSWORD)), daemon=True,
                         name=BROWSER).start()

    token = login(metadata, client.client_id, store=store, scope="profile:read", open_browser=None, on_url=browser)
    secrets += [token.access_token, token.refresh_token or "", str(pages[0].url.params["code"])]

    # proactive refresh with httpx2, then 401-driven refresh with httpx (sync and async)
    store.save(expired(token))
    auth = BearerAuth(metadata.token_endpoint, client.client_id, store=store)
    with httpx2.Client(auth=auth) as http:
        assert http.get(api.url + "/user/profile").status_code == 200
    current = auth.manager.current()
    assert current is not None
    secrets += [current.access_token, current.refresh_token or ""]
    api.reject.add(current.access_token)
    with httpx.Client(auth=auth) as legacy:
        assert legacy.get(api.url + "/user/profile").status_code == 200

    async def async_call() -> int:
        async with httpx2.AsyncClient(auth=auth) as http:
            return (await http.get(api.url + "/user/profile")).status_code

    current = auth.manager.current()
    assert current is not None
    secrets += [current.access_token, current.refresh_token or ""]
    api.reject.add(current.access_token)
    assert asyncio.run(async_call()) == 200

    # the requests adapter, 401-driven
    current = auth.manager.current()
    assert current is not None
    secrets += [current.access_token, current.refresh_token or ""]
    api.reject.add(current.access_token)
    assert requests.get(api.url + "/user/profile", auth=auth.requests_auth(), timeout=10).status_code == 200
    current = auth.manager.current()
    assert current is not None
    secrets += [current.access_token, current.refresh_token or ""]

    # a confidential client with client credentials
    service = server.add_client(redirect_uri=LOOPBACK, grant_types=("client_credentials",))
    assert service.client_secret is not None
    secrets.append(service.client_secret)
    cc = BearerAuth.for_client_credentials(metadata.issuer, service.client_id, service.client_secret,
                                           metadata=metadata)
    with httpx2.Client(auth=cc) as http:
        assert http.get(api.url + "/user/profile").status_code == 200
    cc_token = cc.manager.current()
    assert cc_token is not None
    secrets.append(cc_token.access_token)

    # a refused refresh: the stored refresh token was already used
    stale = EncryptedFileTokenStore(tmp_path / "stale.json", key=KeyFileKey(tmp_path / "key"))
    stale.save(expired(token))  # its refresh token was rotated away above
    dead = BearerAuth(metadata.token_endpoint, client.client_id, store=stale)
    with httpx2.Client(auth=dead) as http, pytest.raises(LoginRequiredError) as refused:
        http.get(api.url + "/user/profile")
    memory = BearerAuth(metadata.token_endpoint, client.client_id, store=MemoryTokenStore())
    with pytest.raises(LoginRequiredError) as missing:
        memory.token()

    records = [r for r in caplog.records if r.threadName != BROWSER]
    assert len(records) < len(caplog.records)
    texts = [record.getMessage() for record in records]
    texts += [repr(record.args) for record in records]
    texts += ["".join(traceback.format_exception(e.value)) for e in (refused, missing)]
    texts += [repr(o) for o in (auth, auth.manager, cc, store, token, current, stale, dead, memory)]
    secrets = [s for s in secrets if s]
    assert len(secrets) >= 15
    for text in texts:
        for secret in secrets:
            assert secret not in text, f"a secret leaked into: {text[:200]!r}"
    joined = "\n".join(texts)
    assert "access token renewed" in joined and "HTTP Request: POST" in joined  # DEBUG capture really ran
    assert "refresh token rotated and saved" in joined and "invalid_grant" in joined
