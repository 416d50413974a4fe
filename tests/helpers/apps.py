"""The one way tests build a web app: explicit settings only, never LOOKOUT_* from the
developer's environment (`Settings.load({})`), auth off unless asked for."""
from __future__ import annotations

import time
from typing import Any, Callable

from lookout.core.config import Settings
from lookout.dashboard import create_app


def build_app(database_url: str, *, clock: Callable[[], float] = time.time, **settings: Any):
    """A web app on `database_url`; dispose `app.extensions["lookout.engine"]` after."""
    settings.setdefault("auth", False)
    return create_app(Settings.load({}, database_url=database_url, **settings), clock=clock)
