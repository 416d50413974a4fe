"""Failed-login throttle, per client address and per account, shared through the store.

Two limits, because they stop different attacks: one address guessing many passwords
(LOGIN_MAX_FAILURES per LOGIN_WINDOW), and many addresses guessing one account's password
(ACCOUNT_MAX_FAILURES per ACCOUNT_WINDOW; higher, since anyone can spend it to lock a
user out for a while). Failures are rows in `login_failures`, so every web process and
gunicorn instance counts the same attempts. A right password clears its account's count
but not its address's. If the store cannot be read, logging in fails anyway.
"""
from __future__ import annotations

import time
from typing import Callable

from sqlalchemy import Engine, delete, func, insert, select

from lookout.core.store.models import LoginFailure

LOGIN_WINDOW = 300.0
LOGIN_MAX_FAILURES = 10
ACCOUNT_WINDOW = 900.0
ACCOUNT_MAX_FAILURES = 20

failures = LoginFailure.__table__


def _keys(address: str, username: str) -> dict[str, tuple[float, int]]:
    """Throttle key -> (window, allowed failures). Names are matched case-sensitively,
    as accounts are, and cut to the column's width."""
    return {f"addr:{address}"[:200]: (LOGIN_WINDOW, LOGIN_MAX_FAILURES),
            f"user:{username}"[:200]: (ACCOUNT_WINDOW, ACCOUNT_MAX_FAILURES)}


class LoginThrottle:
    """Counts failed logins in the store's `login_failures` table."""

    def __init__(self, engine: Engine, clock: Callable[[], float] = time.time):
        self.engine = engine
        self.clock = clock

    def blocked(self, address: str, username: str) -> str | None:
        """Which limit this attempt is over ("address" or "account"), or None."""
        now = self.clock()
        with self.engine.connect() as conn:
            for key, (window, allowed) in _keys(address, username).items():
                count = conn.scalar(select(func.count()).select_from(failures).where(
                    failures.c.key == key, failures.c.at > now - window))
                if count >= allowed:
                    return "address" if key.startswith("addr:") else "account"
        return None

    def failed(self, address: str, username: str) -> None:
        now = self.clock()
        with self.engine.begin() as conn:
            conn.execute(insert(failures), [{"key": key, "at": now}
                                            for key in _keys(address, username)])
            conn.execute(delete(failures).where(
                failures.c.at < now - max(LOGIN_WINDOW, ACCOUNT_WINDOW)))

    def succeeded(self, username: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(failures).where(failures.c.key == f"user:{username}"[:200]))
