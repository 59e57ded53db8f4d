"""SqlStore: the storage protocols on SQLAlchemy Core.

Single-use operations are one conditional ``UPDATE … WHERE consumed_at IS NULL``: the database decides the
one winner, whatever the number of worker processes.
"""

from __future__ import annotations

import asyncio
import json
import random
import sqlite3
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from typing import Any, Protocol

from sqlalchemy import Connection, CursorResult, Dialect, Engine, Executable, delete, insert, select, text, update
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import AsyncEngine

from tokenward.protocol.errors import OAuthError
from tokenward.protocol.scope import Scope
from tokenward.protocol.types import GrantType
from tokenward.server.model import (
    AccessTokenRecord,
    AuthorizationCode,
    AuthorizationRequest,
    Client,
    Grant,
    RefreshToken,
    Session,
    SigningKey,
    User,
)
from tokenward.server.store.protocols import StoreUnavailableError, Transaction
from tokenward.server.store.sql import statements as s
from tokenward.server.store.sql import tables as t
from tokenward.server.store.sql.engine import (
    SQLITE_BUSY_TIMEOUT_MS,
    create_server_engine,
    create_sqlite_loop_engine,
    is_sqlite,
)
from tokenward.server.usernames import username_key


class SqlStore:
    """The Store protocol on SQLAlchemy Core: SQLite on the event loop, or PostgreSQL through psycopg."""

    @classmethod
    def from_url(cls, db_url: str, *, pgbouncer: bool = False) -> SqlStore:
        if is_sqlite(db_url):
            return SqliteStore(create_sqlite_loop_engine(db_url))
        return PostgresStore(create_server_engine(db_url, pgbouncer=pgbouncer))

    @asynccontextmanager
    async def transaction(self, *, write: bool = False) -> AsyncIterator[Transaction]:
        try:
            async with self._transaction(write) as tx:
                yield tx
        except (OperationalError, InterfaceError, PoolTimeoutError, TimeoutError, sqlite3.OperationalError) as exc:
            cause = getattr(exc, "orig", None) or exc
            raise StoreUnavailableError(f"{type(cause).__name__}: {str(cause).splitlines()[0][:200]}") from exc

    def _transaction(self, write: bool) -> AbstractAsyncContextManager[Transaction]:
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError


def _keeps_effects(exc: BaseException) -> bool:
    """An OAuthError with ``persist`` (reuse detection's revocation) commits although the request fails."""
    return isinstance(exc, OAuthError) and exc.persist


class PostgresStore(SqlStore):
    """PostgreSQL through an async engine (psycopg 3): row locks and conditional updates serialise writers."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    @asynccontextmanager
    async def _transaction(self, write: bool) -> AsyncIterator[Transaction]:
        async with self.engine.connect() as conn:
            if not write:
                # Reads (write=False never writes) run in autocommit: one round trip a statement instead of
                # BEGIN, statement, COMMIT. Nothing is lost: under READ COMMITTED, PostgreSQL's default,
                # every statement of a transaction takes its own snapshot anyway.
                await conn.execution_options(isolation_level="AUTOCOMMIT")
                yield SqlTransaction(conn)
                return
            trans = await conn.begin()
            try:
                yield SqlTransaction(conn)
            except BaseException as exc:
                await (trans.commit() if _keeps_effects(exc) else trans.rollback())
                raise
            else:
                await trans.commit()

    async def close(self) -> None:
        await self.engine.dispose()


class _LoopConnection:
    """A synchronous SQLite connection used directly on the event loop, with the async ``execute`` that
    SqlTransaction awaits. A transaction never yields to the loop between statements, so it holds
    SQLite's write lock for its own statements only (0.1 to 0.5 ms)."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self.dialect = conn.dialect

    async def execute(self, statement: Executable, parameters: Mapping[str, Any] | None = None
                      ) -> CursorResult[Any]:
        return self._conn.execute(statement, parameters)


class SqliteStore(SqlStore):
    """SQLite in WAL mode. Writers queue on an asyncio lock in this process and take the database's write
    lock with ``BEGIN IMMEDIATE``; while another process holds it the loop keeps serving (asyncio.sleep
    between attempts) instead of blocking in SQLite's busy handler."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._writer = asyncio.Lock()

    @asynccontextmanager
    async def _transaction(self, write: bool) -> AsyncIterator[Transaction]:
        async with self._writer if write else nullcontext():
            with self.engine.connect() as conn:
                trans = conn.begin()
                driver = conn.connection.driver_connection
                assert isinstance(driver, sqlite3.Connection)
                if write:
                    await _begin_immediate(driver)
                else:
                    driver.execute("BEGIN")
                try:
                    yield SqlTransaction(_LoopConnection(conn))
                except BaseException as exc:
                    trans.commit() if _keeps_effects(exc) else trans.rollback()
                    raise
                else:
                    trans.commit()

    async def close(self) -> None:
        self.engine.dispose()


async def _begin_immediate(driver: sqlite3.Connection) -> None:
    """Take SQLite's write lock, retrying without blocking the loop while another process holds it."""
    driver.execute("PRAGMA busy_timeout=0")
    try:
        give_up = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
        delay = 0.0002
        while True:
            try:
                driver.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if exc.sqlite_errorcode != sqlite3.SQLITE_BUSY or time.monotonic() > give_up:
                    raise
            await asyncio.sleep(delay * random.uniform(0.5, 1.5))
            delay = min(delay * 2, 0.002)
    finally:
        driver.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")


def _unstorable(value: str) -> bool:
    """PostgreSQL text cannot hold NUL (it raises instead of matching nothing): no stored row has one."""
    return "\x00" in value


def _client(row: Any) -> Client:
    return Client(
        client_id=row.client_id, name=row.name, public=bool(row.public), secret_hash=row.secret_hash,
        redirect_uris=tuple(json.loads(row.redirect_uris)),
        grant_types=tuple(GrantType(g) for g in json.loads(row.grant_types)),
        scope=Scope.parse(row.scope), audiences=tuple(json.loads(row.audiences)),
        access_token_ttl=row.access_token_ttl, signing_alg=row.signing_alg, created_at=row.created_at,
    )


def _user(row: Any) -> User:
    return User(id=row.id, username=row.username, password_hash=row.password_hash, created_at=row.created_at)


def _grant(row: Any) -> Grant:
    return Grant(id=row.id, client_id=row.client_id, user_id=row.user_id, scope=Scope.parse(row.scope),
                 audience=row.audience, created_at=row.created_at, expires_at=row.expires_at,
                 revoked_at=row.revoked_at)


def _code(row: Any) -> AuthorizationCode:
    return AuthorizationCode(
        code_hash=row.code_hash, client_id=row.client_id, user_id=row.user_id, redirect_uri=row.redirect_uri,
        redirect_uri_explicit=bool(row.redirect_uri_explicit), code_challenge=row.code_challenge,
        scope=Scope.parse(row.scope), audience=row.audience, created_at=row.created_at,
        expires_at=row.expires_at, consumed_at=row.consumed_at, grant_id=row.grant_id,
    )


def _refresh(row: Any) -> RefreshToken:
    return RefreshToken(token_hash=row.token_hash, grant_id=row.grant_id, client_id=row.client_id,
                        scope=Scope.parse(row.scope), created_at=row.created_at, expires_at=row.expires_at,
                        consumed_at=row.consumed_at, revoked_at=row.revoked_at, successor_hash=row.successor_hash,
                        successor_sealed=row.successor_sealed, grace_used_at=row.grace_used_at)


def _key(row: Any) -> SigningKey:
    return SigningKey(kid=row.kid, alg=row.alg, public_jwk=row.public_jwk,
                      private_jwk_sealed=row.private_jwk_sealed, created_at=row.created_at,
                      activates_at=row.activates_at, retires_at=row.retires_at, expires_at=row.expires_at)


def _request(row: Any) -> AuthorizationRequest:
    return AuthorizationRequest(
        id=row.id, client_id=row.client_id, redirect_uri=row.redirect_uri,
        redirect_uri_explicit=bool(row.redirect_uri_explicit), scope=Scope.parse(row.scope), state=row.state,
        code_challenge=row.code_challenge, audience=row.audience, csrf_token=row.csrf_token,
        session_hash=row.session_hash, created_at=row.created_at, expires_at=row.expires_at,
    )


class Executor(Protocol):
    """An AsyncConnection, or a SQLite connection on the loop."""

    @property
    def dialect(self) -> Dialect: ...

    async def execute(self, statement: Executable, parameters: Mapping[str, Any] | None = None
                      ) -> CursorResult[Any]: ...


class SqlTransaction:
    """All storage operations on one connection inside one transaction (request paths run prebuilt statements)."""

    def __init__(self, conn: Executor) -> None:
        self._conn = conn

    async def _first(self, statement: Executable, parameters: Mapping[str, Any]) -> Any:
        return (await self._conn.execute(statement, parameters)).first()

    # clients
    async def get_client(self, client_id: str) -> Client | None:
        if _unstorable(client_id):
            return None
        row = await self._first(s.GET_CLIENT, {"p_client_id": client_id})
        return _client(row) if row else None

    async def save_client(self, client: Client) -> None:
        await self._conn.execute(insert(t.clients).values(
            client_id=client.client_id, name=client.name, public=client.public, secret_hash=client.secret_hash,
            redirect_uris=json.dumps(list(client.redirect_uris)),
            grant_types=json.dumps([g.value for g in client.grant_types]), scope=str(client.scope),
            audiences=json.dumps(list(client.audiences)), access_token_ttl=client.access_token_ttl,
            signing_alg=client.signing_alg, created_at=client.created_at,
        ))

    async def set_client_secret_hash(self, client_id: str, secret_hash: bytes) -> bool:
        result = await self._conn.execute(
            update(t.clients).where(t.clients.c.client_id == client_id).values(secret_hash=secret_hash))
        return result.rowcount == 1

    async def delete_client(self, client_id: str) -> bool:
        result = await self._conn.execute(delete(t.clients).where(t.clients.c.client_id == client_id))
        return result.rowcount == 1

    async def list_clients(self) -> Sequence[Client]:
        rows = await self._conn.execute(select(t.clients).order_by(t.clients.c.created_at, t.clients.c.name))
        return [_client(r) for r in rows]

    # users
    async def get_user(self, user_id: str) -> User | None:
        row = await self._first(s.GET_USER, {"p_user_id": user_id})
        return _user(row) if row else None

    async def get_user_by_username(self, username: str) -> User | None:
        if _unstorable(username):
            return None
        row = await self._first(s.GET_USER_BY_USERNAME, {"p_username_key": username_key(username)})
        return _user(row) if row else None

    async def save_user(self, user: User) -> bool:
        result = await self._conn.execute(s.INSERT_USER[self._conn.dialect.name], {
            "id": user.id, "username": user.username, "username_key": username_key(user.username),
            "password_hash": user.password_hash, "created_at": user.created_at})
        return result.first() is not None  # RETURNING: rowcount is -1 for psycopg's ON CONFLICT DO NOTHING

    async def delete_user(self, user_id: str) -> bool:
        result = await self._conn.execute(delete(t.users).where(t.users.c.id == user_id))
        return result.rowcount == 1

    async def list_users(self) -> Sequence[User]:
        rows = await self._conn.execute(select(t.users).order_by(t.users.c.username))
        return [_user(r) for r in rows]

    async def set_password_hash(self, user_id: str, password_hash: str) -> None:
        await self._conn.execute(update(t.users).where(t.users.c.id == user_id).values(password_hash=password_hash))

    # sessions
    async def save_session(self, session: Session) -> None:
        await self._conn.execute(s.INSERT_SESSION, {
            "id_hash": session.id_hash, "user_id": session.user_id, "created_at": session.created_at,
            "expires_at": session.expires_at})

    async def get_session(self, id_hash: bytes, now: int) -> Session | None:
        row = await self._first(s.GET_SESSION, {"p_id_hash": id_hash, "p_now": now})
        if row is None:
            return None
        return Session(id_hash=row.id_hash, user_id=row.user_id, created_at=row.created_at,
                       expires_at=row.expires_at)

    async def delete_session(self, id_hash: bytes) -> None:
        await self._conn.execute(s.DELETE_SESSION, {"p_id_hash": id_hash})

    # pending authorization requests
    async def save_authorization_request(self, request: AuthorizationRequest) -> None:
        await self._conn.execute(s.INSERT_AUTHORIZATION_REQUEST, {
            "id": request.id, "client_id": request.client_id, "redirect_uri": request.redirect_uri,
            "redirect_uri_explicit": request.redirect_uri_explicit, "scope": str(request.scope),
            "state": request.state, "code_challenge": request.code_challenge, "audience": request.audience,
            "csrf_token": request.csrf_token, "session_hash": request.session_hash,
            "created_at": request.created_at, "expires_at": request.expires_at})

    async def get_authorization_request(self, request_id: str, now: int) -> AuthorizationRequest | None:
        if _unstorable(request_id):
            return None
        row = await self._first(s.GET_AUTHORIZATION_REQUEST, {"p_id": request_id, "p_now": now})
        return _request(row) if row else None

    async def rebind_authorization_request(self, request_id: str, session_hash: bytes) -> None:
        await self._conn.execute(s.REBIND_AUTHORIZATION_REQUEST, {"p_id": request_id, "p_session_hash": session_hash})

    async def delete_authorization_request(self, request_id: str) -> bool:
        result = await self._conn.execute(s.DELETE_AUTHORIZATION_REQUEST, {"p_id": request_id})
        return result.rowcount == 1

    # consent
    async def has_consent(self, user_id: str, client_id: str, scope: Scope) -> bool:
        rows = await self._conn.execute(s.GET_CONSENTED_SCOPES, {"p_user_id": user_id, "p_client_id": client_id})
        return any(scope <= Scope.parse(r.scope) for r in rows)

    async def save_consent(self, user_id: str, client_id: str, scope: Scope, now: int) -> None:
        if await self.has_consent(user_id, client_id, scope):
            return
        # A concurrent Allow may insert the same row between the read and the write: ignore it, never a 500.
        await self._conn.execute(s.INSERT_CONSENT[self._conn.dialect.name], {
            "user_id": user_id, "client_id": client_id, "scope": str(scope), "created_at": now})

    # authorization codes
    async def save_code(self, code: AuthorizationCode) -> None:
        await self._conn.execute(s.INSERT_CODE, {
            "code_hash": code.code_hash, "client_id": code.client_id, "user_id": code.user_id,
            "redirect_uri": code.redirect_uri, "redirect_uri_explicit": code.redirect_uri_explicit,
            "code_challenge": code.code_challenge, "scope": str(code.scope), "audience": code.audience,
            "created_at": code.created_at, "expires_at": code.expires_at})

    async def get_code(self, code_hash: bytes) -> AuthorizationCode | None:
        row = await self._first(s.GET_CODE, {"p_hash": code_hash})
        return _code(row) if row else None

    async def consume_code(self, code_hash: bytes, grant_id: str, now: int) -> bool:
        row = await self._first(s.CONSUME_CODE, {"p_hash": code_hash, "p_now": now, "p_grant_id": grant_id})
        return row is not None

    # grants
    async def save_grant(self, grant: Grant) -> None:
        await self._conn.execute(s.INSERT_GRANT, {
            "id": grant.id, "client_id": grant.client_id, "user_id": grant.user_id, "scope": str(grant.scope),
            "audience": grant.audience, "created_at": grant.created_at, "expires_at": grant.expires_at,
            "revoked_at": grant.revoked_at})

    async def get_grant(self, grant_id: str, *, lock: bool = False) -> Grant | None:
        row = await self._first(s.LOCK_GRANT if lock else s.GET_GRANT, {"p_grant_id": grant_id})
        return _grant(row) if row else None

    async def lock_refresh_family(self, token_hash: bytes) -> Grant | None:
        row = await self._first(s.LOCK_REFRESH_FAMILY, {"p_hash": token_hash})
        return _grant(row) if row else None

    async def revoke_grant(self, grant_id: str, now: int) -> None:
        await self.get_grant(grant_id, lock=True)  # the family lock first, as rotation takes it
        params = {"p_grant_id": grant_id, "p_now": now}
        await self._conn.execute(s.REVOKE_GRANT, params)
        await self._conn.execute(s.REVOKE_GRANT_REFRESH_TOKENS, params)
        await self._conn.execute(s.REVOKE_GRANT_ACCESS_TOKENS, params)

    async def list_grants(self, *, user_id: str | None = None, client_id: str | None = None,
                          active_at: int | None = None) -> Sequence[Grant]:
        query = select(t.grants).order_by(t.grants.c.created_at)
        if user_id is not None:
            query = query.where(t.grants.c.user_id == user_id)
        if client_id is not None:
            query = query.where(t.grants.c.client_id == client_id)
        if active_at is not None:
            query = query.where(t.grants.c.revoked_at.is_(None), t.grants.c.expires_at > active_at)
        return [_grant(r) for r in await self._conn.execute(query)]

    async def revoke_user(self, user_id: str, now: int) -> int:
        grants = await self.list_grants(user_id=user_id, active_at=now)
        for grant in grants:
            await self.revoke_grant(grant.id, now)
        # Unredeemed codes and requests waiting on the consent page came from the old credentials too.
        await self._conn.execute(delete(t.authorization_codes).where(
            t.authorization_codes.c.user_id == user_id, t.authorization_codes.c.consumed_at.is_(None)))
        await self._conn.execute(delete(t.authorization_requests).where(t.authorization_requests.c.session_hash.in_(
            select(t.sessions.c.id_hash).where(t.sessions.c.user_id == user_id))))
        await self._conn.execute(delete(t.sessions).where(t.sessions.c.user_id == user_id))
        return len(grants)

    # refresh and access tokens
    async def save_refresh_token(self, token: RefreshToken) -> None:
        await self._conn.execute(s.INSERT_REFRESH_TOKEN, {
            "token_hash": token.token_hash, "grant_id": token.grant_id, "client_id": token.client_id,
            "scope": str(token.scope), "created_at": token.created_at, "expires_at": token.expires_at})

    async def get_refresh_token(self, token_hash: bytes) -> RefreshToken | None:
        row = await self._first(s.GET_REFRESH_TOKEN, {"p_hash": token_hash})
        return _refresh(row) if row else None

    async def consume_refresh_token(self, token_hash: bytes, now: int) -> RefreshToken | None:
        row = await self._first(s.CONSUME_REFRESH_TOKEN, {"p_hash": token_hash, "p_now": now})
        return _refresh(row) if row else None

    async def keep_successor(self, token_hash: bytes, successor_hash: bytes, sealed: bytes) -> None:
        await self._conn.execute(s.KEEP_SUCCESSOR, {
            "p_hash": token_hash, "p_successor_hash": successor_hash, "p_sealed": sealed})

    async def claim_grace_retry(self, token_hash: bytes, now: int) -> bool:
        return await self._first(s.CLAIM_GRACE_RETRY, {"p_hash": token_hash, "p_now": now}) is not None

    async def save_access_token(self, record: AccessTokenRecord) -> None:
        await self._conn.execute(s.INSERT_ACCESS_TOKEN, {
            "jti": record.jti, "grant_id": record.grant_id, "client_id": record.client_id,
            "expires_at": record.expires_at})

    async def get_access_token(self, jti: str) -> AccessTokenRecord | None:
        row = await self._first(s.GET_ACCESS_TOKEN, {"p_jti": jti})
        if row is None:
            return None
        return AccessTokenRecord(jti=row.jti, grant_id=row.grant_id, client_id=row.client_id,
                                 expires_at=row.expires_at, revoked_at=row.revoked_at)

    async def revoke_access_token(self, jti: str, client_id: str, expires_at: int, now: int) -> None:
        result = await self._conn.execute(s.REVOKE_ACCESS_TOKEN, {"p_jti": jti, "p_now": now})
        if result.rowcount == 0 and await self.get_access_token(jti) is None:
            await self._conn.execute(s.INSERT_ACCESS_TOKEN, {
                "jti": jti, "grant_id": None, "client_id": client_id, "expires_at": expires_at, "revoked_at": now})

    # rate limits
    async def lockout_seconds(self, keys: Sequence[str], now: int) -> int:
        rows = await self._conn.execute(s.LOCKOUTS, {"p_keys": list(keys), "p_now": now})
        return max((r.locked_until - now for r in rows), default=0)

    async def locked_keys(self, now: int) -> Mapping[str, int]:
        rows = await self._conn.execute(s.LOCKED_KEYS, {"p_now": now})
        return {r.key: r.locked_until for r in rows}

    async def count_attempt(self, key: str, now: int, *, limit: int, window: int, lock: int, max_lock: int,
                            refuse_when_locked: bool) -> tuple[bool, int]:
        # The row lock (PostgreSQL: SELECT ... FOR UPDATE; SQLite: BEGIN IMMEDIATE) makes read-count-write
        # one step: concurrent attempts on a key queue here, each seeing the count the previous one left.
        await self._conn.execute(s.START_FAILURE_WINDOW[self._conn.dialect.name], {
            "key": key, "window_start": now, "failures": 0, "locked_until": 0})
        row = await self._first(s.LOCK_FAILURES, {"p_key": key})
        admitted = row.locked_until <= now
        if not admitted and refuse_when_locked:
            return False, int(row.locked_until)
        failures, start = row.failures + 1, row.window_start
        if start + window <= now and admitted:  # a new window
            failures, start = 1, now
        locked_until = row.locked_until
        if failures >= limit:
            locked_until = now + min(lock * 2 ** min(failures - limit, 20), max_lock)
        await self._conn.execute(s.SET_FAILURES, {
            "p_key": key, "p_failures": failures, "p_window_start": start, "p_locked_until": locked_until})
        return admitted, int(locked_until)

    async def release_attempt(self, key: str, locked_until: int) -> None:
        await self._conn.execute(s.RELEASE_ATTEMPT, {"p_key": key, "p_locked_until": locked_until})

    async def clear_failures(self, key: str) -> None:
        await self._conn.execute(s.CLEAR_FAILURES, {"p_key": key})

    # maintenance
    async def lock_maintenance(self) -> None:
        if self._conn.dialect.name == "postgresql":  # SQLite's BEGIN IMMEDIATE already excludes other writers
            await self._conn.execute(text("SELECT pg_advisory_xact_lock(7414726)"))

    async def purge(self, now: int, *, keep_revoked_until: int, successor_until: int) -> dict[str, int]:
        counts: dict[str, int] = {}

        async def run(name: str, statement: Any) -> None:
            counts[name] = counts.get(name, 0) + (await self._conn.execute(statement)).rowcount

        await run("authorization_codes", delete(t.authorization_codes).where(t.authorization_codes.c.expires_at < now))
        await run("authorization_requests",
                  delete(t.authorization_requests).where(t.authorization_requests.c.expires_at < now))
        await run("sessions", delete(t.sessions).where(t.sessions.c.expires_at < now))
        await run("access_tokens", delete(t.access_tokens).where(t.access_tokens.c.expires_at < now))
        await run("refresh_tokens", delete(t.refresh_tokens).where(t.refresh_tokens.c.expires_at < now))
        g = t.grants.c
        await run("grants", delete(t.grants).where(
            (g.expires_at < now) | (g.revoked_at.is_not(None) & (g.revoked_at < keep_revoked_until))))
        await self._conn.execute(update(t.refresh_tokens).where(
            t.refresh_tokens.c.successor_sealed.is_not(None), t.refresh_tokens.c.consumed_at < successor_until
        ).values(successor_sealed=None))
        await run("rate_limits", delete(t.rate_limits).where(
            t.rate_limits.c.locked_until < now, t.rate_limits.c.window_start < now - 86400))
        await run("signing_keys", delete(t.signing_keys).where(
            t.signing_keys.c.expires_at.is_not(None), t.signing_keys.c.expires_at < now))
        return counts

    # signing keys
    async def list_signing_keys(self) -> Sequence[SigningKey]:
        rows = await self._conn.execute(select(t.signing_keys).order_by(t.signing_keys.c.created_at))
        return [_key(r) for r in rows]

    async def save_signing_key(self, key: SigningKey) -> None:
        await self._conn.execute(insert(t.signing_keys).values(
            kid=key.kid, alg=key.alg, public_jwk=key.public_jwk, private_jwk_sealed=key.private_jwk_sealed,
            created_at=key.created_at, activates_at=key.activates_at, retires_at=key.retires_at,
            expires_at=key.expires_at))

    async def schedule_key_retirement(self, kid: str, retires_at: int, expires_at: int) -> None:
        await self._conn.execute(update(t.signing_keys).where(t.signing_keys.c.kid == kid).values(
            retires_at=retires_at, expires_at=expires_at))
