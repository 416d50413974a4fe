"""Persistence: schema, engine setup and migrations shared by collector and web."""
# Register every table on Base.metadata, whichever model module a caller imports first:
# Alembic autogenerate, the schema test and truncation in tests rely on the full set.
from lookout.core.store import models_auth as _models_auth  # noqa: F401
