"""The OpenAPI 3.1 description of the HTTP endpoints, served at /openapi.json.

Hand-written (the endpoints take form bodies that no framework would describe well) and kept in sync with
the routes table by tests/e2e/test_openapi.py; schemathesis fuzzes the server against it.
"""

from __future__ import annotations

from typing import Any

OAUTH_ERRORS = ["invalid_request", "invalid_client", "invalid_grant", "unauthorized_client",
                "unsupported_grant_type", "invalid_scope", "invalid_target", "slow_down", "server_error",
                "temporarily_unavailable", "authorization_pending", "access_denied", "expired_token"]

NO_STORE = {"Cache-Control": {"schema": {"type": "string", "const": "no-store"}, "required": True}}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "headers": NO_STORE,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/OAuthError"}}}}


def _form(properties: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = required
    return {"required": True, "content": {"application/x-www-form-urlencoded": {"schema": schema}}}


def _html(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"text/html": {"schema": {"type": "string"}}}}


STR = {"type": "string"}
AUTHORIZE_PARAMETERS = ("response_type", "client_id", "redirect_uri", "scope", "state", "code_challenge",
                        "code_challenge_method", "resource", "nonce", "prompt", "max_age", "login_hint",
                        "id_token_hint", "claims", "response_mode", "display", "ui_locales", "claims_locales",
                        "acr_values", "request", "request_uri")
AUTHORIZE_RESPONSES = {
    "200": _html("response_mode=form_post: a page that posts the response to the client"),
    "303": {"description": "To the login or consent page, or the response (code or error) back to the client"},
    "400": _html("Unknown client or redirect URI, or a malformed request: an error page, never a redirect"),
    "429": _html("Too many authorization requests from this network"),
    "503": _html("Database unavailable")}
CLIENT_AUTH_FIELDS = {"client_id": STR, "client_secret": STR}
ENDPOINT_ERRORS = {
    "400": _error("invalid_request, invalid_grant, invalid_scope, unsupported_grant_type, … (RFC 6749 §5.2)"),
    "401": {**_error("invalid_client; a Basic challenge is sent"),
            "headers": {**NO_STORE, "WWW-Authenticate": {"schema": STR, "required": True}}},
    "405": _error("Only POST is accepted"),
    "408": _error("The body was not received within 10 s"),
    "413": _error("The body is larger than the limit"),
    "429": {**_error("slow_down: too many failed client authentications"),
            "headers": {**NO_STORE, "Retry-After": {"schema": STR, "required": True}}},
    "503": _error("temporarily_unavailable: the database cannot be reached"),
}
BEARER_HEADERS = {**NO_STORE, "WWW-Authenticate": {"schema": {"type": "string", "pattern": "^Bearer "},
                                                   "required": True}}


def _bearer_error(description: str) -> dict[str, Any]:
    return {"description": description, "headers": BEARER_HEADERS,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/BearerError"}}}}


USERINFO_RESPONSES = {
    "200": {"description": "The user's released claims (OIDC Core §5.3.2)", "headers": NO_STORE, "content": {
        "application/json": {"schema": {"$ref": "#/components/schemas/UserInfo"}}}},
    "400": {**_bearer_error("invalid_request: the token sent twice or a malformed header (RFC 6750 §3.1)"),
            "headers": NO_STORE},
    "401": _bearer_error("No token (bare challenge) or invalid_token"),
    "403": _bearer_error("insufficient_scope: the token's scope lacks openid"),
    "405": _error("Only GET and POST are accepted"),
    "408": _error("The body was not received within 10 s"),
    "413": _error("The body is larger than the limit"),
    "429": {**_error("slow_down: too many invalid tokens from this address"),
            "headers": {**NO_STORE, "Retry-After": {"schema": STR, "required": True}}},
    "503": _error("temporarily_unavailable: the database cannot be reached"),
}
PAGE_RESPONSES = {"200": _html("The page"), "303": {"description": "Next step, or back to the client"},
                  "400": _html("Error page"), "401": _html("Wrong username or password"),
                  "403": _html("Cross-site form or expired form"), "413": _error("Body too large"),
                  "429": _html("Too many failed sign-in attempts or wrong device codes"),
                  "503": _html("Database unavailable")}

END_SESSION_PARAMETERS = ("id_token_hint", "client_id", "post_logout_redirect_uri", "state", "logout_hint",
                          "ui_locales")
LOGOUT_RESPONSES = {"200": _html("Confirmation page, or signed out"),
                    "303": {"description": "Back to the registered post_logout_redirect_uri, with state"},
                    "400": _html("Malformed request, or client_id other than the hint's audience"),
                    "403": _html("Cross-site form or expired form"), "503": _html("Database unavailable")}


def openapi_document(issuer: str) -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {"title": "Tokenward authorization server", "version": "1.0",
                 "description": "OAuth 2.1 authorization server (RFC 6749, 6750, 7009, 7636, 7662, 8414, 8628, "
                                "9068, 9207) and OpenID Provider (OIDC Core 1.0, Discovery 1.0)."},
        "servers": [{"url": issuer}],
        "components": {
            "securitySchemes": {"clientSecretBasic": {"type": "http", "scheme": "basic"},
                                "bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "OAuthError": {"type": "object", "required": ["error"], "properties": {
                    "error": {"type": "string", "enum": OAUTH_ERRORS},
                    "error_description": {"type": "string", "pattern": "^[\\x20-\\x21\\x23-\\x5B\\x5D-\\x7E]*$"}}},
                "BearerError": {"type": "object", "required": ["error"], "properties": {
                    "error": {"type": "string", "enum": ["invalid_request", "invalid_token", "insufficient_scope",
                                                         "unauthorized"]},
                    "error_description": {"type": "string", "pattern": "^[\\x20-\\x21\\x23-\\x5B\\x5D-\\x7E]*$"}}},
                "UserInfo": {"type": "object", "required": ["sub"], "properties": {"sub": STR}},
                "TokenResponse": {"type": "object", "required": ["access_token", "token_type", "expires_in"],
                                  "properties": {"access_token": STR, "token_type": {"const": "Bearer"},
                                                 "expires_in": {"type": "integer"}, "scope": STR,
                                                 "refresh_token": STR}},
                "DeviceAuthorizationResponse": {
                    "type": "object",
                    "required": ["device_code", "user_code", "verification_uri", "expires_in", "interval"],
                    "properties": {"device_code": STR,
                                   "user_code": {"type": "string", "pattern": "^[A-Z]{4}-[A-Z]{4}$"},
                                   "verification_uri": STR, "verification_uri_complete": STR,
                                   "expires_in": {"type": "integer"}, "interval": {"type": "integer"}}},
                "Introspection": {"type": "object", "required": ["active"], "properties": {
                    "active": {"type": "boolean"}, "scope": STR, "client_id": STR, "sub": STR,
                    "aud": {"type": ["string", "array"]}, "iss": STR, "exp": {"type": "integer"},
                    "iat": {"type": "integer"}, "jti": STR, "token_type": STR}},
            },
        },
        "paths": {
            "/": {"get": {"summary": "Home page", "responses": {"200": _html("What is running")}}},
            "/authorize": {"get": {
                "summary": "Authorization request (RFC 6749 §4.1.1, PKCE S256 required; OIDC Core §3.1.2.1)",
                "parameters": [{"name": n, "in": "query", "required": False, "schema": STR}
                               for n in AUTHORIZE_PARAMETERS],
                "responses": AUTHORIZE_RESPONSES},
                "post": {"summary": "The same authorization request as a form body (OIDC Core §3.1.2.1)",
                         "requestBody": _form({n: STR for n in AUTHORIZE_PARAMETERS}),
                         "responses": AUTHORIZE_RESPONSES}},
            "/login": {
                "get": {"summary": "Login page", "parameters": [{"name": "request", "in": "query", "schema": STR}],
                        "responses": PAGE_RESPONSES},
                "post": {"summary": "Sign in", "responses": PAGE_RESPONSES, "requestBody": _form({
                    "request": STR, "csrf_token": STR, "username": STR, "password": STR})}},
            "/consent": {
                "get": {"summary": "Consent page", "parameters": [{"name": "request", "in": "query", "schema": STR}],
                        "responses": PAGE_RESPONSES},
                "post": {"summary": "Allow or deny", "requestBody": _form({
                    "request": STR, "csrf_token": STR, "decision": {"type": "string", "enum": ["allow", "deny"]}}),
                    "responses": PAGE_RESPONSES}},
            "/device": {
                "get": {"summary": "Device verification page (RFC 8628 §3.3)",
                        "parameters": [{"name": "user_code", "in": "query", "schema": STR}],
                        "responses": PAGE_RESPONSES},
                "post": {"summary": "Enter the user code, sign in, or allow/deny the device", "requestBody": _form({
                    "csrf_token": STR, "user_code": STR, "username": STR, "password": STR,
                    "decision": {"type": "string", "enum": ["allow", "deny"]}}), "responses": PAGE_RESPONSES}},
            "/end_session": {
                "get": {"summary": "RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0 §2)",
                        "parameters": [{"name": n, "in": "query", "required": False, "schema": STR}
                                       for n in END_SESSION_PARAMETERS],
                        "responses": LOGOUT_RESPONSES},
                "post": {"summary": "The same logout request as a form body (§2)",
                         "requestBody": _form({n: STR for n in END_SESSION_PARAMETERS}),
                         "responses": LOGOUT_RESPONSES}},
            "/end_session/confirm": {"post": {
                "summary": "Sign out, from the confirmation page", "responses": LOGOUT_RESPONSES,
                "requestBody": _form({"csrf_token": STR, "client_id": STR, "post_logout_redirect_uri": STR,
                                      "state": STR, "sign_out": STR})}},
            "/account": {
                "get": {"summary": "The user's connected apps, or the sign-in form", "responses": PAGE_RESPONSES},
                "post": {"summary": "Revoke an app, or sign out", "responses": PAGE_RESPONSES,
                         "requestBody": _form({"csrf_token": STR, "revoke": STR, "sign_out": STR})}},
            "/account/login": {
                "get": {"summary": "To the account page", "responses": PAGE_RESPONSES},
                "post": {"summary": "Sign in to the account page", "responses": PAGE_RESPONSES,
                         "requestBody": _form({"csrf_token": STR, "username": STR, "password": STR})}},
            "/token": {"post": {
                "summary": "Token endpoint (RFC 6749 §3.2)", "security": [{"clientSecretBasic": []}, {}],
                "requestBody": _form({"grant_type": {"type": "string", "enum": [
                    "authorization_code", "refresh_token", "client_credentials",
                    "urn:ietf:params:oauth:grant-type:device_code"]}, "code": STR, "redirect_uri": STR,
                    "device_code": STR,
                    "code_verifier": STR, "refresh_token": STR, "scope": STR, "resource": STR,
                    **CLIENT_AUTH_FIELDS}, ["grant_type"]),
                "responses": {"200": {"description": "Tokens (RFC 6749 §5.1)", "headers": NO_STORE, "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/TokenResponse"}}}},
                    **ENDPOINT_ERRORS}}},
            "/device_authorization": {"post": {
                "summary": "Device authorization request (RFC 8628 §3.1)", "security": [{"clientSecretBasic": []}, {}],
                "requestBody": _form({"scope": STR, "resource": STR, **CLIENT_AUTH_FIELDS}),
                "responses": {"200": {"description": "Device and user codes (RFC 8628 §3.2)", "headers": NO_STORE,
                                      "content": {"application/json": {"schema": {
                                          "$ref": "#/components/schemas/DeviceAuthorizationResponse"}}}},
                              **ENDPOINT_ERRORS}}},
            "/revoke": {"post": {
                "summary": "Token revocation (RFC 7009)", "security": [{"clientSecretBasic": []}, {}],
                "requestBody": _form({"token": STR, "token_type_hint": STR, **CLIENT_AUTH_FIELDS}, ["token"]),
                "responses": {"200": {"description": "Revoked, or unknown (always 200)", "headers": NO_STORE},
                              **ENDPOINT_ERRORS}}},
            "/introspect": {"post": {
                "summary": "Token introspection (RFC 7662)", "security": [{"clientSecretBasic": []}],
                "requestBody": _form({"token": STR, "token_type_hint": STR, **CLIENT_AUTH_FIELDS}, ["token"]),
                "responses": {"200": {"description": "Token state", "headers": NO_STORE, "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/Introspection"}}}},
                    **ENDPOINT_ERRORS}}},
            "/userinfo": {
                "get": {"summary": "UserInfo (OIDC Core §5.3), bearer token in the header",
                        "security": [{"bearer": []}, {}], "responses": USERINFO_RESPONSES},
                "post": {"summary": "UserInfo (OIDC Core §5.3), token in the header or the form body (RFC 6750 §2.2)",
                         "security": [{"bearer": []}, {}], "requestBody": {
                             **_form({"access_token": STR}), "required": False},
                         "responses": USERINFO_RESPONSES}},
            "/.well-known/openid-configuration": {"get": {
                "summary": "OpenID Provider metadata (OIDC Discovery 1.0 §4)",
                "responses": {"200": {"description": "Metadata", "content": {"application/json": {
                    "schema": {"type": "object", "required": [
                        "issuer", "authorization_endpoint", "jwks_uri", "response_types_supported",
                        "subject_types_supported", "id_token_signing_alg_values_supported"]}}}}}}},
            "/.well-known/oauth-authorization-server": {"get": {
                "summary": "Server metadata (RFC 8414)",
                "responses": {"200": {"description": "Metadata", "content": {"application/json": {
                    "schema": {"type": "object", "required": ["issuer", "token_endpoint", "jwks_uri"]}}}}}}},
            "/jwks.json": {"get": {
                "summary": "Public signing keys", "responses": {"200": {"description": "JWK Set", "content": {
                    "application/json": {"schema": {"type": "object", "required": ["keys"]}}}}}}},
            "/openapi.json": {"get": {"summary": "This document", "responses": {"200": {
                "description": "OpenAPI 3.1", "content": {"application/json": {"schema": {"type": "object"}}}}}}},
        },
    }
