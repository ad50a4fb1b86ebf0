"""Housekeeping jobs, registered in ``jobs.schedule``."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from flask import current_app
from sqlalchemy import text

from tutor.extensions import db

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
        from jobs import get_queue

        queue = get_queue()
        for session_id in closed:
            queue.enqueue("jobs.analytics.compute_session_metrics", session_id, job_id=f"metrics-{session_id}")
        log.info("closed %d idle sessions", len(closed))
    return closed
