"""What every aggregate's SQL shares: the connection it runs on, one transaction's worth.

Each aggregate module builds the statements of the request paths (token, authorize, introspect, revoke, rate
limits) once, as module constants: building a Core statement per call and deriving its cache key cost
SQLAlchemy 150 to 340 µs on the bench machine; running a prebuilt one with bound parameters costs 30 to 60 µs.
A refresh runs five of them. Admin and maintenance statements stay inline where they are used: they are rare.
Prebuilt inserts are the bare ``insert(table)``: the parameters dict names the columns.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from sqlalchemy import CursorResult, Dialect, Executable


class Executor(Protocol):
    """An AsyncConnection, or a SQLite connection on the loop."""

    @property
    def dialect(self) -> Dialect: ...

    async def execute(self, statement: Executable, parameters: Mapping[str, Any] | None = None
                      ) -> CursorResult[Any]: ...


class SqlAggregate:
    """The base of each aggregate's operations: all of them run on one connection inside one transaction."""

    def __init__(self, conn: Executor) -> None:
        self._conn = conn

    async def _first(self, statement: Executable, parameters: Mapping[str, Any]) -> Any:
        return (await self._conn.execute(statement, parameters)).first()


def unstorable(value: str) -> bool:
    """PostgreSQL text cannot hold NUL (it raises instead of matching nothing): no stored row has one."""
    return "\x00" in value
