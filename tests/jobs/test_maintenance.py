"""The outbox sweep and stale-reply recovery: no student message is ever left unanswered."""

from datetime import UTC, datetime, timedelta

from sqlalchemy import text

from foundation.extensions import db, redis_ext
from jobs.maintenance import recover_stale_replies, sweep_outbox
from tests.conftest import run_jobs


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
    assert reply["status"] == "failed" and "Try again" in reply["error"]


def test_purge_deletes_streams_that_lost_their_expiry(app, student):
    from jobs.maintenance import purge_expired
    from tutor import streams

    sid = student.post("/api/v1/sessions", json={"subject": "mathematics"}).get_json()["id"]
    done_id = student.post(f"/api/v1/sessions/{sid}/messages", json={"content": "hi"}).get_json()["reply_id"]
    run_jobs(app)
    pending_id = student.post(f"/api/v1/sessions/{sid}/messages", json={"content": "and?"}).get_json()["reply_id"]
    with app.app_context():
        redis = redis_ext.conn
        streams.append(redis, pending_id, streams.TOKEN, {"text": "so far"})
        redis.persist(streams.stream_key(done_id))
        redis.persist(streams.stream_key(pending_id))
        assert purge_expired() == {"streams_deleted": 1}
        assert not redis.exists(streams.stream_key(done_id))
        assert redis.exists(streams.stream_key(pending_id))  # still being answered


def test_deleting_a_user_deletes_their_tutoring_data(app, student, runner):
    from tutor import streams

    sid = student.post("/api/v1/sessions", json={"subject": "mathematics"}).get_json()["id"]
    reply_id = student.post(f"/api/v1/sessions/{sid}/messages", json={"content": "what is 3/4 + 1/8"}).get_json()[
        "reply_id"
    ]
    student.post(f"/api/v1/sessions/{sid}/end")
    run_jobs(app)
    result = runner.invoke(args=["users", "delete", "--email", "pupil@school.org", "--yes"])
    assert result.exit_code == 0, result.output
    assert "1 sessions, 1 tutor replies" in result.output
    with app.app_context():
        for table in ("users", "sessions", "messages", "session_topics", "session_metrics"):
            assert db.session.execute(text(f"SELECT count(*) FROM {table}")).scalar_one() == 0, table
        assert not redis_ext.conn.exists(streams.stream_key(reply_id))
    assert runner.invoke(args=["users", "delete", "--email", "nobody@x.org", "--yes"]).exit_code != 0
