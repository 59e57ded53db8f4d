"""Tokenward: OAuth 2.1 authorization server, resource-server guard and client."""
