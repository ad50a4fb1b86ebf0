"""Ending a session computes its metrics (idempotently), explicitly or when it goes idle."""

from datetime import UTC, datetime, timedelta

from sqlalchemy import text

from analytics.sessions import compute_session_metrics
from foundation.extensions import db
from tests.conftest import run_jobs
from tutor.curriculum import topic_count


def test_end_then_metrics(app, student):
    sid = student.post("/api/v1/sessions", json={"subject": "mathematics"}).get_json()["id"]
    student.post(f"/api/v1/sessions/{sid}/messages", json={"content": "How do I solve 2x + 3 = 7?"})
    student.post(f"/api/v1/sessions/{sid}/messages", json={"content": "what is 3/4 + 1/8?"})
    student.post(f"/api/v1/sessions/{sid}/rating", json={"rating": 4})
    student.post(f"/api/v1/sessions/{sid}/end")
    run_jobs(app)
    with app.app_context():
        row = db.session.execute(text("SELECT * FROM session_metrics WHERE session_id = :s"), {"s": sid}).one()
        assert row.message_count == 4
        assert row.student_satisfaction == 4
        assert row.topic_coverage == 2 / topic_count("mathematics")
        assert row.duration_seconds is not None
        compute_session_metrics(sid)  # again: same single row
        assert db.session.execute(text("SELECT count(*) FROM session_metrics")).scalar_one() == 1


def test_idle_session_is_abandoned_and_measured(app, student):
    sid = student.post("/api/v1/sessions", json={"subject": "science"}).get_json()["id"]
    with app.app_context():
        old = datetime.now(UTC) - timedelta(hours=2)
        db.session.execute(text("UPDATE sessions SET created_at = :t WHERE id = :s"), {"t": old, "s": sid})
        db.session.commit()
        from jobs.maintenance import close_idle_sessions

        assert close_idle_sessions() == [sid]
    run_jobs(app)
    with app.app_context():
        status = db.session.execute(text("SELECT status FROM sessions WHERE id = :s"), {"s": sid}).scalar_one()
        assert status == "abandoned"
        assert db.session.execute(text("SELECT count(*) FROM session_metrics")).scalar_one() == 1
