"""The real ``tokenward`` command: admin commands, JSON output, and one-line errors."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import httpx2

from tests.support import TOKENWARD, ServerProcess


def tw(*args: str, db: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([TOKENWARD, *args, "--db", db], input=stdin, capture_output=True, text=True,
                          timeout=60, check=False)


def test_clients_commands_manage_a_client_when_run_in_order(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'cli.db'}"
    added = tw("clients", "add", "billing", "--redirect-uri", "https://app.example/cb", "--scope", "a:b c",
               "--audience", "https://api.example", "--access-token-ttl", "300", "--json", db=db)
    assert added.returncode == 0, added.stderr
    data = json.loads(added.stdout)
    assert data["client_secret"].startswith("tw_cs_") and len(data["client_secret"]) >= 6 + 43
    assert data["grant_types"] == ["authorization_code", "refresh_token"]
    client_id = data["client_id"]

    listed = json.loads(tw("clients", "list", "--json", db=db).stdout)
    assert [c["client_id"] for c in listed] == [client_id]
    assert "client_secret" not in listed[0]
    shown = json.loads(tw("clients", "show", client_id, "--json", db=db).stdout)
    assert shown["audiences"] == ["https://api.example"] and shown["access_token_ttl"] == 300

    rotated = json.loads(tw("clients", "rotate-secret", client_id, "--json", db=db).stdout)
    assert rotated["client_secret"] != data["client_secret"]

    assert tw("clients", "remove", client_id, db=db).returncode == 0
    missing = tw("clients", "show", client_id, db=db)
    assert missing.returncode != 0
    assert missing.stderr.strip().count("\n") == 0 and "no client" in missing.stderr
    assert "Traceback" not in missing.stderr


def test_clients_add_refuses_unsafe_registrations_with_one_line_error(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'cli.db'}"
    for args in (["--redirect-uri", "http://app.example/cb"], ["--redirect-uri", "https://app.example/cb#frag"],
                 ["--redirect-uri", "javascript://x%0aalert(1)"], ["--redirect-uri", "exampleapp:/cb"],
                 ["--public", "--grant-type", "client_credentials"], ["--grant-type", "authorization_code"]):
        out = tw("clients", "add", "bad", *args, db=db)
        assert out.returncode != 0, args
        assert out.stderr.startswith("Error: ") and out.stderr.strip().count("\n") == 0, out.stderr
        assert "Traceback" not in out.stderr
    native = tw("clients", "add", "native", "--public", "--redirect-uri", "com.example.app:/oauth2redirect", "--json",
                db=db)
    assert native.returncode == 0, native.stderr
    assert json.loads(native.stdout)["redirect_uris"] == ["com.example.app:/oauth2redirect"]


def test_users_commands_add_list_and_remove_user(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'cli.db'}"
    added = tw("users", "add", "alice", "--password-stdin", "--json", db=db, stdin="s3cret-password\n")
    assert added.returncode == 0, added.stderr
    assert "s3cret-password" not in added.stdout + added.stderr
    assert [u["username"] for u in json.loads(tw("users", "list", "--json", db=db).stdout)] == ["alice"]
    dup = tw("users", "add", "alice", "--password-stdin", db=db, stdin="another-password\n")
    assert dup.returncode != 0 and "already exists" in dup.stderr
    short = tw("users", "add", "bob", "--password-stdin", db=db, stdin="short\n")
    assert short.returncode != 0 and "at least 8" in short.stderr
    assert tw("users", "remove", "alice", db=db).returncode == 0
    assert json.loads(tw("users", "list", "--json", db=db).stdout) == []


def test_bad_database_url_is_one_line_error_when_given(tmp_path: Path) -> None:
    out = subprocess.run([TOKENWARD, "clients", "list", "--db", "mysql://nope/x"], capture_output=True, text=True,
                         timeout=60, check=False)
    assert out.returncode != 0
    assert out.stderr.startswith("Error: ") and "Traceback" not in out.stderr


def test_keys_rotate_switches_signing_key_and_keeps_old_key_published(fresh_server: ServerProcess) -> None:
    server = fresh_server
    server.start(env={"TOKENWARD_KEY_CACHE_SECONDS": "0"})
    client = server.add_client(grant_types=("client_credentials",), redirect_uri=None)
    before = server.token(client, {"grant_type": "client_credentials"}).json()["access_token"]
    old_kid = json.loads(__import__("base64").urlsafe_b64decode(before.split(".")[0] + "==="))["kid"]

    env_db = server.db_url
    rotated = subprocess.run([TOKENWARD, "keys", "rotate", "--alg", "ES256", "--prepublish", "0", "--json",
                              "--db", env_db],
                             capture_output=True, text=True, timeout=60, check=False,
                             env={"TOKENWARD_KEK_FILE": str(server.workdir / "tokenward.kek"),
                                  "PATH": "/usr/bin:/bin"})
    assert rotated.returncode == 0, rotated.stderr
    new_kid = json.loads(rotated.stdout)[0]["kid"]

    after = server.token(client, {"grant_type": "client_credentials"}).json()["access_token"]
    assert json.loads(__import__("base64").urlsafe_b64decode(after.split(".")[0] + "==="))["kid"] == new_kid
    published = {k["kid"] for k in httpx2.get(server.base_url + "/jwks.json").json()["keys"]}
    assert {old_kid, new_kid} <= published
    states = {k["kid"]: k["state"] for k in json.loads(tw("keys", "list", "--json", db=env_db).stdout)}
    assert states[old_kid] == "retired" and states[new_kid] == "active"


def test_serve_runs_on_the_event_loop_given_by_loop_option(fresh_server: ServerProcess) -> None:
    """asyncio is the default (fair under overload); --loop uvloop swaps in uvloop's C event loop."""
    for loop, uvloop_loaded in ((None, False), ("uvloop", True)):
        fresh_server.start(*(("--loop", loop) if loop else ()))
        try:
            client = fresh_server.add_client(grant_types=("client_credentials",), redirect_uri=None)
            assert fresh_server.token(client, {"grant_type": "client_credentials"}).status_code == 200
            assert fresh_server.process is not None
            maps = Path(f"/proc/{fresh_server.process.pid}/maps").read_text()
            assert ("/uvloop/" in maps) is uvloop_loaded
        finally:
            fresh_server.stop()


def test_generated_client_ids_never_start_with_a_dash() -> None:
    """A leading dash made `clients rotate-secret ID` read the id as an option (seen in CI)."""
    from tokenward.server.admin import new_client_id

    ids = [new_client_id() for _ in range(5000)]
    assert not any(i.startswith("-") for i in ids) and len(set(ids)) == 5000
