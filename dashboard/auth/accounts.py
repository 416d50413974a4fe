"""Users and API tokens in the store: creation, password checks and token look-up.

Passwords go through werkzeug.security (scrypt by default in Werkzeug 3): it is already a
dependency of Flask, salts every hash, is deliberately slow and memory-hard against
offline guessing, and writes the method and its cost into the stored string, so the
parameters can be raised later without a schema change. Its check compares in constant
time. API tokens are 256-bit random strings, so guessing them is hopeless and a slow hash
would buy nothing: they are stored as SHA-256 digests, which also makes the look-up an
indexed equality match instead of a scan over every token.
"""
from __future__ import annotations

import functools
import hashlib
import re
import secrets
import time

from sqlalchemy import Engine, delete, insert, select, update
from werkzeug.security import check_password_hash, generate_password_hash

from lookout.core.store.models_auth import ApiToken, User
from lookout.dashboard.web.errors import InvalidField
from lookout.dashboard.web.roles import Identity, check_role

TOKEN_PREFIX = "lk_"
MIN_PASSWORD = 8
_USERNAME = re.compile(r"^[A-Za-z0-9_.@-]{1,150}$")

users = User.__table__
tokens = ApiToken.__table__


class AccountStore:
    """Reads and writes users and tokens; one per app, safe to share between threads."""

    def __init__(self, engine: Engine, clock=time.time):
        self.engine = engine
        self.clock = clock

    # -- users -----------------------------------------------------------------------
    def add_user(self, username: str, password: str, role: str) -> int:
        if not _USERNAME.match(username):
            raise InvalidField("username", "username: 1-150 letters, digits or _ . @ -")
        if len(password) < MIN_PASSWORD:
            raise InvalidField("password", f"password: at least {MIN_PASSWORD} characters")
        with self.engine.begin() as conn:
            if conn.execute(select(users.c.id).where(users.c.username == username)).first():
                raise InvalidField("username", f"user {username!r} already exists")
            result = conn.execute(insert(users).values(
                username=username, password_hash=generate_password_hash(password),
                role=check_role(role), disabled=False, created_at=self.clock(),
                session_epoch=0))
            return result.inserted_primary_key[0]

    def set_password(self, username: str, password: str) -> None:
        if len(password) < MIN_PASSWORD:
            raise InvalidField("password", f"password: at least {MIN_PASSWORD} characters")
        self._update_user(username, password_hash=generate_password_hash(password),
                          session_epoch=users.c.session_epoch + 1)

    def set_role(self, username: str, role: str) -> None:
        self._update_user(username, role=check_role(role),
                          session_epoch=users.c.session_epoch + 1)

    def set_disabled(self, username: str, disabled: bool) -> None:
        """Disable (sessions end at once: the epoch moves) or enable a user."""
        self._update_user(username, disabled=disabled,
                          session_epoch=users.c.session_epoch + 1)

    def remove_user(self, username: str) -> None:
        with self.engine.begin() as conn:
            if not conn.execute(delete(users).where(users.c.username == username)).rowcount:
                raise LookupError(f"no user {username!r}")

    def has_users(self) -> bool:
        with self.engine.connect() as conn:
            return conn.execute(select(users.c.id).limit(1)).first() is not None

    def end_sessions(self, user_id: int) -> None:
        """Every session cookie of this user stops working, copies included (logout)."""
        with self.engine.begin() as conn:
            conn.execute(update(users).where(users.c.id == user_id)
                         .values(session_epoch=users.c.session_epoch + 1))

    def _update_user(self, username: str, **values) -> None:
        with self.engine.begin() as conn:
            done = conn.execute(update(users).where(users.c.username == username)
                                .values(**values)).rowcount
        if not done:
            raise LookupError(f"no user {username!r}")

    def list_users(self) -> list[dict]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(users.c.id, users.c.username, users.c.role,
                                       users.c.disabled, users.c.created_at)
                                .order_by(users.c.username)).mappings().all()
        return [dict(row) for row in rows]

    def authenticate(self, username: str, password: str) -> tuple[Identity, int] | None:
        """The identity and session epoch for a right password, else None."""
        with self.engine.connect() as conn:
            row = conn.execute(select(users).where(users.c.username == username)
                               ).mappings().first()
        if row is None:
            # Hash anyway, so a wrong name costs as long as a wrong password.
            check_password_hash(_dummy_hash(), password)
            return None
        if not check_password_hash(row["password_hash"], password) or row["disabled"]:
            return None
        return Identity(row["username"], row["role"], "user", row["id"]), row["session_epoch"]

    def session_user(self, user_id: int, epoch: int) -> Identity | None:
        """The user a session cookie names, if it still exists, is enabled and current."""
        with self.engine.connect() as conn:
            row = conn.execute(select(users).where(users.c.id == user_id)).mappings().first()
        if row is None or row["disabled"] or row["session_epoch"] != epoch:
            return None
        return Identity(row["username"], row["role"], "user", row["id"])

    # -- tokens ----------------------------------------------------------------------
    def add_token(self, name: str, role: str, created_by: str | None = None) -> tuple[int, str]:
        """Create a token; the secret is returned once and never stored in clear."""
        if not name or len(name) > 150:
            raise InvalidField("name", "token name: 1-150 characters")
        secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
        with self.engine.begin() as conn:
            result = conn.execute(insert(tokens).values(
                name=name, token_hash=_digest(secret), prefix=secret[:10],
                role=check_role(role), created_by=created_by, created_at=self.clock()))
        return result.inserted_primary_key[0], secret

    def token_identity(self, secret: str) -> Identity | None:
        with self.engine.begin() as conn:
            row = conn.execute(select(tokens).where(tokens.c.token_hash == _digest(secret))
                               ).mappings().first()
            if row is None or row["revoked_at"] is not None:
                return None
            now = self.clock()
            # Recording every use would write on each API call; once a minute is enough.
            if row["last_used_at"] is None or now - row["last_used_at"] > 60:
                conn.execute(update(tokens).where(tokens.c.id == row["id"])
                             .values(last_used_at=now))
        return Identity(f"token:{row['name']}", row["role"], "token", token_id=row["id"])

    def list_tokens(self) -> list[dict]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(tokens.c.id, tokens.c.name, tokens.c.prefix,
                                       tokens.c.role, tokens.c.created_by, tokens.c.created_at,
                                       tokens.c.last_used_at, tokens.c.revoked_at)
                                .order_by(tokens.c.id)).mappings().all()
        return [dict(row) for row in rows]

    def revoke_token(self, token_id: int) -> bool:
        with self.engine.begin() as conn:
            return bool(conn.execute(
                update(tokens).where(tokens.c.id == token_id, tokens.c.revoked_at.is_(None))
                .values(revoked_at=self.clock())).rowcount)


@functools.cache
def _dummy_hash() -> str:
    return generate_password_hash(secrets.token_hex(16))


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()
