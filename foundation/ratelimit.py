"""A per-student message rate limit kept in Redis (shared by every web process)."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

# The settings import this module: gunicorn's master must not load redis (and ssl) before
# gevent patches them, so redis is imported for type checking only.
if TYPE_CHECKING:
    from redis import Redis

PERIODS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}


@dataclass(frozen=True)
class Limit:
    count: int
    seconds: int

    @classmethod
    def parse(cls, spec: str) -> Limit:
        match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d*)\s*(second|minute|hour|day)s?\s*", spec.lower())
        if not match or int(match.group(1)) < 1:
            raise ValueError(f"MESSAGE_RATE_LIMIT={spec!r} is not like '20/minute' or '100/hour'")
        return cls(int(match.group(1)), int(match.group(2) or 1) * PERIODS[match.group(3)])


_PREFIX = "aitutor:rl:"


def _bucket(key: str, limit: Limit) -> str:
    return f"{_PREFIX}{key}:{int(time.time()) // limit.seconds}"


def _wait(limit: Limit) -> int:
    return limit.seconds - int(time.time()) % limit.seconds


def hit(redis: Redis, key: str, limit: Limit) -> int:
    """Count one event; return 0 if allowed, else the seconds until the window resets."""
    bucket = _bucket(key, limit)
    pipe = redis.pipeline()
    pipe.incr(bucket)
    pipe.expire(bucket, limit.seconds + 1)
    count = pipe.execute()[0]
    return _wait(limit) if count > limit.count else 0


def peek(redis: Redis, key: str, limit: Limit) -> int:
    """Like :func:`hit` for a limit already used up, without counting an event."""
    count = int(redis.get(_bucket(key, limit)) or 0)
    return _wait(limit) if count >= limit.count else 0


def forget(redis: Redis, key: str) -> None:
    """Delete every window's count of ``key`` (a glob: ``*`` matches any part)."""
    buckets = list(redis.scan_iter(f"{_PREFIX}{key}:*", count=1000))
    if buckets:
        redis.delete(*buckets)
