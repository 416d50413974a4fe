"""Event validation: each event judged alone, bounded, with a countable reason."""
import json

import pytest

from lookout.collectors.events import InvalidEvent, decode_body, truncate, validate

NOW = 1_700_000_000.0


def task_event(**fields):
    base = {"type": "task-received", "hostname": "w1@h", "timestamp": NOW, "clock": 3,
            "utcoffset": 0, "pid": 1, "uuid": "u1", "name": "proj.add",
            "args": "(1, 2)", "kwargs": "{}", "retries": 0}
    base.update(fields)
    return base


def test_valid_task_event_keeps_known_fields_only():
    event = validate(task_event(extra="ignored"), NOW + 1, 100)
    assert event.type == "task-received" and event.uuid == "u1"
    assert event.local_received == NOW + 1 and event.clock == 3
    assert event.fields["name"] == "proj.add"
    assert "extra" not in event.fields and event.is_task


def test_worker_event():
    event = validate({"type": "worker-heartbeat", "hostname": "w1@h", "timestamp": NOW,
                      "freq": 2.0, "active": 1, "processed": 10,
                      "loadavg": [0.5, 0.25, 0.1], "sw_ver": "5.7.0"}, NOW, 100)
    assert event.uuid is None and not event.is_task
    assert event.fields["loadavg"] == [0.5, 0.25, 0.1] and event.fields["freq"] == 2.0


@pytest.mark.parametrize("raw,reason", [
    ("text", "not an object"),
    ({"hostname": "h", "timestamp": NOW}, "missing type"),
    (task_event(type="task-exploded"), "unknown type"),
    (task_event(uuid=None), "missing uuid"),
    (task_event(uuid=42), "bad uuid"),
    (task_event(timestamp=None), "missing timestamp"),
    (task_event(timestamp="yesterday"), "bad timestamp"),
    (task_event(timestamp=float("nan")), "bad timestamp"),
    (task_event(timestamp=True), "bad timestamp"),
    (task_event(hostname=""), "missing hostname"),
    (task_event(clock="x"), "bad clock"),
    (task_event(retries=-1), "bad retries"),
    (task_event(retries="2"), "bad retries"),
    (task_event(name=["list"]), "bad name"),
    (task_event(name="n" * 300), "oversized name"),
    (task_event(uuid="u" * 300), "oversized uuid"),
    (task_event(type="task-succeeded", runtime="fast"), "bad runtime"),
])
def test_malformed_events_have_reasons(raw, reason):
    with pytest.raises(InvalidEvent) as info:
        validate(raw, NOW, 100)
    assert info.value.reason == reason


def test_huge_fields_truncated_with_marker():
    event = validate(task_event(args="x" * 5_000_000, kwargs={"k": "v"}), NOW, 1000)
    assert len(event.fields["args"]) < 1100
    assert event.fields["args"].endswith("…[truncated 4999000 chars]")
    assert json.loads(event.fields["kwargs"]) == {"k": "v"}  # non-text is JSON-encoded


def test_decode_body_shapes():
    assert decode_body({"a": 1}) == [{"a": 1}]
    assert decode_body([{"a": 1}, {"b": 2}]) == [{"a": 1}, {"b": 2}]
    assert decode_body(b'[{"a": 1}]') == [{"a": 1}]
    with pytest.raises(InvalidEvent, match="not json"):
        decode_body(b"{nope")
    with pytest.raises(InvalidEvent, match="not utf-8"):
        decode_body(b"\xff\xfe")


def test_truncate_short_text_untouched():
    assert truncate("abc", 3) == "abc"
    assert truncate("abcd", 3) == "abc…[truncated 1 chars]"


def test_nul_characters_are_escaped_not_fatal():
    event = validate(task_event(args="a\x00b", name="n\x00", uuid="u\x00"), NOW, 100)
    assert event.fields["args"] == "a\\x00b"
    assert event.fields["name"] == "n\\x00" and event.uuid == "u\\x00"


@pytest.mark.parametrize("raw, reason", [
    (task_event(timestamp=1e300), "bad timestamp"),
    (task_event(timestamp=10**400), "bad timestamp"),  # was "internal error", the message lost
    (task_event(type="task-succeeded", runtime=-(10**400)), "bad runtime"),
    (task_event(timestamp=-5.0), "bad timestamp"),
    (task_event(retries=2**63), "bad retries"),
    (task_event(type="task-succeeded", runtime=1e300), "bad runtime"),
    ({"type": "worker-heartbeat", "hostname": "w", "timestamp": NOW, "pid": 2**64},
     "bad pid"),
])
def test_numbers_the_store_cannot_hold_are_refused_with_a_reason(raw, reason):
    """Refused here, counted: never a batch the database refuses later."""
    with pytest.raises(InvalidEvent) as caught:
        validate(raw, NOW, 100)
    assert caught.value.reason == reason


def test_huge_clocks_and_offsets_are_bounded_not_refused():
    event = validate(task_event(clock=2**70, utcoffset=1e9), NOW, 100)
    assert event.clock == 2**63 - 1 and event.utcoffset is None


def test_lone_surrogates_and_nul_are_escaped_so_every_store_takes_them():
    name = b"report-\xff.csv".decode("utf-8", "surrogateescape")  # as os.fsdecode gives
    event = validate(task_event(args=repr((name,)), queue="q\udcff", name="proj.\x00x"),
                     NOW, 1000)
    assert event.fields["args"] == "('report-\\udcff.csv',)"
    assert event.fields["queue"] == "q\\udcff" and event.fields["name"] == "proj.\\x00x"
    for value in event.fields.values():
        if isinstance(value, str):
            value.encode("utf-8")  # would raise for a lone surrogate


@pytest.mark.parametrize("text, epoch", [
    ("2023-11-14T22:13:20+00:00", NOW),  # what Celery sends with the default UTC
    ("2023-11-14T22:13:20.250000+00:00", NOW + 0.25),
    ("2023-11-14T23:13:20+01:00", NOW),  # another sender's offset, the same instant
    ("2023-11-14T22:13:20Z", NOW),
    ("2023-11-14T22:13:20", NOW),  # naive (an app without UTC): read as UTC
    ("2023-11-14 22:13:20", NOW),
    (NOW, NOW),  # a producer sending epoch seconds
])
def test_eta_and_expires_become_epoch_seconds(text, epoch):
    event = validate(task_event(eta=text, expires=text), NOW, 100)
    assert event.fields["eta"] == event.fields["expires"] == epoch


@pytest.mark.parametrize("value", ["tomorrow", "", "2023-13-45T99:00:00", "9999-12-31T00:00:00",
                                   "1969-12-31T23:59:59+00:00", "2023-11-14T22:13:20" * 10,
                                   True, [1], -5.0, float("inf")])
def test_an_unreadable_eta_is_left_out_not_refused(value):
    """The task is still stored, with no eta (NULL), rather than the event lost."""
    event = validate(task_event(eta=value, expires=value), NOW, 100)
    assert "eta" not in event.fields and "expires" not in event.fields
    assert event.fields["name"] == "proj.add"
