# ruff: noqa: RUF001  (full-width look-alikes are what these tests are about)
"""Upgrading a database that holds data, from every schema revision to head, on both backends.

For each revision R: migrate an empty database to R, fill every table that exists at R with the rows an
R-era server would have written (raw inserts into the reflected tables: the model code knows only head),
upgrade to head, then check that every row is still there with the same values, that columns added since R
hold their defaults, and that ``SqlStore`` reads and uses the rows (a client authenticates, a refresh token
is found and rotates, a session and a pending request are live, the signing key opens under the KEK).

A new migration must add its entry to ``SEEDS``: a revision without one fails ``test_every_revision_has_a_seed``
and its own case of ``test_upgrade_keeps_data``.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import json
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, MetaData, select

from tests.conftest import BACKENDS, create_pg_database, drop_pg_database
from tests.support import ServerProcess, free_port
from tokenward.protocol.credentials import ClientCredentials
from tokenward.protocol.scope import Scope
from tokenward.protocol.types import ClientAuthMethod, GrantType, SigningAlg
from tokenward.server.client_auth import authenticate_client
from tokenward.server.crypto import SecretBox, token_hash
from tokenward.server.keys import new_signing_key
from tokenward.server.model import OidcContext, SigningKey
from tokenward.server.passwords import hash_password, verify_password
from tokenward.server.store.protocols import Transaction
from tokenward.server.store.sql.engine import create_sync_engine
from tokenward.server.store.sql.migrate import alembic_config, upgrade
from tokenward.server.store.sql.store import SqlStore

NOW = int(time.time())
DAY = 86400
BOX = SecretBox(b"m" * 32)
SECRET = "tw_cs_seed-confidential-secret"
PASSWORD = "correct horse battery"
REFRESH = "tw_rt_seed-live"
ROTATED = "tw_rt_seed-rotated"  # consumed, its successor kept sealed for the grace window (0003)
SUCCESSOR = "tw_rt_seed-successor"
ALICE = "00000000-0000-4000-8000-000000000001"

Rows = dict[str, list[dict[str, Any]]]


@functools.cache
def password_hash() -> str:
    return hash_password(PASSWORD)


@functools.cache
def signing_key() -> SigningKey:
    return new_signing_key(SigningAlg.ES256, BOX, NOW - DAY)


def revisions() -> list[str]:
    """Every revision, oldest first, as Alembic's script directory sees them."""
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    return [r.revision for r in reversed(list(script.walk_revisions()))]


# -- what each revision's server wrote ----------------------------------------------------------------------


def rows_0001() -> Rows:
    key = signing_key()
    return {
        "clients": [
            {"client_id": "seed-confidential", "name": "Seed service", "public": False,
             "secret_hash": token_hash(SECRET), "redirect_uris": json.dumps(["https://app.example/cb"]),
             "grant_types": json.dumps(["authorization_code", "refresh_token", "client_credentials"]),
             "scope": "profile:read profile:write", "audiences": json.dumps(["urn:seed:api"]),
             "access_token_ttl": 300, "signing_alg": "ES256", "created_at": NOW - 5 * DAY},
            {"client_id": "seed-public", "name": "Seed CLI", "public": True, "secret_hash": None,
             "redirect_uris": json.dumps(["http://127.0.0.1/callback"]),
             "grant_types": json.dumps(["authorization_code", "refresh_token"]), "scope": "profile:read",
             "audiences": json.dumps([]), "access_token_ttl": None, "signing_alg": None,
             "created_at": NOW - 4 * DAY},
        ],
        "users": [{"id": ALICE, "username": "Alice", "password_hash": password_hash(), "created_at": NOW - 5 * DAY}],
        "grants": [
            {"id": "grant-live", "client_id": "seed-confidential", "user_id": ALICE, "scope": "profile:read",
             "audience": "urn:seed:api", "created_at": NOW - DAY, "expires_at": NOW + 20 * DAY, "revoked_at": None},
            {"id": "grant-revoked", "client_id": "seed-public", "user_id": ALICE, "scope": "profile:read",
             "audience": "urn:tokenward:api", "created_at": NOW - 2 * DAY, "expires_at": NOW + 20 * DAY,
             "revoked_at": NOW - 3600},
        ],
        "authorization_codes": [
            {"code_hash": token_hash("tw_ac_seed"), "client_id": "seed-public", "user_id": ALICE,
             "redirect_uri": "http://127.0.0.1:7777/callback", "redirect_uri_explicit": True,
             "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM", "scope": "profile:read",
             "audience": "urn:tokenward:api", "created_at": NOW - 10, "expires_at": NOW + 50,
             "consumed_at": None, "grant_id": None},
        ],
        "refresh_tokens": [
            {"token_hash": token_hash(REFRESH), "grant_id": "grant-live", "client_id": "seed-confidential",
             "scope": "profile:read", "created_at": NOW - DAY, "expires_at": NOW + 20 * DAY, "consumed_at": None,
             "revoked_at": None},
        ],
        "access_tokens": [
            {"jti": "00000000-0000-4000-8000-0000000000a1", "grant_id": "grant-live",
             "client_id": "seed-confidential", "expires_at": NOW + 300, "revoked_at": None},
        ],
        "consents": [{"user_id": ALICE, "client_id": "seed-confidential", "scope": "profile:read",
                      "created_at": NOW - DAY}],
        "sessions": [{"id_hash": token_hash("tw_ss_seed"), "user_id": ALICE, "created_at": NOW - 60,
                      "expires_at": NOW + 3600}],
        "authorization_requests": [
            {"id": "req-seed", "client_id": "seed-public", "redirect_uri": "http://127.0.0.1/callback",
             "redirect_uri_explicit": False, "scope": "profile:read", "state": "xyz",
             "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM", "audience": "urn:tokenward:api",
             "csrf_token": "csrf-seed", "session_hash": token_hash("tw_ss_seed"), "created_at": NOW - 30,
             "expires_at": NOW + 600},
        ],
        "signing_keys": [
            {"kid": key.kid, "alg": key.alg, "public_jwk": key.public_jwk, "private_jwk_sealed": key.private_jwk_sealed,
             "created_at": key.created_at, "activates_at": key.activates_at, "retires_at": None, "expires_at": None},
        ],
    }


def rows_0002() -> Rows:
    """0002: a revoked client-credentials access token has no grant."""
    rows = rows_0001()
    rows["access_tokens"].append({"jti": "00000000-0000-4000-8000-0000000000c1", "grant_id": None,
                                  "client_id": "seed-confidential", "expires_at": NOW + 300, "revoked_at": NOW - 5})
    return rows


def sealed_successor() -> bytes:
    return BOX.seal(json.dumps({"refresh_token": SUCCESSOR}).encode(), token_hash(ROTATED))


def rows_0003() -> Rows:
    """0003: a rotated refresh token keeps its successor sealed for the grace window."""
    rows = rows_0002()
    base = {"grant_id": "grant-live", "client_id": "seed-confidential", "scope": "profile:read",
            "expires_at": NOW + 20 * DAY, "revoked_at": None}
    rows["refresh_tokens"] += [
        {**base, "token_hash": token_hash(ROTATED), "created_at": NOW - 100, "consumed_at": NOW - 10,
         "successor_hash": token_hash(SUCCESSOR), "successor_sealed": sealed_successor(), "grace_used_at": None},
        {**base, "token_hash": token_hash(SUCCESSOR), "created_at": NOW - 10, "consumed_at": None,
         "successor_hash": None, "successor_sealed": None, "grace_used_at": None},
    ]
    return rows


def rows_0004() -> Rows:
    """0004: rate-limit counters, one locked key and one counting key."""
    rows = dict(rows_0003())
    rows["rate_limits"] = [
        {"key": "client:seed-confidential", "window_start": NOW - 30, "failures": 12, "locked_until": NOW + 600},
        {"key": "ip:127.0.0.1", "window_start": NOW - 30, "failures": 2, "locked_until": 0},
    ]
    return rows


def rows_0006() -> Rows:
    """0006: users carry the key their name is compared by."""
    rows = dict(rows_0004())
    rows["users"] = [{**u, "username_key": u["username"].casefold()} for u in rows["users"]]
    return rows


DEVICE_PENDING = "tw_dc_seed-pending"
DEVICE_APPROVED = "tw_dc_seed-approved"


def rows_0007() -> Rows:
    """0007: device authorization requests (RFC 8628), one waiting for the user and one approved."""
    rows = dict(rows_0006())
    base = {"client_id": "seed-public", "scope": "profile:read", "audience": "urn:tokenward:api",
            "created_at": NOW - 30, "expires_at": NOW + 570, "interval": 5, "grant_id": None,
            "ip": "192.0.2.7", "user_agent": "seed-tv/1.0"}
    rows["device_authorizations"] = [
        {**base, "device_code_hash": token_hash(DEVICE_PENDING), "user_code_hash": token_hash("BCDFGHJK"),
         "last_poll_ms": (NOW - 10) * 1000, "status": "pending", "user_id": None, "decided_at": None,
         "session_hash": None},
        {**base, "device_code_hash": token_hash(DEVICE_APPROVED), "user_code_hash": token_hash("LMNPQRST"),
         "interval": 10, "last_poll_ms": (NOW - 5) * 1000, "status": "approved", "user_id": ALICE,
         "decided_at": NOW - 4, "session_hash": token_hash("tw_ss_seed")},
    ]
    return rows


OIDC_REQUEST = '{"nonce":"n-0","prompt":["consent"],"max_age":60}'
OIDC_CODE = json.dumps({"nonce": "n-0", "auth_time": NOW - 30, "sid": "sid-seed"}, separators=(",", ":"))


def rows_0008() -> Rows:
    """0008: OpenID Connect: user claims, relying-party settings, and the authentication context."""
    rows = dict(rows_0007())
    rows["users"] = [{**u, "claims": '{"email":"alice@example.com","email_verified":true}', "updated_at": NOW - 60}
                     for u in rows["users"]]
    rows["clients"] = [{**c, "id_token_signing_alg": "ES256", "pkce_optional": not c["public"],
                        "post_logout_redirect_uris": '["https://app.example/bye"]'} for c in rows["clients"]]
    rows["sessions"] = [{**x, "sid": "sid-seed"} for x in rows["sessions"]]
    rows["authorization_requests"] = [{**x, "oidc": OIDC_REQUEST} for x in rows["authorization_requests"]]
    rows["authorization_codes"] = [{**x, "oidc": OIDC_CODE} for x in rows["authorization_codes"]]
    rows["grants"] = [{**x, "oidc": OIDC_CODE} for x in rows["grants"]]
    return rows


# -- what a head server must read from them -----------------------------------------------------------------


async def reads_0001(tx: Transaction) -> None:
    client = await tx.get_client("seed-confidential")
    assert client is not None and not client.public
    assert client.redirect_uris == ("https://app.example/cb",) and client.audiences == ("urn:seed:api",)
    assert client.grant_types == (GrantType.AUTHORIZATION_CODE, GrantType.REFRESH_TOKEN, GrantType.CLIENT_CREDENTIALS)
    assert client.scope == Scope.parse("profile:read profile:write") and client.access_token_ttl == 300
    assert authenticate_client(ClientCredentials("seed-confidential", ClientAuthMethod.CLIENT_SECRET_POST, SECRET),
                               client) == client
    public = await tx.get_client("seed-public")
    assert public is not None and public.public and public.secret_hash is None
    assert authenticate_client(ClientCredentials("seed-public", ClientAuthMethod.NONE), public) == public

    user = await tx.get_user_by_username("ＡＬＩＣＥ")  # from 0006 names compare by their normalised key
    assert user is not None and user.id == ALICE and user.username == "Alice"
    assert verify_password(user.password_hash, PASSWORD)
    assert await tx.has_consent(ALICE, "seed-confidential", Scope.parse("profile:read"))
    session = await tx.get_session(token_hash("tw_ss_seed"), NOW)
    assert session is not None and session.user_id == ALICE
    request = await tx.get_authorization_request("req-seed", NOW)
    assert request is not None and request.state == "xyz" and request.session_hash == token_hash("tw_ss_seed")

    live = await tx.get_grant("grant-live")
    assert live is not None and live.revoked_at is None and live.user_id == ALICE
    revoked = await tx.get_grant("grant-revoked")
    assert revoked is not None and revoked.revoked_at == NOW - 3600
    access = await tx.get_access_token("00000000-0000-4000-8000-0000000000a1")
    assert access is not None and access.grant_id == "grant-live" and access.revoked_at is None

    token = await tx.get_refresh_token(token_hash(REFRESH))
    assert token is not None and token.grant_id == "grant-live"
    assert (token.successor_hash, token.successor_sealed, token.grace_used_at) == (None, None, None)
    assert await tx.lock_refresh_family(token_hash(REFRESH)) == live
    assert await tx.consume_refresh_token(token_hash(REFRESH), NOW) is not None  # rotates like a new one
    assert await tx.consume_code(token_hash("tw_ac_seed"), "grant-from-code", NOW)

    (key,) = [k for k in await tx.list_signing_keys() if k.kid == signing_key().kid]
    assert key.state(NOW) == "active" and key.published(NOW)
    private = json.loads(BOX.open(key.private_jwk_sealed, key.kid.encode()))
    assert private["kty"] == "EC" and "d" in private


async def reads_0002(tx: Transaction) -> None:
    await reads_0001(tx)
    record = await tx.get_access_token("00000000-0000-4000-8000-0000000000c1")
    assert record is not None and record.grant_id is None and record.revoked_at == NOW - 5


async def reads_0003(tx: Transaction) -> None:
    await reads_0002(tx)
    rotated = await tx.get_refresh_token(token_hash(ROTATED))
    assert rotated is not None and rotated.successor_hash == token_hash(SUCCESSOR)
    assert rotated.successor_sealed is not None
    assert json.loads(BOX.open(rotated.successor_sealed, token_hash(ROTATED))) == {"refresh_token": SUCCESSOR}
    assert await tx.claim_grace_retry(token_hash(ROTATED), NOW)  # the one retry is still available


async def reads_0004(tx: Transaction) -> None:
    await reads_0003(tx)
    assert await tx.locked_keys(NOW) == {"client:seed-confidential": NOW + 600}
    assert await tx.lockout_seconds(["client:seed-confidential", "ip:127.0.0.1"], NOW) == 600


async def reads_0007(tx: Transaction) -> None:
    await reads_0004(tx)
    pending = await tx.get_device_authorization_by_user_code(token_hash("BCDFGHJK"))
    assert pending is not None and pending.status == "pending" and pending.ip == "192.0.2.7"
    assert pending.user_agent == "seed-tv/1.0" and pending.scope == Scope.parse("profile:read")
    assert not await tx.accept_device_poll(token_hash(DEVICE_PENDING), NOW * 1000 - 6000, 0)  # 4 s after: early
    assert await tx.slow_down_device(token_hash(DEVICE_PENDING), 5) == 10
    approved = await tx.get_device_authorization(token_hash(DEVICE_APPROVED))
    assert approved is not None and approved.user_id == ALICE and approved.interval == 10
    assert await tx.redeem_device_authorization(token_hash(DEVICE_APPROVED), "grant-from-device", NOW)
    assert not await tx.redeem_device_authorization(token_hash(DEVICE_APPROVED), "grant-again", NOW)


async def reads_0008(tx: Transaction) -> None:
    await reads_0004(tx)
    user = await tx.get_user(ALICE)
    assert user is not None and user.claims == {"email": "alice@example.com", "email_verified": True}
    client = await tx.get_client("seed-confidential")
    assert client is not None and client.pkce_optional and client.id_token_signing_alg == "ES256"
    assert client.post_logout_redirect_uris == ("https://app.example/bye",)
    session = await tx.get_session(token_hash("tw_ss_seed"), NOW)
    assert session is not None and session.sid == "sid-seed"
    request = await tx.get_authorization_request("req-seed", NOW)
    assert request is not None and request.oidc == OidcContext(nonce="n-0", prompt=("consent",), max_age=60)
    code = await tx.get_code(token_hash("tw_ac_seed"))
    assert code is not None and code.oidc == OidcContext(nonce="n-0", auth_time=NOW - 30, sid="sid-seed")
    grant = await tx.get_grant("grant-live")
    assert grant is not None and grant.oidc is not None and grant.oidc.sid == "sid-seed"


@dataclass(frozen=True)
class Seed:
    """The rows a server at this revision wrote, and what a head server must be able to do with them."""

    rows: Callable[[], Rows]
    reads: Callable[[Transaction], Awaitable[None]]
    # Columns added after this revision whose value is not NULL on old rows: {(table, column): value}.
    defaults: dict[tuple[str, str], Any] = field(default_factory=dict)


KEYED = {("users", "username_key"): "alice"}  # 0006 fills the key of "Alice"

SEEDS: dict[str, Seed] = {
    "0001": Seed(rows_0001, reads_0001, KEYED),
    "0002": Seed(rows_0002, reads_0002, KEYED),
    "0003": Seed(rows_0003, reads_0003, KEYED),
    "0004": Seed(rows_0004, reads_0004, KEYED),
    "0005": Seed(rows_0004, reads_0004, KEYED),
    "0006": Seed(rows_0006, reads_0004),
    "0007": Seed(rows_0007, reads_0007),
    "0008": Seed(rows_0008, reads_0008),
}


# -- the test -----------------------------------------------------------------------------------------------


@pytest.fixture(params=BACKENDS)
def empty_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'old.db'}"
        return
    url = create_pg_database()
    try:
        yield url
    finally:
        drop_pg_database(url)


def dump(conn: Connection) -> dict[str, dict[tuple[Any, ...], dict[str, Any]]]:
    """Every row of every table (but Alembic's own), keyed by primary key."""
    meta = MetaData()
    meta.reflect(conn)
    out: dict[str, dict[tuple[Any, ...], dict[str, Any]]] = {}
    for name, table in meta.tables.items():
        if name == "alembic_version":
            continue
        pk = [c.name for c in table.primary_key.columns]
        out[name] = {tuple(r[c] for c in pk): dict(r) for r in conn.execute(select(table)).mappings()}
    return out


def insert(conn: Connection, rows: Rows) -> None:
    meta = MetaData()
    meta.reflect(conn)
    assert set(rows) == set(meta.tables) - {"alembic_version"}, "the seed must fill every table of its revision"
    for table in meta.sorted_tables:  # parents before children
        for row in rows.get(table.name, []):  # one by one: an executemany would take the first row's keys
            conn.execute(table.insert().values(row))


def test_every_revision_has_a_seed() -> None:
    missing = [r for r in revisions() if r not in SEEDS]
    assert not missing, f"add a SEEDS entry (rows as that revision's server wrote them) for: {missing}"
    assert set(SEEDS) <= set(revisions()), "SEEDS names a revision that does not exist"


@pytest.mark.parametrize("revision", revisions())
def test_upgrade_keeps_data(empty_db: str, revision: str) -> None:
    seed = SEEDS.get(revision)
    assert seed is not None, f"revision {revision} has no SEEDS entry"
    upgrade(empty_db, revision)
    engine = create_sync_engine(empty_db)
    try:
        with engine.begin() as conn:
            insert(conn, seed.rows())
        with engine.connect() as conn:
            before = dump(conn)
        upgrade(empty_db)
        with engine.connect() as conn:
            after = dump(conn)
    finally:
        engine.dispose()

    for table, old_rows in before.items():
        assert set(after[table]) == set(old_rows), f"{table}: rows lost or added by the upgrade"
        for pk, old in old_rows.items():
            new = after[table][pk]
            assert {c: new[c] for c in old} == old, f"{table} {pk}: values changed by the upgrade"
            added = {c: v for c, v in new.items() if c not in old}
            expected = {c: seed.defaults.get((table, c)) for c in added}
            assert added == expected, f"{table} {pk}: columns added since {revision} hold the wrong defaults"

    async def reads() -> None:
        store = SqlStore.from_url(empty_db)
        try:
            async with store.transaction(write=True) as tx:
                await seed.reads(tx)
        finally:
            await store.close()

    asyncio.run(reads())


def test_serve_upgrades_the_oldest_database_and_serves_from_its_rows(empty_db: str, tmp_path: Path) -> None:
    """``tokenward serve`` migrates a revision-0001 database on start, then the old rows work over HTTP:
    the old client authenticates, the old refresh token rotates, and the old key signs (same KEK)."""
    first = revisions()[0]
    upgrade(empty_db, first)
    engine = create_sync_engine(empty_db)
    try:
        with engine.begin() as conn:
            insert(conn, SEEDS[first].rows())
    finally:
        engine.dispose()
    server = ServerProcess(base_url=f"http://127.0.0.1:{free_port()}", db_url=empty_db,
                           log_path=tmp_path / "server.log", workdir=tmp_path)
    server.start(env={"TOKENWARD_KEK": base64.urlsafe_b64encode(b"m" * 32).decode().rstrip("=")})
    try:
        auth = httpx2.BasicAuth("seed-confidential", SECRET)
        refreshed = httpx2.post(server.base_url + "/token", auth=auth,
                                data={"grant_type": "refresh_token", "refresh_token": REFRESH})
        assert refreshed.status_code == 200, refreshed.text
        body = refreshed.json()
        assert body["scope"] == "profile:read" and body["refresh_token"] != REFRESH
        header = json.loads(base64.urlsafe_b64decode(body["access_token"].split(".")[0] + "=="))
        assert header["kid"] == signing_key().kid  # the key sealed under the KEK before the upgrade
        retries = [httpx2.post(server.base_url + "/token", auth=auth,
                               data={"grant_type": "refresh_token", "refresh_token": REFRESH}) for _ in range(2)]
        # the grace window (0003's columns, NULL on this row before) hands the same pair back once, then not
        assert retries[0].status_code == 200 and retries[0].json()["refresh_token"] == body["refresh_token"]
        assert retries[1].status_code == 400 and retries[1].json()["error"] == "invalid_grant"
        machine = httpx2.post(server.base_url + "/token", auth=auth, data={"grant_type": "client_credentials"})
        assert machine.status_code == 200, machine.text
    finally:
        server.stop()
