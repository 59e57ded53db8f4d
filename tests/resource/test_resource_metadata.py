"""The RFC 9728 builder every adapter serves from: where the document lives (§3.1), what it says (§2), which
identifiers can have one (§1.2), and the ``resource_metadata`` challenge parameter (§5.1)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tokenward.protocol.bearer import InsufficientScopeError, InvalidTokenError, MissingTokenError
from tokenward.resource import JwtVerifier
from tokenward.resource.metadata import ResourceMetadata, metadata_path, metadata_url


@pytest.mark.parametrize(("resource", "path"), [
    ("https://api.example", "/.well-known/oauth-protected-resource"),
    ("https://api.example/", "/.well-known/oauth-protected-resource"),
    ("https://api.example/mcp", "/.well-known/oauth-protected-resource/mcp"),
    ("https://api.example/mcp/", "/.well-known/oauth-protected-resource/mcp"),  # terminating slash removed
    ("https://api.example:8443/a/b", "/.well-known/oauth-protected-resource/a/b"),
    ("http://127.0.0.1:8002/mcp", "/.well-known/oauth-protected-resource/mcp"),
])
def test_metadata_path_inserts_the_well_known_segment_between_host_and_path(resource: str, path: str) -> None:
    assert metadata_path(resource) == path


def test_metadata_url_is_on_the_identifiers_own_origin() -> None:
    assert metadata_url("https://api.example:8443/mcp") == (
        "https://api.example:8443/.well-known/oauth-protected-resource/mcp")
    assert metadata_url("http://127.0.0.1:8001") == "http://127.0.0.1:8001/.well-known/oauth-protected-resource"


def test_document_names_resource_servers_scopes_methods_and_name() -> None:
    metadata = ResourceMetadata(resource="https://api.example/mcp", authorization_servers=("https://as.example",),
                                scopes_supported=("files:read", "files:write"), resource_name="Files")
    assert json.loads(metadata.body()) == {
        "resource": "https://api.example/mcp", "authorization_servers": ["https://as.example"],
        "bearer_methods_supported": ["header"], "scopes_supported": ["files:read", "files:write"],
        "resource_name": "Files"}
    assert metadata.headers()["Content-Type"] == "application/json"


def test_optional_members_are_left_out_when_unset() -> None:
    metadata = ResourceMetadata(resource="https://api.example", authorization_servers=("https://as.example",))
    assert set(metadata.document()) == {"resource", "authorization_servers", "bearer_methods_supported"}


def test_for_verifier_takes_resource_from_audience_and_server_from_issuer() -> None:
    verifier = JwtVerifier(issuer="http://127.0.0.1:8000", audience="http://127.0.0.1:8001",
                           jwks_uri="http://127.0.0.1:8000/jwks")
    metadata = ResourceMetadata.for_verifier(verifier, scopes_supported=["profile:read"])
    doc = metadata.document()
    assert doc["resource"] == "http://127.0.0.1:8001"
    assert doc["authorization_servers"] == ["http://127.0.0.1:8000"]
    assert doc["scopes_supported"] == ["profile:read"]
    assert metadata.url == "http://127.0.0.1:8001/.well-known/oauth-protected-resource"


@pytest.mark.parametrize("resource", [
    "urn:tokenward:api",                 # not a URL: no well-known location exists for it
    "https://api.example/mcp#frag",      # RFC 9728 §1.2: no fragment
    "https://api.example/mcp?tenant=1",  # a query is not supported here
    "http://api.example/mcp",            # http away from loopback
    "ftp://api.example/",
    "",
])
def test_identifiers_that_cannot_have_metadata_are_refused_at_construction(resource: str) -> None:
    with pytest.raises(ValueError):
        ResourceMetadata(resource=resource, authorization_servers=("https://as.example",))


def test_metadata_needs_an_authorization_server() -> None:
    with pytest.raises(ValueError):
        ResourceMetadata(resource="https://api.example", authorization_servers=())


def test_every_challenge_can_name_the_metadata_url() -> None:
    url = "https://api.example/.well-known/oauth-protected-resource/mcp"
    assert MissingTokenError().challenge("api", url) == f'Bearer realm="api", resource_metadata="{url}"'
    invalid = InvalidTokenError("The access token has expired.").challenge("api", url)
    assert invalid.endswith(f', resource_metadata="{url}"') and 'error="invalid_token"' in invalid
    scoped = InsufficientScopeError("d", scope="files:write").challenge("api", url)
    assert 'error="insufficient_scope"' in scoped and 'scope="files:write"' in scoped
    assert f'resource_metadata="{url}"' in scoped
    assert MissingTokenError().challenge("api") == 'Bearer realm="api"'


def test_guard_imports_without_mcp_installed() -> None:
    """The MCP adapter is an optional extra: everything else of tokenward.resource loads without it."""
    code = ("import sys; sys.modules['mcp'] = None\n"
            "import tokenward.resource, tokenward.resource.metadata, tokenward.resource.asgi\n"
            "import tokenward.resource.fastapi, tokenward.resource.flask, tokenward.resource.demo\n"
            "try:\n    import tokenward.resource.mcp\nexcept ImportError:\n    print('adapter needs mcp')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "adapter needs mcp"
