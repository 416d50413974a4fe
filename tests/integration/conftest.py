"""Integration fixtures: one real `celery worker -E` per broker, shared by a module.

Module scope, not session: a worker left running would answer other modules' control
broadcasts. Each listens on a queue of its own (see helpers/workers.py).
"""
from __future__ import annotations

from typing import Iterator

import pytest

from helpers.workers import RunningWorker, launch_worker


def _module_worker(tmp_path_factory, broker: str, label: str) -> Iterator[RunningWorker]:
    worker = launch_worker(tmp_path_factory.mktemp(label), broker)
    try:
        yield worker
    finally:
        worker.process.stop()


@pytest.fixture(scope="module")
def redis_worker(redis_broker, tmp_path_factory) -> Iterator[RunningWorker]:
    yield from _module_worker(tmp_path_factory, redis_broker, "redis-worker")


@pytest.fixture(scope="module")
def amqp_worker(amqp_broker, tmp_path_factory) -> Iterator[RunningWorker]:
    yield from _module_worker(tmp_path_factory, amqp_broker, "amqp-worker")


@pytest.fixture(scope="module")
def private_redis(tmp_path_factory) -> Iterator[str]:
    """A redis-server of the module's own on a free port (nothing else publishes there)."""
    import redis

    from helpers.browser import free_port
    from helpers.support import Process, wait_for

    port = free_port()
    folder = tmp_path_factory.mktemp("redis")
    server = Process(["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                      "--save", "", "--appendonly", "no", "--dir", str(folder)],
                     folder / "redis.log")
    url = f"redis://127.0.0.1:{port}"
    try:
        wait_for(lambda: redis.Redis.from_url(url, socket_connect_timeout=1).ping(), 20,
                 message="private redis-server up")
        yield url
    finally:
        server.stop()
