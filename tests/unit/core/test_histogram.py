"""Runtime histograms: percentiles within 10 % from microseconds to days."""
from __future__ import annotations

import pytest

from lookout.core import histogram


@pytest.mark.parametrize("runtime", [0.00002, 0.00012, 0.0009, 0.001, 0.0105, 1.5, 3600.0])
def test_percentiles_are_within_ten_percent(runtime):
    hist: dict[int, int] = {}
    for _ in range(20):
        histogram.add(hist, runtime)
    p50 = histogram.percentiles(hist, (50,))[50]
    assert runtime / 1.1 <= p50 <= runtime * 1.1


def test_fast_tasks_no_longer_all_read_one_millisecond():
    hist: dict[int, int] = {}
    for runtime in [0.0001] * 50 + [0.0004] * 45 + [0.0009] * 5:
        histogram.add(hist, runtime)
    p = histogram.percentiles(hist, (50, 95, 99))
    assert p[50] < 0.00012 and 0.00036 < p[95] < 0.00044 and 0.0008 < p[99] < 0.001


def test_stored_histograms_keep_their_meaning():
    assert histogram.bucket_of(0.001) == 0 and histogram.bucket_of(0.00105) == 0
    assert histogram.bucket_of(1.0) == 72  # as before the sub-millisecond buckets
    assert histogram.bucket_of(0) == histogram.MIN_INDEX
    assert histogram.loads(histogram.dumps({-30: 2, 4: 1})) == {-30: 2, 4: 1}
