"""The seed's protected API: ``GET /user/profile`` needs ``profile:read``.

It trusts whichever RFC 9068 issuer it is given (found through RFC 8414 metadata), so it is also the
reference for protecting your own FastAPI app. When its audience is its own URL (``--audience
http://127.0.0.1:8001``), it serves its RFC 9728 metadata with that ``resource`` and names it in its challenges.
"""


from typing import Annotated, Any

from fastapi import FastAPI

from tokenward.resource.fastapi import TokenwardBearer
from tokenward.resource.metadata import ResourceMetadata
from tokenward.resource.principal import Principal
from tokenward.resource.verifier import JwtVerifier

DEFAULT_AUDIENCE = "urn:tokenward:api"
SCOPES = ("profile:read",)


def is_url(audience: str) -> bool:
    return audience.startswith(("https://", "http://"))


def create_demo_app(issuer: str, audience: str = DEFAULT_AUDIENCE) -> FastAPI:
    verifier = JwtVerifier(issuer=issuer, audience=audience)
    # An audience that is a URL is this API's resource identifier (RFC 9728 §1.2); a URN cannot be one.
    metadata = ResourceMetadata.for_verifier(verifier, scopes_supported=SCOPES, resource_name="Tokenward demo API"
                                             ) if is_url(audience) else None
    guard = TokenwardBearer(verifier, realm="tokenward-demo", resource_metadata=metadata)
    app = FastAPI(title="Tokenward demo API", version="1.0",
                  description=f"A protected API trusting access tokens from {issuer} for audience {audience}.")
    if metadata is not None:
        guard.serve_metadata(app)

    ProfileReader = Annotated[Principal, guard.require_scopes("profile:read")]

    @app.get("/user/profile")
    async def user_profile(principal: ProfileReader) -> dict[str, Any]:
        """The caller's profile, as the seed tutorial's resource server returns it."""
        return {
            "sub": principal.subject,
            "client_id": principal.client_id,
            "scope": " ".join(sorted(principal.scopes)),
            "token_expires_at": principal.expires_at,
            "profile": {"id": principal.subject, "display_name": f"User {principal.subject[:8]}"},
        }

    @app.get("/health", include_in_schema=False)
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    return app
