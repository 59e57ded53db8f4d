"""SqlTransaction: every aggregate's operations, composed over one connection (``protocols.Transaction``)."""

from __future__ import annotations

from tokenward.server.store.sql.access_tokens import SqlAccessTokens
from tokenward.server.store.sql.base import Executor
from tokenward.server.store.sql.clients import SqlClients
from tokenward.server.store.sql.codes import SqlCodes
from tokenward.server.store.sql.consents import SqlConsents
from tokenward.server.store.sql.device_codes import SqlDeviceAuthorizations
from tokenward.server.store.sql.grants import SqlGrants, SqlRefreshTokens
from tokenward.server.store.sql.keys import SqlKeys
from tokenward.server.store.sql.maintenance import SqlMaintenance
from tokenward.server.store.sql.rate_limits import SqlRateLimits
from tokenward.server.store.sql.sessions import SqlAuthorizationRequests, SqlSessions
from tokenward.server.store.sql.users import SqlUsers


class SqlTransaction(
    SqlClients, SqlUsers, SqlSessions, SqlAuthorizationRequests, SqlConsents, SqlCodes,
    SqlDeviceAuthorizations, SqlGrants, SqlRefreshTokens, SqlAccessTokens, SqlKeys, SqlRateLimits,
    SqlMaintenance,
):
    """All storage operations on one connection inside one transaction (request paths run prebuilt statements)."""

    def __init__(self, conn: Executor) -> None:
        super().__init__(conn)
        self.keeps_on_error = False

    def keep_on_error(self) -> None:
        self.keeps_on_error = True
