"""The resource-server guard: validate RFC 9068 access tokens from any issuer.

Independent of ``tokenward.server``: it needs only an issuer's metadata and JWKS.
"""

from tokenward.resource.introspection import IntrospectionVerifier
from tokenward.resource.principal import Principal, TokenVerifier
from tokenward.resource.verifier import JwtVerifier

__all__ = ["IntrospectionVerifier", "JwtVerifier", "Principal", "TokenVerifier"]
