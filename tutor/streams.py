"""Reply streams: the worker appends events to a Redis Stream, the SSE route relays them.

Stream entry ids double as SSE event ids, so a browser that reconnects with
``Last-Event-ID`` resumes exactly after the last event it saw. PostgreSQL stays the source
of truth: a stream is transient and expires some time after its reply ends.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

from redis import Redis
from redis.commands.core import Script

from .relay import CHANNEL

STREAM_MAXLEN = 20_000  # far above any reply's chunk count; bounds a runaway provider
ACTIVE_TTL_S = 24 * 3600  # a stream whose job died is cleaned up eventually
FINISHED_TTL_S = 3600  # late readers get the whole reply from the stream for an hour

TOKEN, RESET, DONE, ERROR = "token", "reset", "done", "error"
FINAL_EVENTS = {DONE, ERROR}


# Append only while this attempt owns the reply: a work horse that outlived its worker
# (or a stale retry) cannot interleave its chunks with the current attempt's. The reply's id
# is then published on the relay channel, which wakes the streams waiting on it (tutor.relay).
_APPEND = """
if ARGV[1] ~= '' and redis.call('GET', KEYS[2]) ~= ARGV[1] then return false end
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', 'event', ARGV[3], 'data', ARGV[4])
redis.call('EXPIRE', KEYS[1], ARGV[5])
redis.call('PUBLISH', ARGV[6], ARGV[7])
return id
"""

# Sent by hash (EVALSHA; redis-py loads it again if the server forgot it): a chunk is one small
# round trip, not the script's text each time.
_APPEND_SCRIPT = Script(None, _APPEND.encode())  # type: ignore[arg-type]

# A student's open streams: a sorted set of leases (member: a random token, score: when the
# lease ends). Expired leases are dropped first, so a web process that died cannot keep a
# student's slots taken for longer than one lease.
_LEASE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[4])
redis.call('EXPIRE', KEYS[1], ARGV[5])
return 1
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
    args = ["" if attempt is None else str(attempt), STREAM_MAXLEN, event, json.dumps(data), ttl, CHANNEL, reply_id]
    entry_id = _APPEND_SCRIPT(keys=[stream_key(reply_id), owner_key(reply_id)], args=args, client=redis)
    if entry_id is None:
        raise Superseded(f"reply {reply_id}: attempt {attempt} was superseded")
    return entry_id.decode() if isinstance(entry_id, bytes) else entry_id


def has_events(redis: Redis, reply_id: int) -> bool:
    return bool(redis.exists(stream_key(reply_id)))


def read(redis: Redis, reply_id: int, after: str) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """Events after entry id ``after``: ``(entry_id, event, data)``, at once (never waits)."""
    result = redis.xread({stream_key(reply_id): after}, count=500)
    for _key, entries in result or []:
        for entry_id, fields in entries:
            yield _entry(entry_id, fields)


def read_all(redis: Redis, reply_id: int, after: str) -> list[tuple[str, str, dict[str, Any]]]:
    """Every event after ``after`` (exclusive), at once."""
    return [_entry(i, f) for i, f in redis.xrange(stream_key(reply_id), min=f"({after}", max="+")]


def last_id(redis: Redis, reply_id: int) -> str | None:
    """The id of the stream's newest entry (None: no stream)."""
    newest = redis.xrevrange(stream_key(reply_id), count=1)
    if not newest:
        return None
    entry_id = newest[0][0]
    return entry_id.decode() if isinstance(entry_id, bytes) else entry_id


def _entry(entry_id: Any, fields: dict[Any, Any]) -> tuple[str, str, dict[str, Any]]:
    eid = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    event = fields[b"event"].decode() if b"event" in fields else fields["event"]
    raw = fields[b"data"] if b"data" in fields else fields["data"]
    return eid, event, json.loads(raw)


def parse_id(value: str) -> tuple[int, int] | None:
    """A stream entry id (``ms-seq`` or ``ms``) as a pair for comparing, or None if malformed."""
    left, _, right = value.partition("-")
    if not left.isdigit() or not (right == "" or right.isdigit()) or len(left) > 20 or len(right) > 20:
        return None
    return int(left), int(right or 0)


def lease_key(student_id: int) -> str:
    return f"aitutor:streams:{student_id}"


def take_lease(redis: Redis, student_id: int, token: str, limit: int, seconds: float) -> bool:
    """Take one of the student's ``limit`` stream slots for ``seconds`` (False: all taken)."""
    now = time.time()
    key = lease_key(student_id)
    return bool(redis.eval(_LEASE, 1, key, now, limit, now + seconds, token, int(seconds) + 60))


def renew_lease(redis: Redis, student_id: int, token: str, seconds: float) -> None:
    redis.zadd(lease_key(student_id), {token: time.time() + seconds}, xx=True)


def drop_lease(redis: Redis, student_id: int, token: str) -> None:
    redis.zrem(lease_key(student_id), token)


def format_sse(event: str, data: dict[str, Any], event_id: str) -> str:
    return f"id: {event_id}\nevent: {event}\ndata: {json.dumps(data)}\n\n"


# ----------------------------------------------------------------------------- stop requests

STOP_TTL_S = 600  # longer than any reply takes


def stop_key(reply_id: int) -> str:
    return f"aitutor:stop:{reply_id}"


def request_stop(redis: Redis, reply_id: int) -> None:
    """Ask the worker writing this reply to stop (the student pressed Stop)."""
    redis.set(stop_key(reply_id), 1, ex=STOP_TTL_S)


def stop_requested(redis: Redis, reply_id: int) -> bool:
    return bool(redis.exists(stop_key(reply_id)))
