"""Sending one alert notification: a webhook POST or an e-mail.

Webhooks get Slack-compatible JSON ({"text": ...}, which Slack, Mattermost and most chat
incoming webhooks accept) plus the alert itself under "alert" for anything else. E-mail
goes through LOOKOUT_SMTP_URL (smtp:// uses STARTTLS when offered, smtps:// TLS).
Each delivery is attempted once with a short timeout and its outcome recorded on the
alert: a dead channel must not stall the evaluator.
"""
from __future__ import annotations

import json
import smtplib
import urllib.error
import urllib.request
from email.message import EmailMessage
from typing import Any
from urllib.parse import unquote, urlsplit

from lookout.core.config import redact_url

TIMEOUT = 5.0


def text_of(alert: dict[str, Any], event: str) -> str:
    """One line for a chat or a subject. A resolution says so in its words: repeating the
    firing text alone ("due 41 s ago and not received") read as if it were still true."""
    if event == "firing":
        return f"[FIRING] {alert['rule_name']}: {alert['message']}"
    fired, resolved = alert.get("fired_at"), alert.get("resolved_at")
    lasted = (f" after {duration(resolved - fired)}"
              if isinstance(fired, (int, float)) and isinstance(resolved, (int, float)) else "")
    why = alert.get("resolution")
    said = f"resolved{lasted}: {why}" if why else f"cleared{lasted}"
    return f"[RESOLVED] {alert['rule_name']}: {said} (was: {alert['message']})"


def duration(seconds: float) -> str:
    """41 s, 3 min 5 s, 2 h 10 min: how long an alert fired."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min" + (f" {seconds} s" if seconds else "")
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h" + (f" {minutes} min" if minutes else "")


def deliver(channel: str, alert: dict[str, Any], event: str, settings) -> dict[str, Any]:
    """Send; returns {channel, event, ok, error} (the channel with any password hidden)."""
    record = {"channel": redact_url(channel)[:300], "event": event, "ok": True, "error": None}
    try:
        if channel.startswith("mailto:"):
            _email(channel[len("mailto:"):], alert, event, settings)
        else:
            _webhook(channel, alert, event)
    except Exception as exc:  # noqa: BLE001 - any failure is recorded, never raised
        record.update(ok=False, error=f"{type(exc).__name__}: {exc}"[:300])
    return record


def _webhook(url: str, alert: dict[str, Any], event: str) -> None:
    body = json.dumps({"text": text_of(alert, event), "alert": {**alert, "event": event}},
                      default=str).encode()
    request = urllib.request.Request(url, data=body, method="POST",
                                     headers={"Content-Type": "application/json",
                                              "User-Agent": "lookout-alerts"})
    with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
        if response.status >= 300:
            raise RuntimeError(f"HTTP {response.status}")


def _email(to: str, alert: dict[str, Any], event: str, settings) -> None:
    if not settings.smtp_url:
        raise RuntimeError("no LOOKOUT_SMTP_URL configured")
    url = urlsplit(settings.smtp_url)
    message = EmailMessage()
    message["Subject"] = text_of(alert, event)[:200]
    message["From"] = settings.alert_email_from
    message["To"] = to
    message.set_content(f"{text_of(alert, event)}\n\n"
                        + json.dumps(alert, indent=2, default=str))
    secure = url.scheme == "smtps"
    client = (smtplib.SMTP_SSL if secure else smtplib.SMTP)(
        url.hostname or "localhost", url.port or (465 if secure else 25), timeout=TIMEOUT)
    with client:
        client.ehlo()
        if not secure and client.has_extn("starttls"):
            client.starttls()
        if url.username:
            client.login(unquote(url.username), unquote(url.password or ""))
        client.send_message(message)
