"""Waking reply streams: one Redis subscription per web process instead of one read per stream.

The worker appends each chunk to the reply's Redis Stream and, in the same script, publishes
the reply's id on :data:`CHANNEL` (``tutor.streams``). Each web process keeps one pub/sub
connection (a background thread, a greenlet under gevent) that wakes the streams waiting on
that reply; a woken stream reads its new entries without blocking and goes back to waiting.
So an idle stream holds no Redis connection and no thread: a few kilobytes of state and its
socket, which is what lets a web process keep thousands of them open.

A stream registers before it reads, so a chunk published between its read and its wait still
wakes it. Publications lost while the subscription reconnects are covered by the streams'
own periodic re-read (each wait has a timeout).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from redis import Redis

log = logging.getLogger(__name__)

CHANNEL = "aitutor:reply-events"


class Relay:
    """Per-process registry of streams waiting for new events, woken by one subscription."""

    def __init__(self, connect: callable) -> None:  # type: ignore[valid-type]
        self._connect = connect  # () -> Redis, for the subscription
        self._waiting: dict[int, set[threading.Event]] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stopped = threading.Event()
        self._pubsub = None
        self.connected = threading.Event()

    def _ensure_listener(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            with self._lock:
                if self._thread is None or not self._thread.is_alive():
                    self._thread = threading.Thread(target=self._listen, name="reply-relay", daemon=True)
                    self._thread.start()

    @contextmanager
    def watch(self, reply_id: int) -> Iterator[threading.Event]:
        """An event set whenever the reply's stream may have new entries (clear it before reading)."""
        self._ensure_listener()
        event = threading.Event()
        with self._lock:
            self._waiting.setdefault(reply_id, set()).add(event)
        try:
            yield event
        finally:
            with self._lock:
                waiters = self._waiting.get(reply_id)
                if waiters is not None:
                    waiters.discard(event)
                    if not waiters:
                        del self._waiting[reply_id]

    def waiting(self) -> int:
        """Streams waiting now (for tests and metrics)."""
        with self._lock:
            return sum(len(v) for v in self._waiting.values())

    def _wake(self, reply_id: int | None) -> None:
        with self._lock:
            if reply_id is None:
                events = [e for waiters in self._waiting.values() for e in waiters]
            else:
                events = list(self._waiting.get(reply_id, ()))
        for event in events:
            event.set()

    def stop(self) -> None:
        """End the subscription (tests, before they stop their Redis)."""
        self._stopped.set()
        pubsub = self._pubsub
        if pubsub is not None:
            try:
                pubsub.close()
            except Exception:  # noqa: BLE001
                pass
        if self._thread is not None:
            self._thread.join(2)

    def _listen(self) -> None:
        delay = 0.5
        while not self._stopped.is_set():
            pubsub = None
            try:
                client: Redis = self._connect()
                pubsub = self._pubsub = client.pubsub(ignore_subscribe_messages=True)
                pubsub.subscribe(CHANNEL)
                self.connected.set()
                delay = 0.5
                self._wake(None)  # anything published while we were away: every stream re-reads
                for message in pubsub.listen():
                    if message.get("type") != "message":
                        continue
                    try:
                        self._wake(int(message["data"]))
                    except (TypeError, ValueError):
                        continue
            except Exception as exc:  # noqa: BLE001 - Redis away: streams fall back to their timeouts
                self.connected.clear()
                if self._stopped.is_set():
                    return
                log.warning("reply relay lost its Redis subscription (%s); retrying in %.1f s", exc, delay)
            finally:
                if pubsub is not None:
                    try:
                        pubsub.close()
                    except Exception:  # noqa: BLE001
                        pass
            self._stopped.wait(delay)
            delay = min(delay * 2, 10.0)


_relays: dict[str, Relay] = {}
_relays_lock = threading.Lock()


def relay_for(redis_url: str) -> Relay:
    """The process's relay for this Redis (one per URL: tests run apps on several)."""
    with _relays_lock:
        relay = _relays.get(redis_url)
        if relay is None:
            from foundation.extensions import make_redis

            # No read timeout: the subscription waits for messages as long as it takes.
            relay = _relays[redis_url] = Relay(lambda: make_redis(redis_url))
        return relay


def stop_all() -> None:
    """End every relay of this process (a test session does this before stopping its Redis)."""
    with _relays_lock:
        relays = list(_relays.values())
        _relays.clear()
    for relay in relays:
        relay.stop()
