"""Login sessions and pending authorization requests (``SessionStore``, ``AuthorizationRequestStore``)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import bindparam, delete, insert, select, update

from tokenward.protocol.scope import Scope
from tokenward.server.model import AuthorizationRequest, OidcContext, Session
from tokenward.server.store.sql import tables as t
from tokenward.server.store.sql.base import SqlAggregate, unstorable

_requests = t.authorization_requests.c

INSERT_SESSION = insert(t.sessions)
GET_SESSION = select(t.sessions).where(t.sessions.c.id_hash == bindparam("p_id_hash"),
                                       t.sessions.c.expires_at > bindparam("p_now"))
DELETE_SESSION = delete(t.sessions).where(t.sessions.c.id_hash == bindparam("p_id_hash"))

INSERT_AUTHORIZATION_REQUEST = insert(t.authorization_requests)
GET_AUTHORIZATION_REQUEST = select(t.authorization_requests).where(
    _requests.id == bindparam("p_id"), _requests.expires_at > bindparam("p_now"))
REBIND_AUTHORIZATION_REQUEST = update(t.authorization_requests).where(_requests.id == bindparam("p_id")).values(
    session_hash=bindparam("p_session_hash"), oidc=bindparam("p_oidc"))
DELETE_AUTHORIZATION_REQUEST = delete(t.authorization_requests).where(_requests.id == bindparam("p_id"))


def _request(row: Any) -> AuthorizationRequest:
    return AuthorizationRequest(
        id=row.id, client_id=row.client_id, redirect_uri=row.redirect_uri,
        redirect_uri_explicit=bool(row.redirect_uri_explicit), scope=Scope.parse(row.scope), state=row.state,
        code_challenge=row.code_challenge, audience=row.audience, csrf_token=row.csrf_token,
        session_hash=row.session_hash, created_at=row.created_at, expires_at=row.expires_at,
        oidc=OidcContext.from_json(row.oidc),
    )


class SqlSessions(SqlAggregate):
    """Browser sessions, by the hash of their cookie."""

    async def save_session(self, session: Session) -> None:
        await self._conn.execute(INSERT_SESSION, {
            "id_hash": session.id_hash, "user_id": session.user_id, "created_at": session.created_at,
            "expires_at": session.expires_at, "sid": session.sid})

    async def get_session(self, id_hash: bytes, now: int) -> Session | None:
        row = await self._first(GET_SESSION, {"p_id_hash": id_hash, "p_now": now})
        if row is None:
            return None
        return Session(id_hash=row.id_hash, user_id=row.user_id, created_at=row.created_at,
                       expires_at=row.expires_at, sid=row.sid)

    async def delete_session(self, id_hash: bytes) -> None:
        await self._conn.execute(DELETE_SESSION, {"p_id_hash": id_hash})


class SqlAuthorizationRequests(SqlAggregate):
    """Authorization requests waiting on the login or consent page."""

    async def save_authorization_request(self, request: AuthorizationRequest) -> None:
        await self._conn.execute(INSERT_AUTHORIZATION_REQUEST, {
            "id": request.id, "client_id": request.client_id, "redirect_uri": request.redirect_uri,
            "redirect_uri_explicit": request.redirect_uri_explicit, "scope": str(request.scope),
            "state": request.state, "code_challenge": request.code_challenge, "audience": request.audience,
            "csrf_token": request.csrf_token, "session_hash": request.session_hash,
            "created_at": request.created_at, "expires_at": request.expires_at,
            "oidc": request.oidc.to_json() if request.oidc else None})

    async def get_authorization_request(self, request_id: str, now: int) -> AuthorizationRequest | None:
        if unstorable(request_id):
            return None
        row = await self._first(GET_AUTHORIZATION_REQUEST, {"p_id": request_id, "p_now": now})
        return _request(row) if row else None

    async def rebind_authorization_request(self, request_id: str, session_hash: bytes,
                                           oidc: OidcContext | None = None) -> None:
        """Move the request to the session a sign-in created, with its context (now with ``auth_time``)."""
        await self._conn.execute(REBIND_AUTHORIZATION_REQUEST, {
            "p_id": request_id, "p_session_hash": session_hash, "p_oidc": oidc.to_json() if oidc else None})

    async def delete_authorization_request(self, request_id: str) -> bool:
        result = await self._conn.execute(DELETE_AUTHORIZATION_REQUEST, {"p_id": request_id})
        return result.rowcount == 1
