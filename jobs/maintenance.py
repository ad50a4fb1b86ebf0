"""Housekeeping jobs, registered in ``jobs.schedule``."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from flask import current_app
from sqlalchemy import text

from foundation.extensions import db

log = logging.getLogger(__name__)


def close_idle_sessions(now: datetime | None = None) -> list[str]:
    """Close active sessions idle for ``SESSION_IDLE_MINUTES`` as ``abandoned``.

    ``ended_at`` is the time of the session's last message (or its start when it has
    none), so the recorded duration is time spent, not time the tab stayed open. Returns
    the closed session ids; each gets its metrics computed.
    """
    now = now or datetime.now(UTC)
    cutoff = now - timedelta(minutes=current_app.config["SESSION_IDLE_MINUTES"])
    rows = (
        db.session.execute(
            text(
                """
            WITH last AS (
                SELECT s.id, COALESCE(MAX(m.created_at), s.created_at) AS last_at
                FROM sessions s LEFT JOIN messages m ON m.session_id = s.id
                WHERE s.status = 'active'
                GROUP BY s.id
            )
            UPDATE sessions s
            SET status = 'abandoned',
                ended_at = last.last_at,
                duration_seconds = GREATEST(0, EXTRACT(EPOCH FROM last.last_at - s.created_at))::int
            FROM last
            WHERE s.id = last.id AND last.last_at < :cutoff AND s.status = 'active'
            RETURNING s.id
            """
            ),
            {"cutoff": cutoff},
        )
        .scalars()
        .all()
    )
    db.session.commit()
    closed = [str(r) for r in rows]
    if closed:
        from foundation.queue import get_queue

        queue = get_queue()
        for session_id in closed:
            queue.enqueue("jobs.analytics.compute_session_metrics", session_id, job_id=f"metrics-{session_id}")
        log.info("closed %d idle sessions", len(closed))
    return closed


# Replies younger than this may still be on their way to the queue from the web process.
OUTBOX_GRACE_S = 30
# A reply streaming for longer than its job's timeout plus this has lost its worker.
STALE_GRACE_S = 120


def sweep_outbox(now: datetime | None = None) -> list[int]:
    """Enqueue again every ``queued`` reply with no live RQ job behind it.

    The web process commits a message and its queued reply before it touches Redis; if
    Redis was down then (or the job expired) this sweep, run every minute and when a worker
    starts, is what gets the reply answered. Job ids are derived (``reply-<id>``), so a
    reply is never enqueued twice.
    """
    from tutor.replies import enqueue_reply, reply_job_status

    now = now or datetime.now(UTC)
    ids = (
        db.session.execute(
            text("SELECT id FROM messages WHERE status = 'queued' AND role = 'tutor' AND created_at < :t ORDER BY id"),
            {"t": now - timedelta(seconds=OUTBOX_GRACE_S)},
        )
        .scalars()
        .all()
    )
    db.session.commit()
    enqueued = []
    for reply_id in ids:
        if reply_job_status(reply_id) in {"queued", "started", "scheduled", "deferred"}:
            continue  # a job is on its way (a retry waiting for its delay counts)
        enqueue_reply(reply_id)
        enqueued.append(reply_id)
    if enqueued:
        log.warning("outbox sweep enqueued %d orphaned replies: %s", len(enqueued), enqueued[:20])
    return enqueued


def recover_stale_replies(now: datetime | None = None) -> dict[str, list[int]]:
    """Replies stuck in ``streaming`` past their job timeout: retried, or failed after the last try."""
    from foundation.extensions import redis_ext
    from tutor import streams
    from tutor.replies import JOB_TIMEOUT_S, enqueue_reply, reply_job_status, retry_policy

    now = now or datetime.now(UTC)
    max_attempts = 1 + (retry_policy().max or 0)
    # created_at is when the student asked; a reply streaming far longer than a job may run has lost its worker.
    rows = db.session.execute(
        text(
            "SELECT id, attempts FROM messages WHERE status = 'streaming' AND role = 'tutor' AND created_at < :t ORDER BY id"
        ),
        {"t": now - timedelta(seconds=JOB_TIMEOUT_S * max_attempts + STALE_GRACE_S)},
    ).all()
    result: dict[str, list[int]] = {"retried": [], "failed": []}
    for reply_id, attempts in rows:
        if reply_job_status(reply_id) == "started":
            continue  # RQ still has a live worker on it
        if attempts < max_attempts:
            db.session.execute(
                text("UPDATE messages SET status = 'queued' WHERE id = :i AND status = 'streaming'"), {"i": reply_id}
            )
            db.session.commit()
            enqueue_reply(reply_id)
            result["retried"].append(reply_id)
        else:
            error = "The tutor stopped answering. Press \u201cTry again\u201d to ask once more."
            db.session.execute(
                text("UPDATE messages SET status = 'failed', error = :e WHERE id = :i AND status = 'streaming'"),
                {"i": reply_id, "e": error},
            )
            db.session.commit()
            log.warning("reply %s: its worker was lost %s time(s); failed for good", reply_id, attempts)
            streams.append(redis_ext.conn, reply_id, streams.ERROR, {"error": error})
            result["failed"].append(reply_id)
    if rows:
        log.warning("stale replies: %s", result)
    return result


def purge_expired() -> dict[str, int]:
    """Housekeeping RQ does not do on its own schedule, and reply streams left without expiry.

    RQ expires results and failed jobs by their TTLs; this also drops registry entries whose
    job hash is gone, so rq-dashboard and the metrics count only real jobs. Reply streams
    always get an expiry when written; one that lost it (e.g. a Redis restored from an old
    dump) is deleted once its reply is finished.
    """
    from rq import Queue
    from rq.registry import clean_registries

    from foundation.extensions import redis_ext
    from foundation.queue import QUEUES
    from tutor import streams

    redis = redis_ext.conn
    for name in QUEUES:
        clean_registries(Queue(name, connection=redis))
    orphaned: list[int] = []
    for key in redis.scan_iter(match="aitutor:reply:*", count=500):
        name = key.decode() if isinstance(key, bytes) else key
        parts = name.split(":")
        if len(parts) == 3 and parts[2].isdigit() and redis.ttl(name) == -1:
            orphaned.append(int(parts[2]))
    statuses: dict[int, str] = {}
    if orphaned:
        rows = db.session.execute(text("SELECT id, status FROM messages WHERE id = ANY(:ids)"), {"ids": orphaned})
        statuses = {row.id: row.status for row in rows}
        db.session.commit()
    deleted = 0
    for reply_id in orphaned:
        if statuses.get(reply_id, "gone") in {"done", "failed", "gone"}:
            redis.delete(streams.stream_key(reply_id), streams.owner_key(reply_id))
            deleted += 1
    return {"streams_deleted": deleted}
