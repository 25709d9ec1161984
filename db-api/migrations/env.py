"""Alembic environment: runs migrations against the database named by db-api's settings."""

from __future__ import annotations

from logging.config import fileConfig

from alembic import context
from sqlalchemy import URL, create_engine, pool, text

from db_api.config import get_settings
from db_api.models import Base

config = context.config
if config.config_file_name is not None:
    fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = Base.metadata

# Replicas of db-api all migrate when they start (`--scale db-api=2`); this lock lets
# one run the migrations while the others wait, then find the schema already current.
MIGRATION_LOCK_ID = 0x636861745F617070  # "chat_app" in ASCII


def migration_url() -> URL:
    # Migrations run once, synchronously, before the service starts: psycopg2 suits them.
    return get_settings().database_url.set(drivername="postgresql+psycopg2")


def run_migrations_offline() -> None:
    """Print the SQL instead of running it (`alembic upgrade head --sql`)."""
    context.configure(
        url=migration_url().render_as_string(hide_password=False),
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = create_engine(migration_url(), poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=target_metadata)
        with context.begin_transaction():
            # Held until this transaction ends, which is after the version is recorded.
            connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": MIGRATION_LOCK_ID})
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
