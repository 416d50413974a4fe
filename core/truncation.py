"""The mark the collector leaves on a text it cut to the maximum field size
(collectors/events.truncate), and how readers find it again: failure grouping closes a
cut exception repr before parsing it, a retry refuses arguments that were cut."""
from __future__ import annotations

import re

TRUNCATION_MARKER = "…[truncated {} chars]"
CUT_MARK = re.compile(re.escape(TRUNCATION_MARKER).replace(re.escape("{}"), r"\d+"))


def was_cut(text: str) -> bool:
    return CUT_MARK.search(text) is not None
