"""``tokenward purge`` (a real process) on both backends: every table it purges gets rows that must go and
rows that must stay, and each table is checked row by row afterwards; the grace window's sealed successor
(RFC 9700 §4.14.2 rotation, kept only for a lost response's retry) is erased from the database once the
window is over, and a fresh one is kept.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, Table, insert, select

from tests.support import TOKENWARD
from tokenward.server.crypto import SecretBox, token_hash
from tokenward.server.store.sql import tables as t
from tokenward.server.store.sql.engine import create_sync_engine

DAY = 86400
HOUR = 3600
GRACE = 600  # TOKENWARD_REFRESH_GRACE_CONFIDENTIAL for the run: a successor sealed 5 s ago is inside it
CLIENT_TTL = 7200  # the longest access-token lifetime: revoked grants stay 2 h + the JWKS cache margin (1 h)
BOX = SecretBox(b"p" * 32)


def h(name: str) -> bytes:
    return token_hash(name)


def seed(engine: Engine, now: int) -> None:
    """For each purged table, rows named ``gone-*`` (purge must delete them) and ``kept-*``."""
    grant = {"client_id": "c", "user_id": "u", "scope": "profile:read", "audience": "urn:tokenward:api",
             "created_at": now - 3 * DAY}
    refresh = {"client_id": "c", "scope": "profile:read", "created_at": now - DAY}
    code = {"client_id": "c", "user_id": "u", "redirect_uri": "https://app.example/cb",
            "redirect_uri_explicit": True, "code_challenge": "x" * 43, "scope": "profile:read",
            "audience": "urn:tokenward:api", "created_at": now - HOUR}
    request = {"client_id": "c", "redirect_uri": "https://app.example/cb", "redirect_uri_explicit": True,
               "scope": "profile:read", "state": None, "code_challenge": "x" * 43, "audience": "urn:tokenward:api",
               "csrf_token": "csrf", "session_hash": h("s"), "created_at": now - HOUR}
    device = {"client_id": "c", "scope": "profile:read", "audience": "urn:tokenward:api", "created_at": now - 600,
              "interval": 5, "status": "pending", "ip": "192.0.2.1", "user_agent": "tv"}
    key = {"alg": "ES256", "public_jwk": "{}", "private_jwk_sealed": b"sealed", "created_at": now - 60 * DAY}
    rows: list[tuple[Table, list[dict[str, Any]]]] = [
        (t.clients, [{"client_id": "c", "name": "c", "public": False, "secret_hash": h("secret"),
                      "redirect_uris": '["https://app.example/cb"]', "grant_types": '["authorization_code"]',
                      "scope": "profile:read", "audiences": "[]", "access_token_ttl": CLIENT_TTL,
                      "signing_alg": None, "created_at": now - 9 * DAY}]),
        (t.users, [{"id": "u", "username": "u", "username_key": "u", "password_hash": "x",
                    "created_at": now - 9 * DAY}]),
        (t.consents, [{"user_id": "u", "client_id": "c", "scope": "profile:read", "created_at": now - 9 * DAY}]),
        (t.grants, [
            {**grant, "id": "kept-live", "expires_at": now + DAY, "revoked_at": None},
            {**grant, "id": "gone-expired", "expires_at": now - 1, "revoked_at": None},
            # revoked: kept while an access token it issued may still be introspected (longest TTL + margin)
            {**grant, "id": "kept-revoked-recently", "expires_at": now + DAY, "revoked_at": now - 60},
            {**grant, "id": "kept-revoked-within-client-ttl", "expires_at": now + DAY,
             "revoked_at": now - CLIENT_TTL},
            {**grant, "id": "gone-revoked-long-ago", "expires_at": now + DAY, "revoked_at": now - 2 * DAY},
        ]),
        (t.refresh_tokens, [
            {**refresh, "token_hash": h("kept-live"), "grant_id": "kept-live", "expires_at": now + DAY},
            {**refresh, "token_hash": h("gone-expired"), "grant_id": "kept-live", "expires_at": now - 1},
            # unexpired, but its grant expired: goes with the grant (ON DELETE CASCADE)
            {**refresh, "token_hash": h("gone-with-its-grant"), "grant_id": "gone-expired", "expires_at": now + DAY},
            # rotated long ago: the row stays (reuse detection), the sealed successor pair must not
            {**refresh, "token_hash": h("kept-rotated-long-ago"), "grant_id": "kept-live", "expires_at": now + DAY,
             "consumed_at": now - HOUR, "successor_hash": h("kept-live"),
             "successor_sealed": BOX.seal(b"old pair", h("kept-rotated-long-ago"))},
            {**refresh, "token_hash": h("kept-rotated-just-now"), "grant_id": "kept-live", "expires_at": now + DAY,
             "consumed_at": now - 5, "successor_hash": h("kept-live"),
             "successor_sealed": BOX.seal(b"fresh pair", h("kept-rotated-just-now"))},
        ]),
        (t.access_tokens, [
            {"jti": "kept-live", "grant_id": "kept-live", "client_id": "c", "expires_at": now + 600},
            {"jti": "gone-expired", "grant_id": "kept-live", "client_id": "c", "expires_at": now - 1},
            {"jti": "kept-revoked-client-credentials", "grant_id": None, "client_id": "c", "expires_at": now + 600,
             "revoked_at": now - 60},
            {"jti": "gone-revoked-client-credentials", "grant_id": None, "client_id": "c", "expires_at": now - 1,
             "revoked_at": now - 700},
            {"jti": "gone-with-its-grant", "grant_id": "gone-revoked-long-ago", "client_id": "c",
             "expires_at": now + 600},
        ]),
        (t.authorization_codes, [
            {**code, "code_hash": h("kept-live"), "expires_at": now + 60},
            {**code, "code_hash": h("gone-expired"), "expires_at": now - 1},
        ]),
        (t.sessions, [
            {"id_hash": h("kept-live"), "user_id": "u", "created_at": now - HOUR, "expires_at": now + HOUR},
            {"id_hash": h("gone-expired"), "user_id": None, "created_at": now - DAY, "expires_at": now - 1},
        ]),
        (t.authorization_requests, [
            {**request, "id": "kept-live", "expires_at": now + 600},
            {**request, "id": "gone-expired", "expires_at": now - 1},
        ]),
        (t.rate_limits, [
            {"key": "kept-locked", "window_start": now - 2 * DAY, "failures": 40, "locked_until": now + 600},
            {"key": "kept-counting", "window_start": now - 60, "failures": 3, "locked_until": 0},
            {"key": "gone-stale", "window_start": now - 2 * DAY, "failures": 3, "locked_until": now - DAY},
        ]),
        (t.device_authorizations, [
            {**device, "device_code_hash": h("kept-live"), "user_code_hash": h("BCDFGHJK"), "expires_at": now + 60},
            # approved and never collected, or redeemed: either way nobody can use it after its lifetime
            {**device, "device_code_hash": h("gone-expired"), "user_code_hash": h("LMNPQRST"), "expires_at": now - 1,
             "status": "approved", "user_id": "u", "decided_at": now - 300},
        ]),
        (t.signing_keys, [
            {**key, "kid": "kept-active", "activates_at": now - 10 * DAY},
            {**key, "kid": "kept-retired-still-published", "activates_at": now - 40 * DAY,
             "retires_at": now - 10 * DAY, "expires_at": now + HOUR},
            {**key, "kid": "gone-unpublished", "activates_at": now - 60 * DAY, "retires_at": now - 40 * DAY,
             "expires_at": now - 39 * DAY},
        ]),
    ]
    with engine.begin() as conn:
        for table, table_rows in rows:
            for row in table_rows:
                conn.execute(insert(table).values(row))


def names(engine: Engine, table: Table) -> set[str]:
    """The ``kept-*``/``gone-*`` names of the rows in ``table`` (hashed keys mapped back)."""
    pk = next(iter(table.primary_key.columns))
    known = {h(n): n for n in ("kept-live", "gone-expired", "gone-with-its-grant", "kept-rotated-long-ago",
                               "kept-rotated-just-now")}
    with engine.connect() as conn:
        values = conn.execute(select(pk)).scalars().all()
    return {known[v] if isinstance(v, bytes) else v for v in values}


def test_purge_cli_deletes_exactly_what_can_no_longer_be_used(db_url: str, tmp_path: Path) -> None:
    engine = create_sync_engine(db_url)
    try:
        seed(engine, int(time.time()))
        run = subprocess.run([TOKENWARD, "purge", "--db", db_url, "--json"], capture_output=True, text=True,
                             timeout=60, check=False, cwd=tmp_path,
                             env={**os.environ, "TOKENWARD_KEK_FILE": str(tmp_path / "kek"),
                                  "TOKENWARD_REFRESH_GRACE_CONFIDENTIAL": str(GRACE)})
        assert run.returncode == 0, run.stderr
        assert json.loads(run.stdout) == {
            "authorization_codes": 1, "authorization_requests": 1, "sessions": 1, "access_tokens": 2,
            "refresh_tokens": 1, "grants": 2, "rate_limits": 1, "signing_keys": 1,
            "device_authorizations": 1}

        assert names(engine, t.grants) == {"kept-live", "kept-revoked-recently", "kept-revoked-within-client-ttl"}
        assert names(engine, t.refresh_tokens) == {"kept-live", "kept-rotated-long-ago", "kept-rotated-just-now"}
        assert names(engine, t.access_tokens) == {"kept-live", "kept-revoked-client-credentials"}
        assert names(engine, t.authorization_codes) == {"kept-live"}
        assert names(engine, t.sessions) == {"kept-live"}
        assert names(engine, t.authorization_requests) == {"kept-live"}
        assert names(engine, t.rate_limits) == {"kept-locked", "kept-counting"}
        assert names(engine, t.signing_keys) == {"kept-active", "kept-retired-still-published"}
        assert names(engine, t.device_authorizations) == {"kept-live"}
        assert names(engine, t.clients) == {"c"} and names(engine, t.users) == {"u"}  # never purged
        with engine.connect() as conn:
            assert conn.execute(select(t.consents.c.scope)).scalars().all() == ["profile:read"]
            rotated = conn.execute(select(t.refresh_tokens.c.token_hash, t.refresh_tokens.c.successor_hash,
                                          t.refresh_tokens.c.successor_sealed)
                                   .where(t.refresh_tokens.c.consumed_at.is_not(None))).all()
    finally:
        engine.dispose()
    sealed = {row.token_hash: row.successor_sealed for row in rotated}
    assert sealed[h("kept-rotated-long-ago")] is None  # the ciphertext itself is gone from the database
    fresh = sealed[h("kept-rotated-just-now")]
    assert fresh is not None and BOX.open(fresh, h("kept-rotated-just-now")) == b"fresh pair"
    assert {row.successor_hash for row in rotated} == {h("kept-live")}  # still linked: reuse detection works
