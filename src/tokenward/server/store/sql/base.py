"""What every aggregate's SQL shares: the connection it runs on, one transaction's worth."""

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
