"""Alert rule kinds and their parameters: one definition for the admin API that checks a
rule, the rules file loader and the collector that evaluates them.

A rule is {name, kind, params, notify, cooldown, enabled}. `notify` lists channels:
`https://...` (a webhook receiving Slack-compatible JSON: {"text": ..., "alert": {...}})
or `mailto:ops@example.com` (SMTP, LOOKOUT_SMTP_URL). An empty list uses the defaults,
LOOKOUT_ALERT_WEBHOOK_URL and LOOKOUT_ALERT_EMAIL_TO.
"""
from __future__ import annotations

import math

from typing import Any

from lookout.core.config import parse_duration

# kind -> parameter -> (type, default, help). Durations accept "10m" or seconds.
KINDS: dict[str, dict[str, tuple[str, Any, str]]] = {
    "failure_rate": {
        "task": ("text", "*", "task name, or * for each name"),
        "window": ("duration", 600.0, "look-back window"),
        "threshold": ("ratio", 0.1, "failed / (succeeded + failed) above this fires"),
        "min_runs": ("count", 5, "fewer finished runs in the window never fire"),
    },
    "runtime_p95": {
        "task": ("text", "*", "task name, or * for each name"),
        "window": ("duration", 600.0, "look-back window"),
        "threshold": ("duration", 60.0, "p95 runtime above this fires"),
        "min_runs": ("count", 5, "fewer runs in the window never fire"),
    },
    "queue_length": {
        "queue": ("text", "*", "queue name, or * for each queue"),
        "threshold": ("count", 1000, "messages waiting above this..."),
        "duration": ("duration", 300.0, "...in every sample for this long fires"),
    },
    "worker_offline": {
        "worker": ("text", "*", "worker hostname, or * for each worker"),
        "after": ("duration", 120.0, "silent (or offline) for this long fires"),
        "forget_after": ("duration", 86400.0, "workers silent longer are forgotten"),
        # Rollouts that rename workers (pod names) paged for every worker they retired.
        "shutdowns": ("count", 1, "1: a worker that said goodbye (a shutdown, a deploy) "
                                  "fires too; 0: only silent ones (killed, crashed, cut off)"),
    },
    "new_failure_group": {
        "window": ("duration", 600.0, "a failure group first seen within this..."),
        "lookback": ("duration", 7 * 86400.0, "...and not in this period before it fires"),
    },
    "lost_tasks": {"min_count": ("count", 1, "this many lost tasks fires")},
    "stuck_tasks": {"min_count": ("count", 1, "this many stuck tasks fires")},
    "missed_schedule": {
        "entry": ("text", "*", "beat entry as source/name, or * for each entry"),
        "group_over": ("count", 3, "with *: this many entries of one source missed at once "
                                   "are one alert (beat itself may be down), 0 never groups"),
    },
}
MAX_NOTIFY = 10


class RuleError(ValueError):
    """A bad rule; `field` names what is wrong (the API answers 400 naming it)."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field


def _coerce(kind: str, field: str, raw: Any) -> Any:
    if kind == "text":
        if not isinstance(raw, str) or not raw or len(raw) > 255:
            raise RuleError(field, "a non-empty text up to 255 characters")
        return raw
    if isinstance(raw, bool):
        raise RuleError(field, "a number")
    try:
        value = parse_duration(raw) if kind == "duration" and isinstance(raw, str) \
            else float(raw)
        if not math.isfinite(value):
            raise ValueError(value)
    except (TypeError, ValueError, OverflowError):  # a 400-digit JSON integer: Overflow
        raise RuleError(field, "a number" + (" or a duration like 10m" if kind == "duration"
                                             else "")) from None
    if kind == "ratio" and not 0 <= value <= 1:
        raise RuleError(field, "a ratio from 0 to 1")
    if kind == "count":
        if value != int(value) or value < 0 or value > 10**9:
            raise RuleError(field, "a whole number from 0")
        return int(value)
    if kind == "duration" and not 1 <= value <= 365 * 86400:
        raise RuleError(field, "from 1 s to 365 days")
    return value


RULE_FIELDS = frozenset({"name", "kind", "params", "notify", "cooldown", "enabled"})


def validate_rule(raw: Any) -> dict[str, Any]:
    """A checked rule from an API body or a rules file entry; RuleError otherwise."""
    if not isinstance(raw, dict):
        raise RuleError("rule", "an object")
    unknown = sorted(set(raw) - RULE_FIELDS)
    if unknown:  # a misspelt "notfiy" would otherwise make a rule that tells no one
        raise RuleError(unknown[0], f"unknown field (known: {', '.join(sorted(RULE_FIELDS))})")
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > 150:
        raise RuleError("name", "a non-empty text up to 150 characters")
    kind = raw.get("kind")
    if kind not in KINDS:
        raise RuleError("kind", f"one of {', '.join(KINDS)}")
    params_in = raw.get("params") or {}
    if not isinstance(params_in, dict):
        raise RuleError("params", "an object")
    unknown = set(params_in) - set(KINDS[kind])
    if unknown:
        raise RuleError(f"params.{sorted(unknown)[0]}",
                        f"unknown for {kind} (known: {', '.join(KINDS[kind])})")
    params = {field: _coerce(t, f"params.{field}", params_in[field]) if field in params_in
              else default for field, (t, default, _) in KINDS[kind].items()}
    notify = raw.get("notify") or []
    if not isinstance(notify, list) or len(notify) > MAX_NOTIFY or not all(
            isinstance(c, str) and c.startswith(("http://", "https://", "mailto:"))
            and len(c) <= 2000 for c in notify):
        raise RuleError("notify", f"a list of up to {MAX_NOTIFY} http(s):// or mailto: URLs")
    # How long a condition must stay clear before its alert resolves; 0: at once.
    cooldown = raw.get("cooldown", 600.0)
    cooldown = (0.0 if cooldown in (0, "0", "0s") and not isinstance(cooldown, bool)
                else _coerce("duration", "cooldown", cooldown))
    enabled = raw.get("enabled", True)
    if not isinstance(enabled, bool):
        raise RuleError("enabled", "true or false")
    return {"name": name.strip(), "kind": kind, "params": params, "notify": notify,
            "cooldown": cooldown, "enabled": enabled}
