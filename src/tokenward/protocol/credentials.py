"""Client credentials from the request (RFC 6749 §2.3.1 and Appendix B).

Basic credentials are form-urlencoded before base64 (§2.3.1), so ``%`` escapes and ``+`` are decoded here;
anything not decodable is ``invalid_request`` (node-oidc-provider and fosite agree).
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field
from urllib.parse import unquote_plus

from .errors import InvalidClientError, InvalidRequestError
from .types import ClientAuthMethod

_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9\-]*")
_VSCHAR = re.compile(r"^[\x20-\x7E]*$")


@dataclass(frozen=True, slots=True)
class ClientCredentials:
    """Who the client says it is, and how; ``secret`` never appears in reprs."""

    client_id: str
    method: ClientAuthMethod
    secret: str | None = field(default=None, repr=False)


def _form_decode(value: str) -> str:
    if _BAD_ESCAPE.search(value):
        raise InvalidRequestError("The client credentials are not properly form-encoded.")
    try:
        decoded = unquote_plus(value, errors="strict")
    except UnicodeDecodeError:
        raise InvalidRequestError("The client credentials are not properly form-encoded.") from None
    if not _VSCHAR.fullmatch(decoded):
        raise InvalidRequestError("The client credentials contain invalid characters.")
    return decoded


def parse_basic(header_value: str) -> tuple[str, str]:
    """Decode ``Basic <b64(urlenc(id):urlenc(secret))>``; the scheme name is case-insensitive."""
    scheme, _, encoded = header_value.strip().partition(" ")
    if scheme.lower() != "basic" or not encoded.strip():
        raise InvalidRequestError("The Authorization header is malformed.")
    try:
        raw = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        raise InvalidRequestError("The Basic credentials are not valid base64.") from None
    if ":" not in raw:
        raise InvalidRequestError("The Basic credentials are malformed.")
    user, _, password = raw.partition(":")
    client_id, secret = _form_decode(user), _form_decode(password)
    if not client_id:
        raise InvalidRequestError("The Basic credentials carry no client_id.")
    if not secret:
        raise InvalidRequestError("The Basic credentials carry no client_secret.")
    return client_id, secret


def parse_client_credentials(authorization: str | None, form: dict[str, str]) -> ClientCredentials | None:
    """Find the one authentication method the client used (RFC 6749 §2.3: only one per request).

    Returns None when the request carries no client identification at all.
    Used by: the token, revocation and introspection endpoints.
    """
    form_id = form.get("client_id")
    form_secret = form.get("client_secret")
    if authorization is not None:
        scheme = authorization.strip().partition(" ")[0]
        if scheme.lower() != "basic":
            if _SCHEME.fullmatch(scheme):  # RFC 6749 §5.2: an unsupported method is invalid_client (401)
                raise InvalidClientError("Only Basic client authentication is supported in the header.")
            raise InvalidRequestError("The Authorization header is malformed.")
        client_id, secret = parse_basic(authorization)
        if form_secret is not None:
            raise InvalidRequestError("Client authentication must use only one method.")
        if form_id is not None and form_id != client_id:
            raise InvalidRequestError("The client_id in the body does not match the Authorization header.")
        return ClientCredentials(client_id, ClientAuthMethod.CLIENT_SECRET_BASIC, secret)
    if form_id is None:
        if form_secret is not None:
            raise InvalidRequestError("client_secret was sent without client_id.")
        return None
    if form_secret is not None:
        return ClientCredentials(form_id, ClientAuthMethod.CLIENT_SECRET_POST, form_secret)
    return ClientCredentials(form_id, ClientAuthMethod.NONE)
