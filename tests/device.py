"""Helpers for device-grant tests (RFC 8628) against a running ``tokenward serve``: register a device client,
start a device authorization, poll, and approve or deny it — through the real verification page over HTTP
forms (``decide_over_http``), or straight in the server's database (``decide_in_store``) where a test is about
the polling side only.
"""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any
from urllib.parse import urlencode

import httpx2

from tests.support import PASSWORD, ClientInfo, ServerProcess
from tokenward.protocol.device import normalize_user_code
from tokenward.server.crypto import token_hash
from tokenward.server.store.sql.store import SqlStore

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"


def add_device_client(server: ServerProcess, *, public: bool = True, refresh: bool = True,
                      scope: str = "profile:read profile:write") -> ClientInfo:
    """A client registered for the device grant (and the refresh grant unless ``refresh=False``)."""
    grants = (DEVICE_GRANT, "refresh_token") if refresh else (DEVICE_GRANT,)
    return server.add_client(public=public, redirect_uri=None, grant_types=grants, scope=scope)


def device_authorization(server: ServerProcess, client: ClientInfo | None, data: dict[str, str] | None = None,
                         *, basic: bool = True, headers: dict[str, str] | None = None) -> httpx2.Response:
    """POST /device_authorization, authenticating ``client`` like ``ServerProcess.token`` does."""
    auth = None
    form = dict(data or {})
    if client is not None:
        if client.client_secret and basic:
            auth = httpx2.BasicAuth(client.client_id, client.client_secret)
        else:
            form["client_id"] = client.client_id
            if client.client_secret:
                form["client_secret"] = client.client_secret
    headers = {"Content-Type": "application/x-www-form-urlencoded", **(headers or {})}  # also for an empty form
    r = httpx2.post(server.base_url + "/device_authorization", content=urlencode(form), auth=auth, headers=headers,
                    verify=server.verify)
    if r.status_code == 200:
        server.secrets_seen.append(r.json()["device_code"])
    return r


def start(server: ServerProcess, client: ClientInfo, scope: str | None = "profile:read",
          headers: dict[str, str] | None = None) -> dict[str, Any]:
    """A new device authorization; returns the §3.2 response body."""
    r = device_authorization(server, client, {"scope": scope} if scope is not None else {}, headers=headers)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def poll(server: ServerProcess, client: ClientInfo, device_code: str) -> httpx2.Response:
    return server.token(client, {"grant_type": DEVICE_GRANT, "device_code": device_code})


def decide_in_store(server: ServerProcess, user_code: str, username: str, *, approve: bool = True) -> None:
    """Approve or deny a pending request as ``username`` directly in the database (no page involved)."""
    normalized = normalize_user_code(user_code)
    assert normalized is not None

    async def go() -> None:
        store = SqlStore.from_url(server.db_url)
        try:
            async with store.transaction(write=True) as tx:
                device = await tx.get_device_authorization_by_user_code(token_hash(normalized))
                user = await tx.get_user_by_username(username)
                assert device is not None and user is not None
                assert await tx.decide_device_authorization(device.device_code_hash, approved=approve,
                                                            user_id=user.id, now=int(time.time()))
        finally:
            await store.close()

    asyncio.run(go())


def page_fields(html: str) -> dict[str, str]:
    """The hidden fields of the page's form (csrf_token, user_code)."""
    return dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', html))


def decide_over_http(server: ServerProcess, user_code: str, username: str, *, password: str = PASSWORD,
                     decision: str = "allow", browser: httpx2.Client | None = None,
                     via_complete_uri: bool = True) -> httpx2.Response:
    """Be the user at the verification page with a cookie-keeping HTTP client: open ``/device`` (with the code
    pre-filled, as from ``verification_uri_complete``), submit the code, sign in if the browser is not signed
    in yet, then choose ``decision``. Returns the last page (200 "Device signed in" / "Request denied")."""
    own = browser is None
    browser = browser or httpx2.Client(base_url=server.base_url, follow_redirects=False, verify=server.verify)
    try:
        page = browser.get("/device", params={"user_code": user_code} if via_complete_uri else None)
        assert page.status_code == 200, page.text
        fields = page_fields(page.text)
        page = browser.post("/device", data={**fields, "user_code": user_code})
        assert page.status_code == 200, page.text
        if 'name="password"' in page.text:
            page = browser.post("/device", data={**page_fields(page.text), "username": username,
                                                 "password": password})
            assert page.status_code == 200, page.text
        assert 'name="decision"' in page.text, page.text
        return browser.post("/device", data={**page_fields(page.text), "decision": decision})
    finally:
        if own:
            browser.close()


def device_row(server: ServerProcess, device_code: str) -> dict[str, Any]:
    """The request's row as the database holds it (status, interval, …)."""
    hashed = token_hash(device_code).hex()
    literal = f"X'{hashed}'" if server.db_url.startswith("sqlite") else f"'\\x{hashed}'::bytea"
    rows = server.query(f"SELECT status, interval, last_poll_ms, user_id, ip, user_agent FROM device_authorizations "
                        f"WHERE device_code_hash = {literal}")
    assert len(rows) == 1, rows
    status, interval, last_poll_ms, user_id, ip, user_agent = rows[0]
    return {"status": status, "interval": interval, "last_poll_ms": last_poll_ms, "user_id": user_id, "ip": ip,
            "user_agent": user_agent}


__all__ = ["DEVICE_GRANT", "PASSWORD", "add_device_client", "decide_in_store", "decide_over_http",
           "device_authorization", "device_row", "page_fields", "poll", "start"]
