"""Audit events: one JSON line per event, in order, with request id, client, subject and IP — no secrets."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import httpx2

from tests.device import add_device_client, decide_over_http, page_fields
from tests.device import start as start_device
from tests.support import (
    PASSWORD,
    TOKENWARD,
    ClientInfo,
    ServerProcess,
    authorize,
    exchange_code,
    hidden_fields,
)
from tokenward.protocol import pkce


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


ROOT = Path(__file__).resolve().parents[2]


def documented_events() -> set[str]:
    """The event names docs/operations.md lists under "Audit events"."""
    text = (ROOT / "docs" / "operations.md").read_text()
    section = text.split("## Audit events", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"`([a-z_]+\.[a-z_]+)`", section)) - {"tokenward.audit"}  # the logger's name


def emitted_events() -> set[str]:
    """Every event name the source passes to ``audit(...)``: a literal first argument, or the literals of an
    ``event = ...`` expression passed as ``audit(event, ...)``."""
    names: set[str] = set()
    for path in (ROOT / "src" / "tokenward").rglob("*.py"):
        source = path.read_text()
        for expr in re.findall(r"\baudit\(([^,)]*)", source) + re.findall(r"\bevent = (.*)", source):
            names |= set(re.findall(r'"([a-z_]+\.[a-z_]+)"', expr))
    return names


def test_every_emitted_audit_event_is_documented_and_every_documented_one_is_emitted() -> None:
    assert len(documented_events()) >= 17
    assert emitted_events() == documented_events()


def cli(*args: str, db: str, kek: Path, stdin: str | None = None) -> tuple[str, list[dict[str, object]]]:
    """Run an admin command; its stdout and the audit events on its stderr."""
    run = subprocess.run([TOKENWARD, *args, "--db", db], input=stdin, capture_output=True, text=True, timeout=60,
                         env={**os.environ, "TOKENWARD_KEK_FILE": str(kek)})
    assert run.returncode == 0, run.stderr
    return run.stdout, audit_events(run.stderr)


def test_every_documented_audit_event_is_written_by_what_triggers_it(fresh_server: ServerProcess) -> None:
    """Drive each documented event through the real server and the real CLI; each line names its event, and
    the server's carry the request id and IP."""
    server = fresh_server
    # rate limits on, with a device session locked at its 2nd wrong user code (device.code_guessing_locked)
    server.start(env={"TOKENWARD_RATE_LIMITS": "on", "TOKENWARD_RATE_LIMIT_DEVICE_SESSION": "2/300/1"})
    db, kek = server.db_url, server.workdir / "tokenward.kek"
    seen: dict[str, list[dict[str, object]]] = {}

    def record(ran: tuple[str, list[dict[str, object]]]) -> str:
        for e in ran[1]:
            seen.setdefault(str(e["event"]), []).append(e)
        return ran[0]

    record(cli("clients", "add", "audited", "--redirect-uri", "https://app.example/cb", "--scope", "profile:read",
               "--json",
               db=db, kek=kek))
    client_id = str(seen["client.created"][0]["client_id"])
    secret = json.loads(record(cli("clients", "rotate-secret", client_id, "--json", db=db, kek=kek)))["client_secret"]
    client = ClientInfo(client_id, secret, "https://app.example/cb", public=False)
    record(cli("users", "add", "audrey", "--password-stdin", stdin=PASSWORD + "\n", db=db, kek=kek))
    record(cli("users", "update", "audrey", "--email", "audrey@example.com", db=db, kek=kek))

    with httpx2.Client(base_url=server.base_url, follow_redirects=False) as browser:
        denied = authorize(server, client, "audrey", browser=browser, decision="deny")
        assert denied.params["error"] == "access_denied"
    with httpx2.Client(base_url=server.base_url, follow_redirects=False) as browser:
        start = browser.get("/authorize", params={
            "response_type": "code", "client_id": client_id, "redirect_uri": "https://app.example/cb",
            "state": "s", "code_challenge": pkce.s256(pkce.new_verifier()), "code_challenge_method": "S256"})
        form = hidden_fields(browser.get(start.headers["location"]).text)
        assert browser.post("/login", data={**form, "username": "audrey", "password": "nope"}).status_code == 401
    auth = authorize(server, client, "audrey")
    tokens = exchange_code(server, client, auth).json()
    assert exchange_code(server, client, auth).json()["error"] == "invalid_grant"  # code replay
    tokens = exchange_code(server, client, authorize(server, client, "audrey")).json()
    rotated = server.token(client, {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}).json()
    httpx2.post(server.base_url + "/introspect", data={"token": rotated["access_token"]}, auth=(client_id, secret))
    httpx2.post(server.base_url + "/revoke", data={"token": rotated["access_token"]}, auth=(client_id, secret))
    reused = exchange_code(server, client, authorize(server, client, "audrey")).json()["refresh_token"]
    server.token(client, {"grant_type": "refresh_token", "refresh_token": reused})
    server.token(client, {"grant_type": "refresh_token", "refresh_token": reused})  # grace retry (30 s)
    server.token(client, {"grant_type": "refresh_token", "refresh_token": reused})  # reuse

    device_client = add_device_client(server)
    device_user = server.add_user()
    approved, denied_device = start_device(server, device_client), start_device(server, device_client)
    decide_over_http(server, approved["user_code"], device_user)
    decide_over_http(server, denied_device["user_code"], device_user, decision="deny")
    with httpx2.Client(base_url=server.base_url, follow_redirects=False) as browser:
        page = browser.get("/device")
        guesses = [browser.post("/device", data={**page_fields(page.text), "user_code": "ZZZZ-ZZZZ"})
                   for _ in range(2)]
        assert [g.status_code for g in guesses] == [400, 429]

    grants = json.loads(record(cli("grants", "list", "--user", "audrey", "--json", db=db, kek=kek)))
    record(cli("grants", "revoke", str(grants[0]["id"]), db=db, kek=kek))
    record(cli("grants", "revoke", "--user", "audrey", db=db, kek=kek))
    with httpx2.Client(base_url=server.base_url, follow_redirects=False) as browser:  # the account page
        exchange_code(server, client, authorize(server, client, "audrey", browser=browser))
        form = hidden_fields(browser.get("/account").text)
        assert browser.post("/account", data={**form, "revoke": client_id}).status_code == 303
        assert browser.post("/account", data={**form, "sign_out": "yes"}).status_code == 200
    record(cli("users", "set-password", "audrey", "--password-stdin", stdin=PASSWORD + "!\n", db=db, kek=kek))
    new_kid = json.loads(record(cli("keys", "rotate", "--alg", "ES256", "--json", db=db, kek=kek)))[0]["kid"]
    record(cli("keys", "revoke", new_kid, db=db, kek=kek))
    record(cli("users", "remove", "audrey", db=db, kek=kek))
    record(cli("clients", "remove", client_id, db=db, kek=kek))
    server.stop()
    served = audit_events(server.log_text())
    record(("", served))

    assert documented_events() <= set(seen), f"never written: {sorted(documented_events() - set(seen))}"
    for e in served:
        assert isinstance(e["request_id"], str) and e["ip"] == "127.0.0.1", e
    for name in ("client.removed", "login.failed", "consent.denied", "code.replay_detected", "grant.revoked_by_user"):
        assert name in seen and all(e["client_id"] == client_id for e in seen[name]), name
    # one grant.revoked for the single grant, and one for ``grants revoke --user`` (the user's remaining grants)
    one, every = seen["grant.revoked"]
    assert one["client_id"] == client_id and one["sub"] == every["sub"] and "grants of the user" in str(every["reason"])
    assert {e.get("active") for e in seen["token.introspected"]} == {True}
    log = server.log_text()
    for value in [secret, PASSWORD, *server.secrets_seen]:
        assert value not in log
