"""The outbox sweep and stale-reply recovery: no student message is ever left unanswered."""

from datetime import UTC, datetime, timedelta

from sqlalchemy import text

from jobs.maintenance import recover_stale_replies, sweep_outbox
from tests.conftest import run_jobs
from tutor.extensions import db, redis_ext


def _orphan_reply(app, student, age_s=120) -> int:
    sid = student.post("/api/v1/sessions", json={"subject": "mathematics"}).get_json()["id"]
    reply_id = student.post(f"/api/v1/sessions/{sid}/messages", json={"content": "what is 3/4 + 1/8"}).get_json()[
        "reply_id"
    ]
    with app.app_context():
        redis_ext.conn.flushdb()  # as if Redis lost the job (or was down when it was posted)
        old = datetime.now(UTC) - timedelta(seconds=age_s)
        db.session.execute(text("UPDATE messages SET created_at = :t"), {"t": old})
        db.session.commit()
    return reply_id


def test_sweep_enqueues_orphans_once(app, student):
    reply_id = _orphan_reply(app, student)
    with app.app_context():
        assert sweep_outbox() == [reply_id]
        assert sweep_outbox() == []  # its job is queued now: not enqueued twice
    run_jobs(app)
    assert student.get(f"/api/v1/messages/{reply_id}").get_json()["status"] == "done"


def test_sweep_leaves_fresh_replies_to_the_web_process(app, student):
    _orphan_reply(app, student, age_s=0)
    with app.app_context():
        assert sweep_outbox() == []


def test_worker_start_sweeps(app, student):
    reply_id = _orphan_reply(app, student)
    run_jobs(app)  # run_worker sweeps before it starts working
    assert student.get(f"/api/v1/messages/{reply_id}").get_json()["status"] == "done"


def test_stale_streaming_reply_is_retried_then_failed(app, student):
    reply_id = _orphan_reply(app, student, age_s=3600)
    with app.app_context():
        db.session.execute(text("UPDATE messages SET status='streaming', attempts=1 WHERE id=:i"), {"i": reply_id})
        db.session.commit()
        assert recover_stale_replies() == {"retried": [reply_id], "failed": []}
    run_jobs(app)
    assert student.get(f"/api/v1/messages/{reply_id}").get_json()["status"] == "done"

    with app.app_context():
        db.session.execute(text("UPDATE messages SET status='streaming', attempts=4 WHERE id=:i"), {"i": reply_id})
        db.session.commit()
        assert recover_stale_replies() == {"retried": [], "failed": [reply_id]}
    reply = student.get(f"/api/v1/messages/{reply_id}").get_json()
    assert reply["status"] == "failed" and "retry" in reply["error"]
