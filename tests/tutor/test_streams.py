"""Reply streams under bad input and misuse: ids, ownership, limits, disconnects, Redis down."""

import time

import pytest

from foundation.extensions import make_redis, redis_ext
from tests.conftest import make_student, run_jobs
from tutor import streams
from tutor.relay import relay_for


def _ask(student, content="How do I solve 2x + 3 = 7?") -> int:
    sid = student.post("/api/v1/sessions", json={"subject": "mathematics"}).get_json()["id"]
    return student.post(f"/api/v1/sessions/{sid}/messages", json={"content": content}).get_json()["reply_id"]


def _kinds(response) -> list[str]:
    return [line[7:] for line in response.get_data(as_text=True).splitlines() if line.startswith("event: ")]


@pytest.mark.parametrize(
    "last_id", ["99999999999999-0", "99999999999999", "garbage", "12-x", "-1", "final-2", "9" * 40]
)
def test_finished_reply_closes_at_once_whatever_the_id(app, student, last_id):
    reply_id = _ask(student)
    run_jobs(app)
    started = time.monotonic()
    response = student.get(f"/api/v1/messages/{reply_id}/stream", headers={"Last-Event-ID": last_id})
    kinds = _kinds(response)  # reads to the end: the stream closed by itself
    assert time.monotonic() - started < 2
    assert response.status_code == 200
    assert kinds[-1] == "done" and kinds.count("done") == 1


def test_finished_reply_whose_stream_expired_comes_from_the_database_with_any_id(app, student):
    reply_id = _ask(student)
    run_jobs(app)
    with app.app_context():
        redis_ext.conn.delete(streams.stream_key(reply_id))
    response = student.get(f"/api/v1/messages/{reply_id}/stream", headers={"Last-Event-ID": "99999999999999-0"})
    assert _kinds(response) == ["token", "done"]


def test_unknown_and_other_students_replies_are_404(app, student):
    reply_id = _ask(student)
    assert student.get("/api/v1/messages/987654/stream").status_code == 404
    other = make_student(app, email="other@school.org")
    response = other.get(f"/api/v1/messages/{reply_id}/stream")
    assert response.status_code == 404 and response.get_json()["error"] == "not_found"


def test_future_id_on_an_unfinished_reply_means_from_the_start(app, student):
    reply_id = _ask(student)
    with app.app_context():
        redis = redis_ext.conn
        streams.claim(redis, reply_id, 1)
        first = streams.append(redis, reply_id, streams.TOKEN, {"text": "Think "}, 1)
        streams.append(redis, reply_id, streams.DONE, {"id": reply_id, "content": "Think "}, 1)
    # The row is still 'queued' (no worker ran): the stream is read live, from the start.
    response = student.get(f"/api/v1/messages/{reply_id}/stream", headers={"Last-Event-ID": "99999999999999-0"})
    body = response.get_data(as_text=True)
    assert f"id: {first}" in body and _kinds(response) == ["token", "done"]


def test_streams_per_student_are_limited_and_released(app, student):
    app.config["STREAMS_PER_STUDENT"] = 2
    try:
        reply_id = _ask(student)  # stays queued: its streams wait
        open_ = [student.get(f"/api/v1/messages/{reply_id}/stream", buffered=False) for _ in range(2)]
        assert [r.status_code for r in open_] == [200, 200]
        refused = student.get(f"/api/v1/messages/{reply_id}/stream")
        assert refused.status_code == 429
        assert refused.get_json()["error"] == "too_many_streams" and refused.headers["Retry-After"]
        other = make_student(app, email="other@school.org")  # limits are per student
        other_reply = _ask(other)
        theirs = other.get(f"/api/v1/messages/{other_reply}/stream", buffered=False)
        assert theirs.status_code == 200
        theirs.close()
        open_[0].close()  # closing one frees its slot, even though it was never read
        again = student.get(f"/api/v1/messages/{reply_id}/stream", buffered=False)
        assert again.status_code == 200
        for r in (open_[1], again):
            r.close()
        with app.app_context():
            assert all(redis_ext.conn.zcard(k) == 0 for k in redis_ext.conn.scan_iter("aitutor:streams:*"))
    finally:
        app.config["STREAMS_PER_STUDENT"] = 4


def test_client_disconnect_mid_stream_leaves_nothing_behind(app, student):
    """A stream closed by its client mid-reply drops its waiter, its slot and its Redis use."""
    reply_id = _ask(student)
    with app.app_context():
        redis = redis_ext.conn
        streams.claim(redis, reply_id, 1)
        streams.append(redis, reply_id, streams.TOKEN, {"text": "Half "}, 1)
        relay = relay_for(app.config["REDIS_URL"])
        clients_before = len(redis.client_list())
    response = student.get(f"/api/v1/messages/{reply_id}/stream", buffered=False)
    chunks = response.iter_encoded()
    seen = ""
    while "Half" not in seen:
        seen += next(chunks).decode()
    assert relay.waiting() == 1
    response.close()  # the client goes away
    with app.app_context():
        assert relay.waiting() == 0
        assert all(redis.zcard(k) == 0 for k in redis.scan_iter("aitutor:streams:*"))
        assert len(redis.client_list()) <= clients_before  # no connection held for the stream


def test_waiting_stream_is_woken_by_the_worker_and_holds_no_redis_connection(app, student):
    reply_id = _ask(student)
    response = student.get(f"/api/v1/messages/{reply_id}/stream", buffered=False)
    chunks = response.iter_encoded()
    import threading

    got: list[str] = []
    reader = threading.Thread(target=lambda: got.extend(c.decode() for c in chunks), daemon=True)
    reader.start()
    with app.app_context():
        relay = relay_for(app.config["REDIS_URL"])
        deadline = time.monotonic() + 5
        while relay.waiting() == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert relay.waiting() == 1  # parked: no thread blocked in Redis for it
        db_index = str(redis_ext.conn.connection_pool.connection_kwargs.get("db", 0))
        blocked = [
            c
            for c in redis_ext.conn.client_list()
            if c.get("db") == db_index and "b" in c.get("flags", "")  # blocked in a command
        ]
        assert blocked == [], [(c.get("cmd"), c.get("name"), c.get("age")) for c in blocked]
    run_jobs(app)  # the worker streams the reply; the relay wakes the stream
    reader.join(10)
    assert not reader.is_alive()
    assert "event: done" in "".join(got)


def test_redis_down_gives_503_not_500(app, student):
    reply_id = _ask(student)
    with app.app_context():
        saved = app.extensions["redis"]
        app.extensions["redis"] = make_redis("redis://127.0.0.1:9/0")  # nothing listens there
    try:
        response = student.get(f"/api/v1/messages/{reply_id}/stream")
        assert response.status_code == 503
        assert response.get_json()["error"] == "unavailable" and response.headers["Retry-After"]
    finally:
        app.extensions["redis"] = saved


def test_opening_streams_in_a_loop_is_throttled_before_any_database_work(app, student):
    from sqlalchemy import event

    from foundation.extensions import db

    app.config["STREAM_OPEN_RATE_LIMIT"] = "5/minute"
    try:
        reply_id = _ask(student)
        run_jobs(app)
        assert [student.get(f"/api/v1/messages/{reply_id}/stream").status_code for _ in range(5)] == [200] * 5
        queries: list[str] = []
        with app.app_context():
            engine = db.engine
        listener = lambda *args: queries.append(args[2])  # noqa: E731 - (conn, cursor, statement, ...)
        event.listen(engine, "before_cursor_execute", listener)
        try:
            refused = student.get(f"/api/v1/messages/{reply_id}/stream")
        finally:
            event.remove(engine, "before_cursor_execute", listener)
        assert refused.status_code == 429 and refused.get_json()["error"] == "stream_rate_limited"
        assert int(refused.headers["Retry-After"]) >= 1
        assert queries == []  # not even the user was loaded
        other = make_student(app, email="other@school.org")  # per student
        assert other.get(f"/api/v1/messages/{_ask(other)}/stream", buffered=False).status_code == 200
    finally:
        app.config["STREAM_OPEN_RATE_LIMIT"] = "60/minute"
