"""The message-queue channel live updates cross, and what is named after it.

Every collector and web process of one deployment must use the same channel: the setting,
or a name made from the store's deployment id. So the name needs the store, and a web
process restarted during a store outage must still start and say the store is down
rather than crash for want of a name: `LiveChannel` asks at first use and again after a
failure, and `OnChannel` makes what is named after the channel once it is known.
"""
from __future__ import annotations

import threading
from typing import Any, Callable


def live_channel(settings: Any, engine: Any) -> str:
    """The message-queue channel of this deployment: the setting, or one named after the
    store, which the collector and every web process of a deployment share."""
    from lookout.core.store.db import deployment_id

    return settings.message_queue_channel or f"lookout-{deployment_id(engine)}"


class LiveChannel:
    """`live_channel` asked at its first use rather than when a web process starts.

    A web process restarted during a store outage must start and say the store is down,
    not crash for want of a channel name: a failed lookup raises the store's error to
    that caller and is asked again at the next use; the first answer is kept for good.
    """

    def __init__(self, settings: Any, engine: Any):
        self._settings, self._engine = settings, engine
        self._name: str | None = settings.message_queue_channel or None

    def __call__(self) -> str:
        if self._name is None:
            self._name = live_channel(self._settings, self._engine)
        return self._name


class OnChannel:
    """What is named after the live channel (the watched task rooms, the queue probe),
    made by `make(channel)` at its first use once the channel is known. Until then each
    use raises the store's error, which its callers survive as they do a queue outage."""

    def __init__(self, channel: LiveChannel, make: Callable[[str], Any]):
        self._channel, self._make, self._made = channel, make, None
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:  # the wrapped object's methods
        with self._lock:
            if self._made is None:
                self._made = self._make(self._channel())
        return getattr(self._made, name)

    @property
    def made(self) -> bool:
        """Whether the channel was known and the object made (asks nothing)."""
        return self._made is not None

    def close(self) -> None:
        if self._made is not None:
            self._made.close()
