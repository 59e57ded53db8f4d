"""Audit events: one JSON line per event, in order, with request id, client, subject and IP — no secrets."""

from __future__ import annotations

import json
import subprocess

import httpx2

from tests.support import TOKENWARD, ServerProcess, authorize, exchange_code


def audit_events(log: str) -> list[dict[str, object]]:
    events = []
    for line in log.splitlines():
        if line.startswith("{"):
            entry = json.loads(line)
            if entry.get("logger") == "tokenward.audit":
                events.append(entry)
    return events


def test_full_flow_writes_audit_events_in_order_without_secrets(fresh_server: ServerProcess) -> None:
    server = fresh_server
    server.start()
    client = server.add_client()
    user = server.add_user()
    with httpx2.Client(base_url=server.base_url, follow_redirects=False) as browser:
        auth = authorize(server, client, user, browser=browser)
    tokens = exchange_code(server, client, auth).json()
    rotated = server.token(client, {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}).json()
    server.token(client, {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]})  # grace retry
    server.token(client, {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]})  # reuse
    assert client.client_secret
    httpx2.post(server.base_url + "/introspect", data={"token": rotated["access_token"]},
                auth=(client.client_id, client.client_secret))
    httpx2.post(server.base_url + "/revoke", data={"token": rotated["refresh_token"]},
                auth=(client.client_id, client.client_secret))
    server.stop()

    events = audit_events(server.log_text())
    names = [e["event"] for e in events]
    assert names == ["login.succeeded", "consent.granted", "token.issued", "token.refreshed", "token.refreshed",
                     "refresh.reuse_detected", "token.introspected", "token.revoked"]
    for event in events:
        assert event["client_id"] == client.client_id
        assert isinstance(event["request_id"], str) and event["ip"] == "127.0.0.1"
    assert {e["sub"] for e in events if e["event"] != "token.introspected" and "sub" in e} == {
        events[0]["sub"]}
    log = server.log_text()
    for secret in server.secrets_seen:
        assert secret not in log


def test_admin_commands_write_audit_events_to_stderr(tmp_path: object) -> None:
    db = f"sqlite:///{tmp_path}/a.db"
    added = subprocess.run([TOKENWARD, "clients", "add", "x", "--grant-type", "client_credentials", "--db", db,
                            "--json"], capture_output=True, text=True, check=True)
    secret = json.loads(added.stdout)["client_secret"]
    events = audit_events(added.stderr)
    assert [e["event"] for e in events] == ["client.created"]
    assert secret not in added.stderr
