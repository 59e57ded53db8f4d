"""SQLAlchemy Core storage: one schema and one code path for SQLite and PostgreSQL."""
