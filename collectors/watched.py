"""Which task rooms browsers watch, shared through the message queue's Redis.

A standalone collector emits through Redis (one PUBLISH round trip per message), and a
task room ("task:<uuid>", a task's own page) is watched by at most a few browsers for a
few of the thousands of tasks that change each second. Emitting a row to every task's
room cost the push thread most of each tick at 10,000 events/s, and the live updates
fell seconds behind (py-spy, benchmarks/live.py --split). So every web process records
the task rooms its sockets joined, in a sorted set scored by when it last saw them (at
once on subscribe, then on every sweep), and the collector reads the set once per tick
and emits task rows only to those rooms. A room not refreshed for TTL seconds drops out.
Scores are the Redis server's own time (TIME), so the machines' clocks need not agree.
"""
from __future__ import annotations

from typing import Callable, Iterable

from lookout.collectors.message_queue import is_redis

TTL = 30.0  # seconds; web processes refresh every LiveSessions sweep (10 s)
TASK_ROOM = "task:"


def watched_key(channel: str) -> str:
    """The sorted set of one deployment (its live channel names it)."""
    return f"{channel}:watched-tasks"


class WatchedTasks:
    """Both ends of the record: `mark` (web processes) and `current` (the collector)."""

    def __init__(self, redis_url: str, channel: str,
                 clock: Callable[[], float] | None = None):
        import redis

        self.redis = redis.Redis.from_url(redis_url, socket_timeout=2,
                                          socket_connect_timeout=2)
        self.key = watched_key(channel)
        self.clock = clock or self._server_time

    def _server_time(self) -> float:
        seconds, microseconds = self.redis.time()
        return seconds + microseconds / 1e6

    def mark(self, uuids: Iterable[str]) -> None:
        """Record that these tasks' rooms are joined now (web side)."""
        uuids = list(uuids)
        if not uuids:
            return
        now = self.clock()
        scores = {uuid: now for uuid in uuids}
        pipe = self.redis.pipeline(transaction=False)
        pipe.zadd(self.key, scores)
        pipe.zremrangebyscore(self.key, "-inf", now - TTL)
        pipe.expire(self.key, int(TTL * 2))
        pipe.execute()

    def current(self) -> set[str] | None:
        """Uuids of the watched task rooms, or None when Redis cannot say (emit to all)."""
        try:
            members = self.redis.zrangebyscore(self.key, self.clock() - TTL, "+inf")
        except Exception:  # noqa: BLE001 - the emits fail the same way; they log it
            return None
        return {m.decode() if isinstance(m, bytes) else m for m in members}

    def close(self) -> None:
        self.redis.close()


def watched_tasks_for(message_queue: str, channel: str) -> WatchedTasks | None:
    """The record for a Redis message queue; None for no queue or another kind (Kombu's
    AMQP one): task rows then go to every task room, as before there was a record."""
    if not is_redis(message_queue):
        return None
    return WatchedTasks(message_queue, channel)


def task_uuids(rooms: Iterable[str]) -> set[str]:
    return {room[len(TASK_ROOM):] for room in rooms if room.startswith(TASK_ROOM)}
