"""An MCP server protected by Tokenward: the official ``mcp`` SDK over streamable HTTP at ``/mcp``, its token
verification done by Tokenward's guard (``tokenward.resource.mcp``), one tool that tells the caller who it is.

    python examples/mcp_server.py --issuer http://127.0.0.1:8000 [--host 127.0.0.1] [--port 8002]

Its resource identifier is ``http://HOST:PORT/mcp``. The SDK serves the RFC 9728 metadata for it at
``/.well-known/oauth-protected-resource/mcp`` (``resource`` = that identifier, ``authorization_servers`` = the
issuer) and answers a request without a valid token with 401 and ``resource_metadata``. Tokens must carry
``aud`` = the identifier, so the client asks for ``resource=http://HOST:PORT/mcp`` and the Tokenward server lets it:

    tokenward clients add my-agent --grant-type client_credentials --scope "profile:read" \\
        --audience http://127.0.0.1:8002/mcp

(``make mcp-demo`` runs both servers.) Needs ``pip install tokenward[mcp]``.
"""

from __future__ import annotations

import argparse
from typing import Any

from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.mcpserver import MCPServer

from tokenward.resource import JwtVerifier
from tokenward.resource.mcp import McpTokenVerifier, auth_settings

REQUIRED_SCOPES = ("profile:read",)


def create_server(issuer: str, host: str = "127.0.0.1", port: int = 8002) -> MCPServer:
    resource = f"http://{host}:{port}/mcp"  # this server's resource identifier: the audience its tokens must name
    verifier = JwtVerifier(issuer=issuer, audience=resource)
    server: MCPServer = MCPServer("tokenward-whoami", token_verifier=McpTokenVerifier(verifier),
                                  auth=auth_settings(verifier, required_scopes=REQUIRED_SCOPES))

    @server.tool()
    async def whoami() -> dict[str, Any]:
        """The caller as the access token says: its subject (the user, or the client for client credentials),
        client and scopes."""
        token = get_access_token()
        if token is None:  # unreachable: the SDK refuses unauthenticated calls before any tool runs
            raise RuntimeError("no access token")
        return {"subject": token.subject, "client_id": token.client_id, "scopes": sorted(token.scopes)}

    return server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--issuer", required=True, help="The Tokenward server whose tokens to trust (exact issuer).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", default=8002, type=int)
    args = parser.parse_args()
    print(f"MCP server at http://{args.host}:{args.port}/mcp trusting {args.issuer}", flush=True)
    create_server(args.issuer, args.host, args.port).run("streamable-http", host=args.host, port=args.port)


if __name__ == "__main__":
    main()
