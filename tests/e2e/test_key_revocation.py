"""``tokenward keys revoke KID`` against a real server and a real guard (issue #12 §2.12): the key leaves the
JWKS, tokens it signed fail introspection, and a guard that had cached such a token refuses it after its
next JWKS refresh; the server keeps signing with a replacement."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable
from typing import Any

import httpx2
import pytest

from tests.e2e.test_key_rotation_live import kid_of
from tests.support import TOKENWARD, ClientInfo, ServerProcess
from tokenward.protocol.bearer import InvalidTokenError
from tokenward.resource import JwtVerifier

API = "urn:tokenward:api"


def tokenward(server: ServerProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([TOKENWARD, *args, "--db", server.db_url, "--json"], capture_output=True, text=True,
                          timeout=60, check=False,
                          env={**os.environ, "TOKENWARD_KEK_FILE": str(server.workdir / "tokenward.kek")})


def eventually(check: Callable[[], Any], wait: float = 10.0) -> Any:
    deadline = time.monotonic() + wait
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.1)


def introspect(server: ServerProcess, client: ClientInfo, token: str) -> dict[str, Any]:
    assert client.client_secret
    answer: dict[str, Any] = httpx2.post(server.base_url + "/introspect", data={"token": token},
                                         auth=(client.client_id, client.client_secret)).json()
    return answer


def published_kids(server: ServerProcess) -> set[str]:
    return {k["kid"] for k in httpx2.get(server.base_url + "/jwks.json").json()["keys"]}


def test_revoked_key_leaves_the_jwks_fails_introspection_and_the_guard_drops_its_cached_tokens(
        fresh_server: ServerProcess) -> None:
    server = fresh_server
    server.start(env={"TOKENWARD_KEY_CACHE_SECONDS": "1"})
    client = server.add_client(grant_types=("client_credentials",), redirect_uri=None)
    token = server.token(client, {"grant_type": "client_credentials"}).json()["access_token"]
    kid = kid_of(token)
    guard = JwtVerifier(issuer=server.base_url, audience=API)
    assert guard.verify_sync(token).client_id == client.client_id  # verified once, now cached
    accepted_at = time.monotonic()
    assert introspect(server, client, token)["active"] is True and kid in published_kids(server)

    revoked = tokenward(server, "keys", "revoke", kid)
    assert revoked.returncode == 0, revoked.stderr
    result = json.loads(revoked.stdout)
    assert result["revoked"] is True and result["replacement"] and result["replacement"] != kid
    events = [json.loads(line) for line in revoked.stderr.splitlines() if '"key.revoked"' in line]
    assert [(e["event"], e["kid"], e["reason"]) for e in events] == [
        ("key.revoked", kid, f"replaced by {result['replacement']}")]

    assert eventually(lambda: kid not in published_kids(server), 5), "the key is still in /jwks.json"
    assert result["replacement"] in published_kids(server)
    assert eventually(lambda: introspect(server, client, token) == {"active": False}, 5)
    listed = {k["kid"]: k for k in json.loads(tokenward(server, "keys", "list").stdout)}
    # unpublished; the maintenance purge may already have deleted the row (expires_at has passed)
    assert listed.get(kid, {"published": False})["published"] is False
    assert listed[result["replacement"]]["state"] == "active"

    # The server signs with the replacement (once its worker re-read the keys).
    def new_token() -> str | None:
        issued = str(server.token(client, {"grant_type": "client_credentials"}).json()["access_token"])
        return issued if kid_of(issued) == result["replacement"] else None

    fresh = eventually(new_token, 5)
    assert fresh, "the server did not switch to the replacement key"
    assert guard.verify_sync(token).client_id == client.client_id  # no JWKS refresh yet: still cached
    time.sleep(max(0.0, accepted_at + 1.1 - time.monotonic()))  # the guard refetches at most once a second
    assert guard.verify_sync(fresh).client_id == client.client_id  # its unknown kid: the next JWKS refresh
    assert guard.jwks.fetch_count == 2
    with pytest.raises(InvalidTokenError):
        guard.verify_sync(token)


def test_revoking_a_prepublished_key_keeps_the_rotation_on_time_and_is_idempotent(
        fresh_server: ServerProcess) -> None:
    server = fresh_server
    server.start()  # creates the keys
    server.stop()  # so its maintenance purge cannot delete the withdrawn key's row while we look at it
    rotated = tokenward(server, "keys", "rotate", "--alg", "ES256", "--prepublish", "3600")
    assert rotated.returncode == 0, rotated.stderr
    upcoming = json.loads(rotated.stdout)[0]
    revoked = tokenward(server, "keys", "revoke", upcoming["kid"])
    assert revoked.returncode == 0, revoked.stderr
    replacement = json.loads(revoked.stdout)["replacement"]
    listed = {k["kid"]: k for k in json.loads(tokenward(server, "keys", "list").stdout)}
    assert listed[upcoming["kid"]]["published"] is False
    assert listed[replacement]["state"] == "next" and listed[replacement]["published"] is True
    assert listed[replacement]["activates_at"] == upcoming["activates_at"]  # the switch happens as planned

    again = tokenward(server, "keys", "revoke", upcoming["kid"])
    assert again.returncode == 0 and json.loads(again.stdout) == {"kid": upcoming["kid"], "revoked": False,
                                                                    "replacement": None}
    unknown = tokenward(server, "keys", "revoke", "no-such-kid")
    assert unknown.returncode != 0 and "no signing key with kid no-such-kid" in unknown.stderr
