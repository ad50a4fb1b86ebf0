"""The openai provider against servers that behave like llama.cpp and like OpenAI.

llama.cpp answers a streamed prompt longer than its context with 200 and an empty body and
sends no usage; OpenAI answers 400 ``context_length_exceeded`` and sends usage. Both honour
``max_tokens`` with ``finish_reason: "length"``.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from foundation.extensions import db
from tests.conftest import run_jobs
from tests.openai_server import ScriptedOpenAI
from tests.tutor.test_replies import _events
from tutor.models import Message

TABLE = "\n".join(f"| {i} | {i * 37} | {i * 0.5:.1f} | {i % 7} |" for i in range(480))  # ~12,000 characters


@pytest.fixture
def llm(app):
    keys = ("AI_PROVIDER", "OPENAI_BASE_URL", "AI_MODEL", "AI_CONTEXT_WINDOW", "AI_MAX_TOKENS", "MESSAGE_MAX_CHARS")
    saved = {k: app.config[k] for k in keys}

    def use(server: ScriptedOpenAI, **settings) -> None:
        app.config.update(AI_PROVIDER="openai", OPENAI_BASE_URL=server.base_url, AI_MODEL="test-model",
                          MESSAGE_MAX_CHARS=20_000, **settings)  # fmt: skip

    yield use
    app.config.update(saved)


def _session(student) -> str:
    return student.post("/api/v1/sessions", json={"subject": "mathematics"}).get_json()["id"]


def _post(student, sid: str, content: str) -> int:
    response = student.post(f"/api/v1/sessions/{sid}/messages", json={"content": content})
    assert response.status_code == 202, response.get_json()
    return response.get_json()["reply_id"]


def _reply(app, reply_id: int) -> Message:
    with app.app_context():
        reply = db.session.get(Message, reply_id)
        db.session.expunge(reply)
        return reply


def _roles_alternate(messages: list[dict]) -> bool:
    roles = [m["role"] for m in messages[1:]]
    return all(a != b for a, b in zip(roles, roles[1:], strict=False))


@pytest.mark.parametrize("style", ["llamacpp", "openai"])
def test_a_server_with_a_smaller_window_than_configured_never_sticks_the_session(app, student, llm, style):
    """AI_CONTEXT_WINDOW says 32,768, the server holds 1,024: the table overflows (empty 200 or
    400), is tried once more alone, fails with a clear message and no retries; the next short
    message, which the old history would overflow again, is answered."""
    with ScriptedOpenAI(reply="What does each column of your table stand for?", style=style,
                        context_window=1024) as server:  # fmt: skip
        llm(server, AI_CONTEXT_WINDOW=32768, AI_MAX_TOKENS=200)
        sid = _session(student)
        table_reply = _post(student, sid, "Here is my data, what is the mean of column 2?\n" + TABLE)
        run_jobs(app)
        failed = _reply(app, table_reply)
        assert failed.status == "failed" and failed.attempts == 1  # never the same failing request again
        assert "too long" in failed.error and "context" not in failed.error
        assert len(server.requests) == 2  # the whole chat, then the newest message alone
        events = _events(student.get(f"/api/v1/messages/{table_reply}/stream"))
        assert events[-1][1] == "error" and "too long" in events[-1][2]["error"]

        short = _post(student, sid, "ok, how do I find a mean?")
        run_jobs(app)
        answered = _reply(app, short)
        assert answered.status == "done", answered.error
        assert answered.content == "What does each column of your table stand for?"
        assert _roles_alternate(server.requests[-1]["messages"])  # the failed turn left no two user turns


def test_a_message_that_cannot_fit_the_configured_window_is_not_sent(app, student, llm):
    """With the right AI_CONTEXT_WINDOW (4,096) the table is refused before any request."""
    with ScriptedOpenAI(style="llamacpp", context_window=4096) as server:
        llm(server, AI_CONTEXT_WINDOW=4096, AI_MAX_TOKENS=512)
        sid = _session(student)
        table_reply = _post(student, sid, TABLE)
        run_jobs(app)
        assert server.requests == []
        failed = _reply(app, table_reply)
        assert failed.status == "failed" and "too long" in failed.error
        short = _post(student, sid, "what is a mean?")
        run_jobs(app)
        assert _reply(app, short).status == "done"
        sent = server.requests[-1]
        assert sent["max_tokens"] == 512
        assert server.prompt_tokens(sent) + 512 <= 4096


def test_a_reply_cut_at_max_tokens_says_so(app, student, llm):
    with ScriptedOpenAI(reply="one two three four five six seven eight nine ten", style="llamacpp") as server:
        llm(server, AI_MAX_TOKENS=16)
        reply_id = _post(student, _session(student), "explain fractions")
        server.reply = " ".join(["word"] * 40)
        run_jobs(app)
    reply = _reply(app, reply_id)
    assert reply.status == "done" and reply.cut_short
    assert reply.content.endswith("*(cut short)*") and reply.content.startswith("word word")
    streamed = "".join(e[2]["text"] for e in _events(student.get(f"/api/v1/messages/{reply_id}/stream"))
                       if e[1] == "token")  # fmt: skip
    assert streamed == reply.content


@pytest.mark.parametrize("style", ["llamacpp", "openai"])
def test_token_counts_are_never_null_on_a_done_reply(app, student, llm, style):
    with ScriptedOpenAI(reply="Which operation undoes adding 3?", style=style) as server:
        llm(server)
        reply_id = _post(student, _session(student), "solve x + 3 = 10")
        run_jobs(app)
        sent = server.requests[-1]
    reply = _reply(app, reply_id)
    assert reply.status == "done" and reply.prompt_tokens and reply.completion_tokens
    if style == "openai":  # the server's own counts
        assert not reply.tokens_estimated and reply.prompt_tokens == server.prompt_tokens(sent)
    else:  # estimated, and marked as such
        assert reply.tokens_estimated and not reply.cut_short
        assert reply.completion_tokens >= 6


def test_latency_is_what_the_student_waited_across_a_retry(app, student, llm):
    app.config["AI_RETRY_DELAYS"], saved = "0", app.config["AI_RETRY_DELAYS"]
    try:
        with ScriptedOpenAI([500, "stream"], reply="Try subtracting 3 from both sides.") as server:
            server.first_token_delay = 0.3
            llm(server)
            reply_id = _post(student, _session(student), "solve x + 3 = 10")
            run_jobs(app)
    finally:
        app.config["AI_RETRY_DELAYS"] = saved
    reply = _reply(app, reply_id)
    assert reply.status == "done" and reply.attempts == 2
    waited = reply.completed_at - reply.created_at
    assert abs(reply.latency_ms - waited / timedelta(milliseconds=1)) < 50
    # The failed first attempt and the wait for the retry count; the model's own time is beside it.
    assert 300 <= reply.generation_ms < reply.latency_ms
    assert reply.created_at < reply.first_token_at <= reply.completed_at


def test_student_turns_are_merged_after_a_failed_reply(app, student, llm):
    with ScriptedOpenAI([401], reply="Let's look at it together.") as server:
        llm(server)
        sid = _session(student)
        _post(student, sid, "solve 2x = 8")
        run_jobs(app)  # 401: failed, not retried
        _post(student, sid, "hello? solve 2x = 8")
        run_jobs(app)
        sent = server.requests[-1]["messages"]
    assert [m["role"] for m in sent] == ["system", "user"]
    assert sent[1]["content"] == "solve 2x = 8\n\nhello? solve 2x = 8"
