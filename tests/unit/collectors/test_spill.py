"""The backlog's memory bound: past it, events go to a spill file and come back in order.

Real files in tmp_path; the events are shaped like Celery's (helpers.event_factory).
"""
from __future__ import annotations

import json

import pytest

from helpers.event_factory import T0, lifecycle
from lookout.collectors.buffer import EVENT_BYTES, EventBuffer, RawMessage
from lookout.collectors.events import decode_body, validate
from lookout.collectors.spill import SpillBusy, SpillFile, spill_path


def expand(raw: RawMessage) -> list:
    return [validate(item, raw.local_received, 16_384) for item in decode_body(raw.body)]


def events(count: int) -> list:
    out = []
    for i in range(count // 4):
        out.extend(lifecycle(f"task-{i:05d}", T0 + i))
    return out


def drain(buffer: EventBuffer) -> list:
    taken = []
    while True:
        batch, _tokens = buffer.get_batch(100, timeout=0.0)
        if not batch:
            return taken
        taken.extend(batch)


def raw_message(i: int, received: float) -> RawMessage:
    body = json.dumps([{"type": "task-received", "uuid": f"raw-{i}", "hostname": "w@h",
                        "timestamp": T0 + i, "name": "proj.raw", "args": "('é',)"}]).encode()
    return RawMessage(body, "application/json", "utf-8", {"application/json"}, received,
                      1, expand)


def test_past_the_memory_bound_events_spill_and_come_back_in_order(tmp_path):
    path = spill_path(tmp_path, "main")
    buffer = EventBuffer(memory_limit=10 * EVENT_BYTES)
    buffer.attach_spill(SpillFile(path, expand))
    sent = events(200)
    for i in range(0, len(sent), 4):
        buffer.put(sent[i:i + 4])
    buffer.put_raw(raw_message(1, 123.5))

    assert buffer.held_bytes <= 10 * EVENT_BYTES  # memory stayed bounded
    assert buffer.spilled == len(sent) - 8 + 1  # the first two chunks fit in memory
    assert buffer.spill_pending == buffer.spilled
    assert len(buffer) == len(sent) + 1

    taken = drain(buffer)
    assert taken[:-1] == sent  # same events, same order, fields and floats intact
    assert taken[-1].uuid == "raw-1" and taken[-1].local_received == 123.5
    assert taken[-1].fields["args"] == "('é',)"
    assert len(buffer) == 0 and buffer.spill_pending == 0
    assert path.stat().st_size == 0  # drained: truncated, not left to grow
    # Drained, the buffer keeps new events in memory again.
    buffer.put(sent[:4])
    assert buffer.spill_pending == 0 and buffer.held_bytes == 4 * EVENT_BYTES
    buffer.close_spill()
    assert not path.exists()


def test_stopping_keeps_the_rest_on_disk_and_the_next_run_replays_it_first(tmp_path):
    path = spill_path(tmp_path, "main")
    buffer = EventBuffer(memory_limit=1 << 20)
    buffer.attach_spill(SpillFile(path, expand))
    sent = events(40)
    buffer.put(sent[:20])
    buffer.put(sent[20:], token=("amqp", 7))  # a broker will redeliver these
    assert buffer.spill_pending == 0

    assert buffer.keep_rest() == (20, 20, 0)  # (spilled, redelivered, lost)
    buffer.close_spill()
    assert path.exists()

    again = EventBuffer(memory_limit=1 << 20)
    again.attach_spill(SpillFile(path, expand))
    assert len(again) == 20
    assert drain(again) == sent[:20]
    again.close_spill()
    assert not path.exists()


def test_a_partly_read_spill_keeps_only_its_unread_rest(tmp_path):
    path = spill_path(tmp_path, "main")
    spill = SpillFile(path, expand)
    sent = events(40)
    for i in range(0, 40, 4):
        spill.append(sent[i:i + 4], 4)
    read = [event for item, _count in spill.read(8) for event in item]
    assert read == sent[:8]
    spill.close()  # what was read is in the store: it must not be replayed

    again = SpillFile(path, expand)
    assert again.pending == 32
    assert [e for item, _count in again.read(100) for e in item] == sent[8:]
    again.close()


def test_a_torn_last_line_costs_only_itself(tmp_path):
    path = spill_path(tmp_path, "main")
    spill = SpillFile(path, expand)
    sent = events(8)
    spill.append(sent[:4], 4)
    spill.close()
    with open(path, "ab") as handle:  # a crash in the middle of a write
        handle.write(b'["e",4,[["task-sent","client@web",17')

    buffer = EventBuffer(memory_limit=1 << 20)
    reopened = SpillFile(path, expand)
    buffer.attach_spill(reopened)
    buffer.put(sent[4:])  # appended after the torn line, still readable
    assert drain(buffer) == sent
    assert reopened.torn == 1
    assert len(buffer) == 0  # the torn line's events are not waited for forever
    buffer.close_spill()


def test_one_spill_file_per_running_collector(tmp_path):
    first = SpillFile(spill_path(tmp_path, "main"), expand)
    try:
        with pytest.raises(SpillBusy, match="LOOKOUT_COLLECTOR_NAME"):
            SpillFile(spill_path(tmp_path, "main"), expand)
        other = SpillFile(spill_path(tmp_path, "../other name"), expand)
        assert other.path.parent == tmp_path and other.path.name == "spill-.._other_name.jsonl"
        other.close()
        # The same name on another store (a demo beside a real deployment) is another file.
        demo = SpillFile(spill_path(tmp_path, "main", "sqlite:////tmp/demo.db"), expand)
        real = SpillFile(spill_path(tmp_path, "main", "postgresql://u:secret@db/x"), expand)
        assert demo.path != real.path and "secret" not in real.path.name
        demo.close()
        real.close()
    finally:
        first.close()
