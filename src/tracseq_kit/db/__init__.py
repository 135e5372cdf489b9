"""Database helpers: ordered, idempotent, recorded SQL migrations on asyncpg."""

from tracseq_kit.db._migrations import Migration, apply_migrations, load_migrations

__all__ = ["Migration", "apply_migrations", "load_migrations"]
