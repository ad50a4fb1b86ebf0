"""Reply streams: the worker appends events to a Redis Stream, the SSE route relays them.

Stream entry ids double as SSE event ids, so a browser that reconnects with
``Last-Event-ID`` resumes exactly after the last event it saw. PostgreSQL stays the source
of truth: a stream is transient and expires some time after its reply ends.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from redis import Redis

STREAM_MAXLEN = 20_000  # far above any reply's chunk count; bounds a runaway provider
ACTIVE_TTL_S = 24 * 3600  # a stream whose job died is cleaned up eventually
FINISHED_TTL_S = 3600  # late readers get the whole reply from the stream for an hour

TOKEN, RESET, DONE, ERROR = "token", "reset", "done", "error"
FINAL_EVENTS = {DONE, ERROR}


# Append only while this attempt owns the reply: a work horse that outlived its worker
# (or a stale retry) cannot interleave its chunks with the current attempt's.
_APPEND = """
if ARGV[1] ~= '' and redis.call('GET', KEYS[2]) ~= ARGV[1] then return false end
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', 'event', ARGV[3], 'data', ARGV[4])
redis.call('EXPIRE', KEYS[1], ARGV[5])
return id
"""


class Superseded(Exception):
    """A newer attempt owns this reply; the current one must stop."""


def stream_key(reply_id: int) -> str:
    return f"aitutor:reply:{reply_id}"


def owner_key(reply_id: int) -> str:
    return f"aitutor:reply:{reply_id}:attempt"


def claim(redis: Redis, reply_id: int, attempt: int) -> None:
    """Make ``attempt`` the only one allowed to write this reply's stream."""
    redis.set(owner_key(reply_id), str(attempt), ex=ACTIVE_TTL_S)


def append(redis: Redis, reply_id: int, event: str, data: dict[str, Any], attempt: int | None = None) -> str:
    """Add an event; with ``attempt``, raise :class:`Superseded` if another attempt owns the reply."""
    ttl = FINISHED_TTL_S if event in FINAL_EVENTS else ACTIVE_TTL_S
    args = ["" if attempt is None else str(attempt), STREAM_MAXLEN, event, json.dumps(data), ttl]
    entry_id = redis.eval(_APPEND, 2, stream_key(reply_id), owner_key(reply_id), *args)
    if entry_id is None:
        raise Superseded(f"reply {reply_id}: attempt {attempt} was superseded")
    return entry_id.decode() if isinstance(entry_id, bytes) else entry_id


def has_events(redis: Redis, reply_id: int) -> bool:
    return bool(redis.exists(stream_key(reply_id)))


def read(redis: Redis, reply_id: int, after: str, block_ms: int) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """Events after entry id ``after``: ``(entry_id, event, data)``; waits up to ``block_ms``."""
    result = redis.xread({stream_key(reply_id): after}, count=500, block=block_ms)
    for _key, entries in result or []:
        for entry_id, fields in entries:
            eid = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
            event = fields[b"event"].decode() if b"event" in fields else fields["event"]
            raw = fields[b"data"] if b"data" in fields else fields["data"]
            yield eid, event, json.loads(raw)


def format_sse(event: str, data: dict[str, Any], event_id: str) -> str:
    return f"id: {event_id}\nevent: {event}\ndata: {json.dumps(data)}\n\n"
