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


@pytest.fixture
def silenceable_redis(private_redis):
    """The module's redis-server behind a proxy that can turn into a black hole."""
    from helpers.proxy import SilenceableProxy

    host, port = private_redis.removeprefix("redis://").split(":")
    proxy = SilenceableProxy((host, int(port)))
    try:
        yield proxy
    finally:
        proxy.close()
