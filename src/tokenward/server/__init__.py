"""The authorization server: grants, endpoints, storage and the web adapter."""
