"""One worker process runs many tutor replies at once (they wait on the model, not the CPU)."""

import time

from sqlalchemy import select

from foundation.extensions import db
from tests.conftest import make_student, run_jobs
from tests.openai_server import ScriptedOpenAI
from tutor.models import Message


def _post(student, text: str) -> int:
    sid = student.post("/api/v1/sessions", json={"subject": "mathematics"}).get_json()["id"]
    response = student.post(f"/api/v1/sessions/{sid}/messages", json={"content": text})
    assert response.status_code == 202, response.get_json()
    return response.get_json()["reply_id"]


def test_replies_run_at_once_and_each_finishes_once(app):
    saved = {k: app.config[k] for k in ("AI_PROVIDER", "OPENAI_BASE_URL", "AI_MODEL", "WORKER_REPLY_CONCURRENCY")}
    students = [make_student(app, email=f"pupil{i}@school.org") for i in range(8)]
    replies = [_post(s, f"How do I solve {i}x + 3 = 7?") for i, s in enumerate(students)]
    try:
        with ScriptedOpenAI(reply="What could you do to both sides first?") as server:
            server.first_token_delay = 1.5  # long enough for all 8 to start even on a loaded machine
            app.config.update(
                AI_PROVIDER="openai", OPENAI_BASE_URL=server.base_url, AI_MODEL="test-model", WORKER_REPLY_CONCURRENCY=8
            )
            started = time.monotonic()
            run_jobs(app)
            took = time.monotonic() - started
        assert server.max_in_flight == 8, server.max_in_flight  # one at a time would be 1
        assert len(server.requests) == 8
        assert took < 8 * 1.5 / 2, took  # one after another would take at least 12 s
    finally:
        app.config.update(saved)
    with app.app_context():
        rows = db.session.execute(select(Message.status, Message.attempts).where(Message.id.in_(replies))).all()
    assert sorted(rows) == [("done", 1)] * 8


def test_concurrency_is_bounded(app):
    saved = {k: app.config[k] for k in ("AI_PROVIDER", "OPENAI_BASE_URL", "AI_MODEL", "WORKER_REPLY_CONCURRENCY")}
    students = [make_student(app, email=f"pupil{i}@school.org") for i in range(6)]
    for i, s in enumerate(students):
        _post(s, f"What is {i} + 4?")
    try:
        with ScriptedOpenAI() as server:
            server.first_token_delay = 0.8
            app.config.update(
                AI_PROVIDER="openai", OPENAI_BASE_URL=server.base_url, AI_MODEL="test-model", WORKER_REPLY_CONCURRENCY=2
            )
            run_jobs(app)
        assert server.max_in_flight == 2 and len(server.requests) == 6
    finally:
        app.config.update(saved)


def test_fast_chunks_are_merged_into_fewer_events_first_one_at_once(app):
    """With STREAM_FLUSH_MS, the first chunk is its own event and later ones arriving within the
    window share one; the streamed text is still exactly the stored reply."""
    from foundation.extensions import redis_ext
    from tutor import streams

    saved = {k: app.config[k] for k in ("AI_PROVIDER", "OPENAI_BASE_URL", "AI_MODEL", "STREAM_FLUSH_MS")}
    student = make_student(app)
    reply_id = _post(student, "How do I solve 2x + 3 = 7?")
    words = "Let us look at what is being done to x and undo it one step at a time together"
    try:
        with ScriptedOpenAI(reply=words) as server:
            server.chunk_delay = 0.01  # 19 chunks, 100 a second
            app.config.update(AI_PROVIDER="openai", OPENAI_BASE_URL=server.base_url, AI_MODEL="m", STREAM_FLUSH_MS=50)
            run_jobs(app)
    finally:
        app.config.update(saved)
    with app.app_context():
        events = list(streams.read(redis_ext.conn, reply_id, "0-0"))
        content = db.session.get(Message, reply_id).content
    tokens = [e[2]["text"] for e in events if e[1] == "token"]
    assert tokens[0] == "Let"  # the first chunk on its own, at once
    assert 2 < len(tokens) < len(words.split()) / 2  # merged, but still streaming
    assert "".join(tokens) == content == words
