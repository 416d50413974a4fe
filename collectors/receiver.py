"""The collector's receive side: a kombu consumer on Celery's event exchange.

This thread must never fall behind the broker (see CELERY_FACTS.md: a slow subscriber is
cut off by Redis, and loses events on RabbitMQ), so its callback only decodes, validates
and appends to the `EventBuffer`; the database belongs to the writer thread.

Durability differs by transport:

- RabbitMQ: events land in a NAMED, durable queue with an expiry, so a collector that is
  restarted (or crashes) within `event_queue_expires` finds everything sent meanwhile.
  Messages are acked only once the writer has committed them (`on_commit`), so a crash
  between receive and commit means redelivery, never loss; the writer drops duplicates.
  Collectors that share a queue name share (split) its events: give each store its own.
- Redis: events are PUBLISHed and a subscriber that is not connected gets nothing. No
  queue, ack or retry can fix that, so on Redis a collector outage is a gap in history.
"""
from __future__ import annotations

import logging
import socket
import threading
import time
import uuid
from typing import Any, Callable, Iterable

from celery import Celery
from celery.events.event import get_exchange
from kombu import Connection, Consumer, Queue
from kombu.serialization import loads as kombu_loads

from lookout.collectors.buffer import EventBuffer, RawMessage
from lookout.collectors.envelopes import make_tolerant
from lookout.collectors.events import InvalidEvent, decode_body, validate
from lookout.collectors.stats import CollectorStats
from lookout.core.celery_client import connection_options
from lookout.core.config import Settings, redact_url

log = logging.getLogger(__name__)

DRAIN_TIMEOUT = 0.25  # bounds how long a stop request or a pending ack waits
FIRST_BACKOFF = 0.5
AMQP_HEARTBEAT = 10  # seconds; detects a half-open connection to RabbitMQ
# Redis has no heartbeat: a broker that stops answering (hung, SIGSTOPped, a network cut
# the kernel has not noticed) leaves a subscriber waiting for messages that never come.
# A PING this often, answered within the 5 s socket bound, turns that into an outage.
REDIS_PING_INTERVAL = 5.0
MAX_PREFETCH = 65535  # AMQP's prefetch_count is a 16-bit field
FINAL_ACK_WAIT = 30.0  # how long a stopping receiver waits for the writer's last commit
# Pending events beyond which messages are buffered undecoded (see collectors.buffer): at
# about 1.6 KB per decoded event this bounds decoded events to ~8 MB however long the
# backlog (a writer batch's worth, batch_size being 5,000 by default), while a short
# backlog still gets the hand-over of decoded events. 20,000 left 150k-burst peaks at
# 167-203 MB; 5,000 gave 151-193 MB.
RAW_BACKLOG = 5_000


class _FailFastConnection(Connection):
    """A kombu Connection whose publishes raise at once instead of retrying forever.

    Celery's control broadcast publishes with ``retry=True`` and an empty policy, which
    kombu reads as "retry until the broker is back": the receive thread would hang there,
    deaf to stop requests and unable to report the outage. The reconnect loop below owns
    retrying, with backoff and status reporting.
    """

    def ensure(self, obj, fun, errback=None, max_retries=None, *args, **kwargs):
        return super().ensure(obj, fun, errback, 0, *args, **kwargs)


class EventReceiver:
    """Consume Celery events into an `EventBuffer`, reconnecting until asked to stop."""

    def __init__(self, settings: Settings, buffer: EventBuffer, stats: CollectorStats):
        self.settings = settings
        self.buffer = buffer
        self.stats = stats
        # Handed each message's valid events (the live push; Collector.add_observer).
        self.on_events: Callable[[list], None] | None = None
        # Set once the receiver no longer hands events to the buffer (stopping or ended):
        # the service waits for it before draining the writer.
        self.idle = threading.Event()
        # Delivery tags are per channel: tokens are (generation, tag) so that commits of
        # messages from a dead channel are ignored (the broker redelivers those).
        self._lock = threading.Lock()
        self._generation = 0
        self._committed = 0
        self._acked = 0
        self.raw_backlog = RAW_BACKLOG

    # -- called from the writer thread ------------------------------------------------

    def on_commit(self, tokens: Iterable[Any]) -> None:
        """Record the highest committed delivery tag; the consumer thread acks it."""
        with self._lock:
            for token in tokens:
                if (isinstance(token, tuple) and token[0] == self._generation
                        and token[1] > self._committed):
                    self._committed = token[1]

    # -- the receive thread -------------------------------------------------------------

    def run(self, should_stop: threading.Event, flushed: threading.Event | None = None) -> None:
        """Consume until `should_stop` is set; on RabbitMQ, wait for `flushed` to ack last."""
        app, own_app = None, False
        backoff = FIRST_BACKOFF
        try:
            app, own_app = self._control_app()
            while not should_stop.is_set():
                conn = self._connection()
                try:
                    self._consume(conn, app, should_stop, flushed)
                except Exception as exc:  # noqa: BLE001 - any failure means reconnect
                    if self.stats.connected:
                        backoff = FIRST_BACKOFF  # it worked until now: retry quickly
                    self._mark_disconnected(exc, backoff)
                finally:
                    _close_quietly(conn)
                if should_stop.wait(backoff):
                    break
                backoff = min(backoff * 2, max(self.settings.reconnect_max_backoff,
                                               FIRST_BACKOFF))
        finally:
            self.idle.set()
            if self.stats.connected:
                self.stats.connected = False
                self.stats.disconnected_since = time.time()
            if own_app and app is not None:
                app.close()

    def _control_app(self):
        """The Celery app used for control broadcasts: the user's (-A) or a bare one."""
        app = self.settings.extra.get("celery_app")
        if app is not None:
            return app, False
        return Celery("lookout", broker=self.settings.broker_url, set_as_current=False), True

    def _connection(self) -> Connection:
        # With -A proj: the project's transport options, SSL and login method.
        options = connection_options(self.settings.broker_url, self.settings.broker_conf)
        return _FailFastConnection(self.settings.broker_url, heartbeat=AMQP_HEARTBEAT,
                                   connect_timeout=5, **options)

    def _consume(self, conn: Connection, app, should_stop: threading.Event,
                 flushed: threading.Event | None) -> None:
        conn.connect()
        amqp = conn.transport.driver_type == "amqp"
        with self._lock:
            self._generation += 1
            self._committed = self._acked = 0
            generation = self._generation
        channel = conn.channel()
        if not amqp:  # a malformed payload must not read as a broken connection
            make_tolerant(channel, self._on_bad_payload)
        exchange = get_exchange(conn, name=app.conf.event_exchange)
        consumer = Consumer(
            channel, queues=[self._queue(exchange, amqp)], accept=["json"], no_ack=not amqp,
            on_message=lambda message: self._on_message(message, generation if amqp else None),
            on_decode_error=lambda message, exc: self._on_bad_envelope(
                message, exc, generation if amqp else None))
        if amqp:
            consumer.qos(prefetch_count=min(MAX_PREFETCH, max(1000, self.settings.batch_size * 4)))
        consumer.consume()
        # Redis subscribes lazily on the first drain: do it before waking the workers so
        # their answering heartbeats are not published to nobody.
        self._drain(conn)
        self._mark_connected()
        control_channel = conn.channel()
        _broadcast(app, "heartbeat", conn, control_channel)
        next_enable = 0.0
        next_tick = time.monotonic() + 1.0
        next_ping = time.monotonic() + REDIS_PING_INTERVAL
        while not should_stop.is_set():
            now = time.monotonic()
            if now >= next_enable:
                _broadcast(app, "enable_events", conn, control_channel)
                next_enable = now + self.settings.enable_events_interval
            if now >= next_tick:
                conn.heartbeat_check()
                next_tick = now + 1.0
            if not amqp and now >= next_ping:
                control_channel.client.ping()  # raises on a silent broker: reconnect
                next_ping = now + REDIS_PING_INTERVAL
            self._drain(conn)
            if amqp:
                self._ack(channel)
        consumer.cancel()
        self.idle.set()
        if amqp and flushed is not None:
            self._final_ack(conn, channel, flushed)

    def _queue(self, exchange, amqp: bool) -> Queue:
        if amqp:
            return Queue(self.settings.event_queue_name, exchange=exchange, routing_key="#",
                         durable=True, auto_delete=False,
                         expires=self.settings.event_queue_expires,
                         max_length=self.settings.event_queue_max_length)
        # Pub/sub: a queue name of our own, gone with the subscription, as Celery does.
        return Queue(f"lookout.events.{uuid.uuid4().hex}", exchange=exchange,
                     routing_key="#", durable=False, auto_delete=True)

    @staticmethod
    def _drain(conn: Connection) -> None:
        try:
            conn.drain_events(timeout=DRAIN_TIMEOUT)
        except socket.timeout:
            pass

    def _ack(self, channel) -> None:
        with self._lock:
            committed = self._committed
        if committed > self._acked:
            channel.basic_ack(committed, multiple=True)
            self._acked = committed

    def _final_ack(self, conn: Connection, channel, flushed: threading.Event) -> None:
        """Ack what the writer commits while stopping; the rest is redelivered later."""
        deadline = time.monotonic() + FINAL_ACK_WAIT
        while not flushed.is_set() and time.monotonic() < deadline:
            self._drain(conn)  # keeps the connection serviced; deliveries are ignored
            conn.heartbeat_check()
        self._ack(channel)

    # -- per message: decode, validate, hand over -----------------------------------------

    def _on_message(self, message, generation: int | None) -> None:
        if self.idle.is_set():
            return  # stopping: left unacked, so the broker redelivers it to the next run
        error = getattr(message, "lookout_error", None)
        if error is not None:  # see envelopes.py
            self._on_bad_payload(error)
            return
        self.stats.messages += 1
        now = time.time()
        token = None if generation is None else (generation, message.delivery_tag)
        if len(self.buffer) >= self.raw_backlog and self.on_events is None:
            # Behind: keep only the body; the writer decodes it when it gets there. Not
            # with a live push: pages would then wait for the writer after all.
            body = message.body
            self.buffer.put_raw(RawMessage(
                body, message.content_type, message.content_encoding, message.accept, now,
                _estimate_events(body), self.expand), token)
            return
        events = self._events(message.body, message.content_type, message.content_encoding,
                              message.accept, now)
        if events:
            self.stats.count_received(len(events), now)
            if self.on_events is not None:
                self.on_events(events)
        if token is not None or events:
            self.buffer.put(events, token, _size(message.body))

    def expand(self, raw: RawMessage) -> list:
        """Decode and validate a message buffered raw (runs on the writer's thread)."""
        events = self._events(raw.body, raw.content_type, raw.content_encoding, raw.accept,
                              raw.local_received)
        if events:
            self.stats.count_received(len(events), raw.local_received)
            if self.on_events is not None:  # behind: the live push hears them now
                self.on_events(events)
        return events

    def _events(self, body, content_type, content_encoding, accept, now: float) -> list:
        """The valid events of one message body; invalid ones are counted and logged.

        Decodes as kombu's `Message.decode()` does; a body it refuses (wrong content
        type, not text) gets `decode_body`, which names what is wrong with it.
        """
        events = []
        try:
            try:
                payload = kombu_loads(body, content_type, content_encoding, accept=accept)
            except Exception:  # noqa: BLE001 - decode_body names what is wrong with it
                payload = body
            for raw in decode_body(payload):
                try:
                    events.append(validate(raw, now, self.settings.max_field_size))
                except InvalidEvent as exc:
                    self._reject(exc.reason, str(exc), raw)
                except Exception as exc:  # noqa: BLE001 - a validation bug costs one event,
                    # not the others of its task.multi message (a 10**400 timestamp did)
                    if self.stats.rejected["internal error"] < 10:  # not a flood of them
                        log.exception("unexpected error validating an event")
                    self._reject("internal error", repr(exc)[:200], raw)
        except InvalidEvent as exc:
            self._reject(exc.reason, str(exc), None)
        except Exception as exc:  # noqa: BLE001 - one message never stops the consumer
            log.exception("unexpected error handling an event message")
            self._reject("internal error", repr(exc), None)
        return events

    def _on_bad_payload(self, detail: str) -> None:
        self.stats.messages += 1
        self._reject("bad message", detail, None)

    def _on_bad_envelope(self, message, exc: Exception, generation: int | None) -> None:
        self._on_bad_payload(repr(exc))
        if generation is not None and getattr(message, "delivery_tag", None) is not None:
            self.buffer.put([], (generation, message.delivery_tag))

    def _reject(self, reason: str, detail: str, raw: Any) -> None:
        if isinstance(raw, dict):
            who = " ".join(str(raw.get(k))[:64] for k in ("type", "hostname", "uuid")
                           if raw.get(k) is not None)
            detail = f"{detail} ({who})" if who else detail
        seen = self.stats.reject(reason, detail)
        if seen <= 10 or seen % 1000 == 0:  # a flood of bad events must not flood the log
            log.warning("rejected event #%d for %r: %s", seen, reason, detail[:300])

    # -- connection state for the status row ----------------------------------------------

    def _mark_connected(self) -> None:
        stats = self.stats
        stats.connected_since = time.time()
        stats.disconnected_since = None
        stats.last_error = None  # like last_write_error: what is wrong now, not history
        stats.connected = True
        stats.status_due.set()
        log.info("connected to %s", redact_url(self.settings.broker_url))

    def _mark_disconnected(self, exc: Exception, retry_in: float) -> None:
        stats = self.stats
        if stats.connected or stats.disconnected_since is None:
            stats.disconnected_since = time.time()
        stats.connected = False
        stats.status_due.set()
        stats.last_error = f"{type(exc).__name__}: {exc}"[:500]
        log.warning("broker %s: %s; reconnecting in %.1fs",
                    redact_url(self.settings.broker_url), stats.last_error, retry_in)
        if "PRECONDITION_FAILED" in stats.last_error:
            log.error("queue %r exists with other arguments (expiry or max length changed?): "
                      "delete it or choose another event_queue_name",
                      self.settings.event_queue_name)


def _broadcast(app, command: str, conn: Connection, channel) -> None:
    """Send a control command (no reply) on `channel`, so on the receiver's fail-fast
    connection. `app.control.broadcast` would publish through the app's own producer pool
    whatever channel it is given (kombu's Mailbox prefers its pool), with Celery's
    retry-forever policy and, on Redis, no socket bound: on a hung broker it waited for
    good, the receiver deaf to stop requests. The bound mailbox without a pool publishes
    on the channel. (kombu's `Mailbox._broadcast` is what Celery's own `broadcast` calls;
    pinned by tests/integration/test_collector_faults.py.)
    """
    mailbox = app.control.mailbox(conn)
    mailbox._producer_pool = None
    mailbox._broadcast(command, {}, None, False, 1.0, channel=channel)


def _estimate_events(body: Any) -> int:
    """How many events a raw body holds, without decoding it: its `"type"` keys.

    Only for the buffer's pending count (backlog checks, /healthz); the writer counts
    what it actually decodes. Inside a JSON string a quote is escaped, so text that
    merely contains "type" is not counted.
    """
    try:
        return max(1, body.count(b'"type"' if isinstance(body, bytes) else '"type"'))
    except (AttributeError, TypeError):
        return 1


def _size(body: Any) -> int:
    try:
        return len(body)
    except TypeError:  # already decoded by the transport
        return 0


def _close_quietly(conn: Connection) -> None:
    try:
        conn.release()
    except Exception:  # noqa: BLE001 - the connection is already broken
        log.debug("error closing broker connection", exc_info=True)
