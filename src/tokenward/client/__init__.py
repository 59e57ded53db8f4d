"""The self-renewing OAuth 2.1 client: discovery, login (RFC 8252), token stores and auth adapters.

Independent of ``tokenward.server``: it works with any RFC 8414 authorization server, and with ``openid`` in
the scope it is an OpenID Connect relying party (``oidc.py``: nonce, ID-token validation, userinfo, logout).

    auth = BearerAuth.from_login("https://auth.example", "my-cli")   # tokens from `tokenward login`
    with httpx2.Client(auth=auth) as http:
        http.get("https://api.example/user/profile")
"""

from tokenward.client.auth import BearerAuth, RequestsAuth, TokenManager
from tokenward.client.discovery import ServerMetadata, discover, discover_async
from tokenward.client.errors import (
    AuthorizationError,
    ClientError,
    DiscoveryError,
    IdTokenError,
    LoginRequiredError,
    LoginTimeoutError,
    StoreError,
    TokenEndpointError,
    UserInfoError,
)
from tokenward.client.flow import ClientConfig, Token
from tokenward.client.loopback import LoopbackListener, login
from tokenward.client.store import (
    EncryptedFileTokenStore,
    KeyFileKey,
    KeyringKey,
    KeyringTokenStore,
    MemoryTokenStore,
    PassphraseKey,
    TokenStore,
    default_store,
)

__all__ = [
    "AuthorizationError", "BearerAuth", "ClientConfig", "ClientError", "DiscoveryError", "EncryptedFileTokenStore",
    "IdTokenError", "KeyFileKey", "KeyringKey", "KeyringTokenStore", "LoginRequiredError", "LoginTimeoutError",
    "LoopbackListener", "MemoryTokenStore", "PassphraseKey", "RequestsAuth", "ServerMetadata", "StoreError", "Token",
    "TokenEndpointError", "TokenManager", "TokenStore", "UserInfoError", "default_store", "discover",
    "discover_async", "login",
]
