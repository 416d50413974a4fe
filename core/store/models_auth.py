"""Access control and audit tables: users, API tokens and the audit trail.

Kept apart from the history models because they have a different owner and a different
life: history is pruned after days, users and tokens live until removed, and audit
records are kept for their own (longer) retention. ``lookout.core.store`` imports this
module so ``Base.metadata`` (and with it Alembic and the schema test) sees these tables.
"""
from __future__ import annotations

from sqlalchemy import Boolean, Float, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from lookout.core.store.models import Base


class User(Base):
    """A person who logs in with a password; `role` is viewer, operator or admin."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(150), unique=True)
    # werkzeug.security format: "method$salt$hash", so the algorithm can change later.
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[float] = mapped_column(Float)
    # Bumped when the password or role changes, so older session cookies stop working.
    session_epoch: Mapped[int] = mapped_column(Integer, default=0)


class ApiToken(Base):
    """A bearer token for scripts; only its SHA-256 digest is stored."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(150))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # First characters of the token, shown in listings so people can tell tokens apart.
    prefix: Mapped[str] = mapped_column(String(16))
    role: Mapped[str] = mapped_column(String(16))
    created_by: Mapped[str | None] = mapped_column(String(150))
    created_at: Mapped[float] = mapped_column(Float)
    last_used_at: Mapped[float | None] = mapped_column(Float)
    revoked_at: Mapped[float | None] = mapped_column(Float)


class AuditRecord(Base):
    """One control or admin action, allowed or refused, with each worker's reply."""

    __tablename__ = "audit_records"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    timestamp: Mapped[float] = mapped_column(Float)
    actor: Mapped[str] = mapped_column(String(150))  # username, "token:<name>", "anonymous"
    role: Mapped[str | None] = mapped_column(String(16))
    remote_addr: Mapped[str | None] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64))  # e.g. task.revoke, worker.pool_grow
    # ok | refused (401/403) | invalid (400/404) | error (5xx) | running (bulk in progress)
    outcome: Mapped[str] = mapped_column(String(16))
    status: Mapped[int] = mapped_column(Integer)  # HTTP status returned
    targets: Mapped[str | None] = mapped_column(Text)  # JSON list of task ids / hostnames
    parameters: Mapped[str | None] = mapped_column(Text)  # JSON object
    replies: Mapped[str | None] = mapped_column(Text)  # JSON list of per-worker replies
    message: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[float] = mapped_column(Float)

    __table_args__ = (
        Index("ix_audit_records_timestamp", "timestamp"),
        Index("ix_audit_records_action_timestamp", "action", "timestamp"),
        Index("ix_audit_records_actor_timestamp", "actor", "timestamp"),
    )
