"""Security issue, item 12: deleting a user leaves nothing of theirs in Redis; embed students
can be deleted by their external id."""

from __future__ import annotations

import re

from foundation.extensions import redis_ext
from tests.conftest import TEST_CONFIG, make_student, run_jobs
from tutor.embed import make_token


def _redis_keys(app) -> list[str]:
    with app.app_context():
        return sorted(k.decode() for k in redis_ext.conn.scan_iter("*"))


def test_deleting_a_user_removes_their_jobs_streams_and_counters(app, runner):
    student = make_student(app)
    sid = student.post("/api/v1/sessions", json={"subject": "mathematics"}).get_json()["id"]
    reply_id = student.post(f"/api/v1/sessions/{sid}/messages", json={"content": "solve 2x = 8"}).get_json()["reply_id"]
    run_jobs(app)
    student.get(f"/api/v1/messages/{reply_id}/stream").get_data()
    app.test_client().post("/api/v1/auth/login", json={"email": "pupil@school.org", "password": "wrong-pass"})
    before = _redis_keys(app)
    assert any(f"reply-{reply_id}" in k for k in before) and any(":login:" in k for k in before)

    result = runner.invoke(args=["users", "delete", "--email", "pupil@school.org", "--yes"])
    assert result.exit_code == 0, result.output
    after = _redis_keys(app)
    # (the address's own counter is about the address, not the account: it stays)
    mine = re.compile(rf"reply-{reply_id}\b|(^|:){reply_id}($|:)")
    leftovers = [k for k in after if mine.search(k) or ":login:pair:" in k
                 or ":login:acct:" in k
                 or f":msg:{student.id}:" in k or f"stream-open:{student.id}:" in k]  # fmt: skip
    assert leftovers == []
    assert not any("pupil" in k for k in after)


def test_an_embed_student_is_deleted_by_external_id(app, client, runner):
    token = make_token(TEST_CONFIG["EMBED_SECRET"], "lms-77", "Ada")
    assert client.get(f"/embed?token={token}").status_code == 200
    result = runner.invoke(args=["users", "delete", "--external-id", "lms-77", "--yes"])
    assert result.exit_code == 0, result.output
    again = runner.invoke(args=["users", "delete", "--external-id", "lms-77", "--yes"])
    assert again.exit_code != 0 and "lms-77" in again.output
    assert runner.invoke(args=["users", "delete", "--yes"]).exit_code != 0  # one of the two is needed
