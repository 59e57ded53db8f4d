"""The seed's protected API: ``GET /user/profile`` needs ``profile:read``.

It trusts whichever RFC 9068 issuer it is given (found through RFC 8414 metadata), so it is also the
reference for protecting your own FastAPI app.
"""


from typing import Annotated, Any

from fastapi import FastAPI

from tokenward.resource.fastapi import TokenwardBearer
from tokenward.resource.principal import Principal
from tokenward.resource.verifier import JwtVerifier

DEFAULT_AUDIENCE = "urn:tokenward:api"


def create_demo_app(issuer: str, audience: str = DEFAULT_AUDIENCE) -> FastAPI:
    verifier = JwtVerifier(issuer=issuer, audience=audience)
    guard = TokenwardBearer(verifier, realm="tokenward-demo")
    app = FastAPI(title="Tokenward demo API", version="1.0",
                  description=f"A protected API trusting access tokens from {issuer} for audience {audience}.")

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
