"""PostgreSQL databases of a test's own on the machine's server (trust auth).

Each test session, and each test that needs a database to itself (one it switches off, an
old schema, a Django project's), creates one under a unique name and drops it after;
`WITH (FORCE)` ends connections a failed test left open.
"""
from __future__ import annotations

import os
import uuid

from sqlalchemy import create_engine, text

PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def database_url(name: str) -> str:
    return f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"


def admin_run(*statements: str, **params) -> None:
    """Run statements outside a transaction (CREATE/DROP/ALTER DATABASE need that)."""
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            for statement in statements:
                conn.execute(text(statement), params)
    finally:
        admin.dispose()


def create_database(prefix: str) -> tuple[str, str]:
    """A new empty database named `<prefix>_<pid>_<random>`: (name, SQLAlchemy URL)."""
    name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin_run(f'CREATE DATABASE "{name}"')
    return name, database_url(name)


def drop_database(name: str) -> None:
    admin_run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
