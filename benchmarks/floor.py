"""The floor: a bare redis-py subscriber that decodes every Celery event and keeps nothing.

What any Redis event consumer must spend at least: receive the pub/sub message, parse
kombu's JSON envelope, base64-decode the body, parse the events. Run by ingest.py as a
third target beside Lookout and Flower; it writes its count of task events to a file
(`counts_file`) five times a second. Usage: python benchmarks/floor.py BROKER COUNTS_FILE
"""
from __future__ import annotations

import base64
import json
import os
import sys
import time
from urllib.parse import urlsplit

import redis


def main(broker: str, counts_file: str) -> None:
    db = urlsplit(broker).path.strip("/") or "0"
    client = redis.Redis.from_url(broker)
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    pubsub.psubscribe(f"/{db}.celeryev/*")  # kombu's fanout channel for the event exchange
    task_events = 0
    written_at = 0.0
    while True:
        message = pubsub.get_message(timeout=0.2)
        if message is not None:
            envelope = json.loads(message["data"])
            body = envelope["body"]
            if envelope["properties"].get("body_encoding") == "base64":
                body = base64.b64decode(body)
            events = json.loads(body)
            for event in events if isinstance(events, list) else [events]:
                if event.get("type", "").startswith("task-"):
                    task_events += 1
        now = time.monotonic()
        if now - written_at >= 0.2:
            with open(counts_file + ".tmp", "w") as handle:
                json.dump({"task_events": task_events}, handle)
            os.replace(counts_file + ".tmp", counts_file)
            written_at = now


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
