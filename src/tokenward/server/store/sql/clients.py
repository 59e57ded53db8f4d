"""Registered clients (``ClientStore``)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import bindparam, delete, insert, select, update

from tokenward.protocol.scope import Scope
from tokenward.protocol.types import GrantType
from tokenward.server.model import Client
from tokenward.server.store.sql import tables as t
from tokenward.server.store.sql.base import SqlAggregate, unstorable

GET_CLIENT = select(t.clients).where(t.clients.c.client_id == bindparam("p_client_id"))


def _client(row: Any) -> Client:
    return Client(
        client_id=row.client_id, name=row.name, public=bool(row.public), secret_hash=row.secret_hash,
        redirect_uris=tuple(json.loads(row.redirect_uris)),
        grant_types=tuple(GrantType(g) for g in json.loads(row.grant_types)),
        scope=Scope.parse(row.scope), audiences=tuple(json.loads(row.audiences)),
        access_token_ttl=row.access_token_ttl, signing_alg=row.signing_alg, created_at=row.created_at,
        id_token_signing_alg=row.id_token_signing_alg, pkce_optional=bool(row.pkce_optional),
        post_logout_redirect_uris=tuple(json.loads(row.post_logout_redirect_uris or "[]")),
    )


class SqlClients(SqlAggregate):
    """Clients: read by every token request (through the client cache), written by the admin CLI."""

    async def get_client(self, client_id: str) -> Client | None:
        if unstorable(client_id):
            return None
        row = await self._first(GET_CLIENT, {"p_client_id": client_id})
        return _client(row) if row else None

    async def save_client(self, client: Client) -> None:
        await self._conn.execute(insert(t.clients).values(
            client_id=client.client_id, name=client.name, public=client.public, secret_hash=client.secret_hash,
            redirect_uris=json.dumps(list(client.redirect_uris)),
            grant_types=json.dumps([g.value for g in client.grant_types]), scope=str(client.scope),
            audiences=json.dumps(list(client.audiences)), access_token_ttl=client.access_token_ttl,
            signing_alg=client.signing_alg, created_at=client.created_at,
            id_token_signing_alg=client.id_token_signing_alg, pkce_optional=client.pkce_optional or None,
            post_logout_redirect_uris=json.dumps(list(client.post_logout_redirect_uris))
            if client.post_logout_redirect_uris else None,
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
