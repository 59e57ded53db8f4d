"""Storage behind small protocols; ``sql`` is the one implementation (SQLite and PostgreSQL)."""
