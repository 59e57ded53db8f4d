"""Wire values as enums, so a typo is a type error instead of a silent mismatch."""

from __future__ import annotations

from enum import StrEnum


class GrantType(StrEnum):
    AUTHORIZATION_CODE = "authorization_code"
    REFRESH_TOKEN = "refresh_token"
    CLIENT_CREDENTIALS = "client_credentials"
    DEVICE_CODE = "urn:ietf:params:oauth:grant-type:device_code"  # RFC 8628 §3.4


class ClientAuthMethod(StrEnum):
    CLIENT_SECRET_BASIC = "client_secret_basic"
    CLIENT_SECRET_POST = "client_secret_post"
    NONE = "none"


class ResponseType(StrEnum):
    CODE = "code"


class CodeChallengeMethod(StrEnum):
    S256 = "S256"


class TokenTypeHint(StrEnum):
    ACCESS_TOKEN = "access_token"
    REFRESH_TOKEN = "refresh_token"


class SigningAlg(StrEnum):
    """JWS algorithms the server can sign access tokens with (RFC 9068 §2.1 requires RS256 support)."""

    ES256 = "ES256"
    RS256 = "RS256"
    EDDSA = "EdDSA"
