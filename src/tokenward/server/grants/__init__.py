"""The grant registry: one module per grant type, each exposing ``grant_type`` and ``exchange``."""

from __future__ import annotations

from tokenward.protocol.types import GrantType
from tokenward.server.grants import authorization_code, client_credentials, device_code, refresh_token
from tokenward.server.grants.base import GrantHandler

GRANTS: dict[GrantType, GrantHandler] = {
    module.grant_type: module.exchange
    for module in (authorization_code, refresh_token, client_credentials, device_code)
}
