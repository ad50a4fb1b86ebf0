"""The reply path: job idempotence, retries against an OpenAI-compatible server, SSE resume."""

import json

import pytest
from sqlalchemy import func, select

from foundation.extensions import db
from jobs.ai import process_ai_response
from tests.conftest import run_jobs
from tests.openai_server import ScriptedOpenAI
from tutor import streams
from tutor.models import Message


def _ask(student, content="How do I solve 2x + 3 = 7?"):
    sid = student.post("/api/v1/sessions", json={"subject": "mathematics"}).get_json()["id"]
    return sid, student.post(f"/api/v1/sessions/{sid}/messages", json={"content": content}).get_json()["reply_id"]


def _events(response) -> list[tuple[str, str, dict]]:
    out = []
    for block in response.get_data(as_text=True).split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line and not line.startswith(":"))
        if "event" in fields:
            out.append((fields["id"], fields["event"], json.loads(fields["data"])))
    return out


def test_job_twice_leaves_one_complete_reply(app, student):
    _, reply_id = _ask(student)
    with app.app_context():
        assert process_ai_response(reply_id) == "done"
        first = db.session.get(Message, reply_id).content
        assert process_ai_response(reply_id) == "done"  # already done: nothing happens
        tutor_replies = db.session.scalar(select(func.count()).where(Message.role == "tutor"))
        reply = db.session.get(Message, reply_id)
        assert tutor_replies == 1
        assert reply.content == first and reply.attempts == 1
        assert reply.latency_ms is not None and reply.provider == "builtin" and reply.completion_tokens > 0


def test_interrupted_attempt_is_redone_from_scratch(app, student):
    """A worker killed mid-reply leaves the row 'streaming' and half a stream; the retry resets."""
    _, reply_id = _ask(student)
    with app.app_context():
        from foundation.extensions import redis_ext
        from tutor import streams

        db.session.execute(db.text("UPDATE messages SET status='streaming', attempts=1 WHERE id=:i"), {"i": reply_id})
        db.session.commit()
        streams.append(redis_ext.conn, reply_id, streams.TOKEN, {"text": "half a repl"})
        assert process_ai_response(reply_id) == "done"
        reply = db.session.get(Message, reply_id)
        assert reply.attempts == 2 and reply.status == "done"
    events = _events(student.get(f"/api/v1/messages/{reply_id}/stream"))
    kinds = [e[1] for e in events]
    assert kinds[0] == "token" and kinds[1] == "reset" and kinds[-1] == "done"
    after_reset = "".join(e[2]["text"] for e in events[2:] if e[1] == "token")
    assert after_reset == events[-1][2]["content"]


def test_stream_replays_whole_reply_and_resumes_with_last_event_id(app, student):
    _, reply_id = _ask(student)
    run_jobs(app)
    events = _events(student.get(f"/api/v1/messages/{reply_id}/stream"))
    assert events[-1][1] == "done"
    tokens = [e for e in events if e[1] == "token"]
    assert len(tokens) > 3
    full = "".join(e[2]["text"] for e in tokens)
    assert full == events[-1][2]["content"]

    cut = tokens[2][0]
    resumed = _events(student.get(f"/api/v1/messages/{reply_id}/stream", headers={"Last-Event-ID": cut}))
    after_cut = [e[0] for e in events if streams.parse_id(e[0]) > streams.parse_id(cut)]  # ids compare as numbers
    assert [e[0] for e in resumed] == after_cut  # no gap, no repeat
    assert "".join(e[2]["text"] for e in tokens[:3]) + "".join(e[2]["text"] for e in resumed if e[1] == "token") == full


def test_stream_after_expiry_comes_from_the_database(app, student):
    _, reply_id = _ask(student)
    run_jobs(app)
    with app.app_context():
        from foundation.extensions import redis_ext
        from tutor import streams

        redis_ext.conn.delete(streams.stream_key(reply_id))
        content = db.session.get(Message, reply_id).content
    events = _events(student.get(f"/api/v1/messages/{reply_id}/stream"))
    assert [e[1] for e in events] == ["token", "done"]
    assert events[0][2]["text"] == content


@pytest.fixture
def openai_app(app):
    saved = {k: app.config[k] for k in ("AI_PROVIDER", "OPENAI_BASE_URL", "AI_MODEL")}
    yield app
    app.config.update(saved)


def test_openai_provider_retries_429_then_500_then_streams(openai_app, student):
    app = openai_app
    with ScriptedOpenAI([429, 500, "stream"], reply="What is the first step to get x alone?") as server:
        app.config.update(AI_PROVIDER="openai", OPENAI_BASE_URL=server.base_url, AI_MODEL="test-model")
        _, reply_id = _ask(student)
        run_jobs(app)
        assert len(server.requests) == 3
        sent = server.requests[-1]
        assert sent["stream"] is True and sent["messages"][0]["role"] == "system"
        assert sent["max_tokens"] == app.config["AI_MAX_TOKENS"]  # every request is capped
        assert sent["messages"][-1] == {"role": "user", "content": "How do I solve 2x + 3 = 7?"}
    with app.app_context():
        reply = db.session.get(Message, reply_id)
        assert reply.status == "done" and reply.attempts == 3
        assert reply.content == "What is the first step to get x alone?"
        assert reply.provider == "openai" and reply.model == "test-model"
        assert reply.prompt_tokens == server.prompt_tokens(sent) and not reply.tokens_estimated
    kinds = [e[1] for e in _events(student.get(f"/api/v1/messages/{reply_id}/stream"))]
    assert kinds[-1] == "done"


def test_openai_bad_key_fails_at_once_with_readable_error(openai_app, student):
    app = openai_app
    with ScriptedOpenAI([401]) as server:
        app.config.update(AI_PROVIDER="openai", OPENAI_BASE_URL=server.base_url)
        _, reply_id = _ask(student)
        run_jobs(app)
        assert len(server.requests) == 1
    reply = student.get(f"/api/v1/messages/{reply_id}").get_json()
    # The student is told what to do; the operator's detail is on the RQ job (rq-dashboard).
    assert reply["status"] == "failed" and "tell your teacher" in reply["error"]
    assert "OPENAI_API_KEY" not in reply["error"]
    events = _events(student.get(f"/api/v1/messages/{reply_id}/stream"))
    assert events[-1][1] == "error" and events[-1][2]["error"] == reply["error"]
    from rq.job import Job

    with app.app_context():
        from foundation.extensions import redis_ext

        assert "API key was refused" in Job.fetch(f"reply-{reply_id}", connection=redis_ext.conn).meta["error"]

    with ScriptedOpenAI([]) as server:  # the retry button works once the service is healthy
        app.config.update(OPENAI_BASE_URL=server.base_url)
        assert student.post(f"/api/v1/messages/{reply_id}/retry").status_code == 202
        run_jobs(app)
    assert student.get(f"/api/v1/messages/{reply_id}").get_json()["status"] == "done"


def test_provider_down_ends_in_failed_reply_not_endless_typing(openai_app, student):
    app = openai_app
    with ScriptedOpenAI([500, 500, 500, 500]) as server:
        app.config.update(AI_PROVIDER="openai", OPENAI_BASE_URL=server.base_url)
        _, reply_id = _ask(student)
        run_jobs(app)
        assert len(server.requests) == 4  # first try + 3 retries
    reply = student.get(f"/api/v1/messages/{reply_id}").get_json()
    assert reply["status"] == "failed" and reply["attempts"] == 4


def test_a_superseded_attempt_cannot_write_to_the_stream(app_ctx):
    """A work horse that outlived its worker must not interleave with the retry's chunks."""
    from foundation.extensions import redis_ext
    from tutor import streams

    redis = redis_ext.conn
    streams.claim(redis, 77, 1)
    streams.append(redis, 77, streams.TOKEN, {"text": "old "}, 1)
    streams.claim(redis, 77, 2)
    with pytest.raises(streams.Superseded):
        streams.append(redis, 77, streams.TOKEN, {"text": "stale"}, 1)
    streams.append(redis, 77, streams.TOKEN, {"text": "new"}, 2)
    assert [e[2]["text"] for e in streams.read(redis, 77, "0-0")] == ["old ", "new"]
