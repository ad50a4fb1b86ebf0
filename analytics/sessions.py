"""Per-session metrics, written when a session ends (``jobs.analytics.compute_session_metrics``)."""

from __future__ import annotations

import uuid

from sqlalchemy import text

from foundation.extensions import db


def compute_session_metrics(session_id: str | uuid.UUID) -> None:
    """Write the ``session_metrics`` row of one session; running it again rewrites the same row.

    ``topic_coverage`` is the share of the subject's curriculum topics the session touched;
    it stays null until the curriculum is known for that subject.
    """
    from tutor.curriculum import topic_count

    sid = uuid.UUID(str(session_id))
    row = db.session.execute(
        text(
            """
            SELECT s.subject, s.duration_seconds, s.satisfaction,
                   (SELECT count(*) FROM messages m WHERE m.session_id = s.id) AS message_count,
                   (SELECT count(*) FROM session_topics t WHERE t.session_id = s.id) AS topics
            FROM sessions s WHERE s.id = :sid
            """
        ),
        {"sid": sid},
    ).one_or_none()
    if row is None:
        return
    total = topic_count(row.subject)
    coverage = min(1.0, row.topics / total) if total else None
    db.session.execute(
        text(
            """
            INSERT INTO session_metrics (session_id, duration_seconds, message_count, student_satisfaction, topic_coverage)
            VALUES (:sid, :duration, :messages, :satisfaction, :coverage)
            ON CONFLICT (session_id) DO UPDATE SET
                duration_seconds = EXCLUDED.duration_seconds,
                message_count = EXCLUDED.message_count,
                student_satisfaction = EXCLUDED.student_satisfaction,
                topic_coverage = EXCLUDED.topic_coverage
            """
        ),
        {
            "sid": sid,
            "duration": row.duration_seconds,
            "messages": row.message_count,
            "satisfaction": row.satisfaction,
            "coverage": coverage,
        },
    )
    db.session.commit()
