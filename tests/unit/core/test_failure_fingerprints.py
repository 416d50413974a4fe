"""Failure fingerprints: variable parts of messages do not split groups; kinds do."""
from __future__ import annotations

import pytest

from lookout.core.failures import fingerprint, normalise, split_exception, unwrapped_exception

TB = ('Traceback (most recent call last):\n  File "/app/shop.py", line {a}, in run\n'
      '  File "/app/db.py", line {b}, in load\nValueError: x')


@pytest.mark.parametrize("one, two", [
    ("ValueError('order 48151 not found')", "ValueError('order 7 not found')"),
    ("KeyError('3f2a9c1e-1234-4abc-8def-0123456789ab')",
     "KeyError('00000000-0000-4000-8000-000000000000')"),
    ("OSError('at 0x7f3a2b1c9d00')", "OSError('at 0x55d0c0ffee00')"),
    ("RuntimeError(\"user 'alice' locked\")", "RuntimeError(\"user 'bob' locked\")"),
    ("TimeoutError('took 12.5 s')", "TimeoutError('took 3e2 s')"),
    # One fault, one group per recipient before (a trial's burst made 200 groups).
    ("ConnectionError('SMTP connection refused for user684@x')",
     "ConnectionError('SMTP connection refused for ann.lee+news@mail.example.com')"),
    ("OSError('shard12 unreachable')", "OSError('shard7 unreachable')"),
    # A KeyError's message is the missing key: one group per key before (a Django trial).
    ("KeyError('k0')", "KeyError('zz')"),
])
def test_messages_differing_in_ids_share_a_group(one, two):
    assert fingerprint(one, None)["fingerprint"] == fingerprint(two, None)["fingerprint"]


def test_type_message_and_code_location_separate_groups():
    base = fingerprint("ValueError('order 1 not found')", TB.format(a=1, b=2))
    moved = fingerprint("ValueError('order 2 not found')", TB.format(a=9, b=99))
    assert base == moved and base["frame"] == "db.py:load"  # line numbers move: ignored
    assert fingerprint("KeyError('order 1 not found')", None)["fingerprint"] != \
        fingerprint("ValueError('order 1 not found')", None)["fingerprint"]
    assert fingerprint("KeyError('currency')", None)["message"] == "<key>"
    assert fingerprint("ValueError('currency')", None)["message"] == "currency"  # not a key
    assert fingerprint("ValueError('stock empty')", None)["fingerprint"] != \
        fingerprint("ValueError('order 1 not found')", None)["fingerprint"]
    elsewhere = TB.replace("db.py", "cache.py").format(a=1, b=2)
    assert fingerprint("ValueError('order 1 not found')", elsewhere)["fingerprint"] != \
        base["fingerprint"]


def test_odd_exception_texts():
    assert split_exception(None) == ("Exception", "")
    assert split_exception("<unprintable>")[0] == "Exception"
    assert split_exception("proj.errors.Boom()") == ("proj.errors.Boom", "")
    assert normalise("'" + "x" * 1000 + "'") == "x" * 300


@pytest.mark.parametrize("traceback, shown", [
    ("Traceback (most recent call last):\n  File \"pool.py\", line 745, in on_hard_timeout\n"
     "    raise TimeLimitExceeded(job._timeout)\n"
     "billiard.exceptions.TimeLimitExceeded: TimeLimitExceeded(1,)\n", "TimeLimitExceeded(1,)"),
    ("Traceback ...\nbilliard.exceptions.WorkerLostError: Worker exited prematurely",
     "WorkerLostError('Worker exited prematurely')"),
    ("Traceback ...\nKeyError", "KeyError()"),
    ("Traceback ...\n  File \"x.py\", line 1, in f\n    not an exception line", None),
    ("", None),
    (None, None),
])
def test_the_pickling_wrappers_empty_repr_gives_way_to_the_tracebacks_exception(traceback,
                                                                                 shown):
    wrapper = "ExceptionWithTraceback()"
    assert unwrapped_exception(wrapper, traceback) == (shown or wrapper)
    assert unwrapped_exception("ValueError('x')", traceback) == "ValueError('x')"


def test_a_failure_cut_short_by_the_collector_keeps_its_type_and_frame():
    """Found by a new user: a 30,000-character ValueError message, cut to the field limit
    by the collector, grouped as type "Exception" with the raw repr as message, and its
    traceback had lost the innermost frame (only its start was kept)."""
    from lookout.collectors.events import validate

    frames = "".join(f'  File "/srv/lib/layer{i}.py", line {i}, in step{i}\n    go()\n'
                     for i in range(2000))
    raw = {"type": "task-failed", "uuid": "u-1", "hostname": "w@h", "timestamp": 1.0,
           "exception": "ValueError('" + "x" * 30_000 + "')",
           "traceback": "Traceback (most recent call last):\n" + frames +
                        '  File "/srv/app/proj.py", line 9, in boom\n    raise ValueError(s)\n'
                        "ValueError: " + "x" * 300 + "\n"}
    event = validate(raw, 1.0, 16_384)
    exception, traceback = event.fields["exception"], event.fields["traceback"]
    assert len(exception) < 16_500 and len(traceback) < 16_500  # both were cut
    assert traceback.startswith("Traceback (most recent call last):")
    assert traceback.rstrip().endswith("x" * 300)
    group = fingerprint(exception, traceback)
    assert split_exception(exception)[0] == "ValueError"
    assert group == fingerprint("ValueError('" + "x" * 20_000 + "')", traceback)
    assert "proj.py:boom" in str(group)


def test_a_group_is_named_after_the_projects_own_innermost_frame():
    """A task whose retries ran out ends in Celery's raise_with_context (found by a new
    user: the group pointed at serialization.py); a library's error at its caller."""
    retried = (
        'Traceback (most recent call last):\n'
        '  File "/venv/lib/python3.11/site-packages/celery/app/trace.py", line 453, in trace_task\n'
        '  File "/srv/proj/tasks.py", line 19, in flaky\n    raise self.retry(exc=exc)\n'
        '  File "/venv/lib/python3.11/site-packages/celery/app/task.py", line 743, in retry\n'
        '  File "/venv/lib/python3.11/site-packages/celery/utils/serialization.py", line 263,'
        ' in raise_with_context\nValueError: flaky 3\n')
    assert fingerprint("ValueError('flaky 3')", retried)["frame"] == "tasks.py:flaky"
    stdlib = ('Traceback (most recent call last):\n'
              '  File "/srv/proj/tasks.py", line 5, in parse\n'
              '  File "/usr/lib/python3.11/json/decoder.py", line 355, in raw_decode\n'
              'json.decoder.JSONDecodeError: Expecting value\n')
    assert fingerprint("JSONDecodeError('x')", stdlib)["frame"] == "tasks.py:parse"
    only_library = ('Traceback (most recent call last):\n'
                    '  File "/venv/lib/python3.11/site-packages/kombu/a.py", line 1, in go\n'
                    'OSError: x\n')
    assert fingerprint("OSError('x')", only_library)["frame"] == "a.py:go"
