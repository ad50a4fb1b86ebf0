"""The hidden solve step and the LLM judge, against the suite's OpenAI-compatible server."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from foundation.extensions import db
from jobs.judge import judge_reply
from tests.conftest import run_jobs
from tests.openai_server import ScriptedOpenAI
from tutor.llm_judge import JUDGE_PROMPT, SOLVE_PROMPT, parse_rating, parse_solution, rate, solve
from tutor.models import Message, ReplyJudgement, TutoringSession
from tutor.providers import get_provider

PROBLEM = "Tom walks 400 steps a day for 5 days. How many steps does he take in all?"
RATED = {"reveals_answer": "yes", "identifies_mistake": "no", "gives_guidance": "to some extent", "actionable": "No"}


class RolePlayingServer(ScriptedOpenAI):
    """Answers as the tutor, the solver or the judge, by the request's system prompt."""

    def __init__(self, tutor: str, solver: str = "ANSWER: 2,000", judge: str = json.dumps(RATED)) -> None:
        super().__init__(reply=tutor)
        self.by_prompt = {SOLVE_PROMPT: solver, JUDGE_PROMPT: judge}

    @property
    def reply(self) -> str:
        system = self.requests[-1]["messages"][0]["content"] if self.requests else ""
        return self.by_prompt.get(system, self._tutor)

    @reply.setter
    def reply(self, value: str) -> None:
        self._tutor = value

    def asked(self, prompt: str) -> list[dict]:
        return [r for r in self.requests if r["messages"][0]["content"] == prompt]


@pytest.mark.parametrize(
    ("text", "rated"),
    [
        (json.dumps(RATED), True),
        ("Here is my rating:\n```json\n" + json.dumps(RATED) + "\n```", True),
        ("The reply reveals the answer.", False),
        ('{"reveals_answer": "yes"}', False),  # dimensions missing
        (json.dumps({**RATED, "actionable": "maybe"}), False),
        ('{"reveals_answer": "yes", ', False),
        ("[1, 2]", False),
    ],
)
def test_malformed_judge_answers_are_unrated(text, rated):
    rating = parse_rating(text)
    assert rating.rated is rated
    if rated:
        assert (rating.reveals_answer, rating.identifies_mistake, rating.gives_guidance, rating.actionable) == (
            True, 0, 1, 0,
        )  # fmt: skip
    else:
        assert rating.reveals_answer is None and rating.actionable is None and rating.raw == text


def test_solution_parsing():
    assert parse_solution("ANSWER: 2,000") == "2,000"
    assert parse_solution("Let me think.\n**ANSWER:** 7/8.") == "7/8"
    assert parse_solution("2000") is None


def test_prompts_as_sent(app):
    with RolePlayingServer("unused") as server, app.app_context():
        provider = get_provider({**app.config, "AI_PROVIDER": "openai", "OPENAI_BASE_URL": server.base_url})
        assert solve(provider, PROBLEM) == "2,000"
        rating = rate(provider, [("student", PROBLEM), ("tutor", "What do you add?")], "He took 2,000 steps.", "2000")
    assert rating.rated and rating.reveals_answer is True
    (solve_request,) = server.asked(SOLVE_PROMPT)
    assert solve_request["messages"][1] == {"role": "user", "content": PROBLEM}
    (judge_request,) = server.asked(JUDGE_PROMPT)
    user = judge_request["messages"][1]["content"]
    assert "hidden from the student): 2000" in user and "Student: " + PROBLEM in user
    assert user.endswith("Tutor reply to rate:\nHe took 2,000 steps.")


@pytest.fixture
def judged_app(app):
    saved = {k: app.config[k] for k in ("AI_PROVIDER", "OPENAI_BASE_URL", "AI_JUDGE")}
    yield app
    app.config.update(saved)


def _say(student, sid, text):
    return student.post(f"/api/v1/sessions/{sid}/messages", json={"content": text}).get_json()["reply_id"]


def test_after_each_reply_the_answer_is_solved_once_and_the_reply_judged(judged_app, student):
    app = judged_app
    with RolePlayingServer("He took 2,000 steps in all.") as server:
        app.config.update(AI_PROVIDER="openai", OPENAI_BASE_URL=server.base_url, AI_JUDGE=True)
        sid = student.post("/api/v1/sessions", json={"subject": "mathematics"}).get_json()["id"]
        first = _say(student, sid, PROBLEM)
        run_jobs(app)
        second = _say(student, sid, "I don't get it")
        run_jobs(app)
        assert len(server.asked(SOLVE_PROMPT)) == 1  # once per new problem
        assert len(server.asked(JUDGE_PROMPT)) == 2  # once per reply
    with app.app_context():
        session = db.session.get(TutoringSession, sid)
        assert session.solved_answer == "2,000"
        replies = db.session.scalars(select(Message).where(Message.id.in_([first, second])).order_by(Message.id)).all()
        # judged against the hidden answer (the student's prose is no problem sympy parses); the
        # second reply repeats a number the tutor already wrote, which alone is no new give-away
        assert [r.answer_revealed for r in replies] == [True, False]
        rows = db.session.scalars(select(ReplyJudgement).order_by(ReplyJudgement.message_id)).all()
        assert [(r.message_id, r.status, r.reveals_answer, r.gives_guidance) for r in rows] == [
            (first, "rated", True, 1),
            (second, "rated", True, 1),
        ]
    # never shown to the student: not in what the API gives them
    shown = student.get(f"/api/v1/sessions/{sid}")
    assert shown.status_code == 200 and "solved" not in shown.get_data(as_text=True)


def test_a_malformed_judge_answer_is_stored_unrated(judged_app, student):
    app = judged_app
    with RolePlayingServer("What do you add each day?", judge="I think it is fine!") as server:
        app.config.update(AI_PROVIDER="openai", OPENAI_BASE_URL=server.base_url, AI_JUDGE=False)
        sid = student.post("/api/v1/sessions", json={"subject": "mathematics"}).get_json()["id"]
        reply_id = _say(student, sid, PROBLEM)
        run_jobs(app)  # the judge is off: nothing queued
        assert server.asked(JUDGE_PROMPT) == []
        app.config.update(AI_JUDGE=True)
        with app.app_context():
            assert judge_reply(reply_id) == "unrated"
            assert judge_reply(reply_id) == "unrated"  # twice: still one row
            row = db.session.get(ReplyJudgement, reply_id)
            assert row.status == "unrated" and row.raw == "I think it is fine!" and row.reveals_answer is None
            assert db.session.get(Message, reply_id).answer_revealed is False


def test_without_a_model_provider_nothing_is_judged(app, student):
    sid = student.post("/api/v1/sessions", json={"subject": "mathematics"}).get_json()["id"]
    reply_id = _say(student, sid, PROBLEM)
    run_jobs(app)
    with app.app_context():
        assert judge_reply(reply_id) == "no model provider"
        assert db.session.get(ReplyJudgement, reply_id) is None


def test_a_judgement_that_cannot_be_queued_does_not_fail_the_reply(judged_app, student, monkeypatch):
    """The reply is saved and sent before its judgement is queued: if the queue refuses, the
    reply job still ends done (no retry, no second reply)."""
    import jobs.judge

    app = judged_app

    def refuse(*args, **kwargs):
        raise ConnectionError("Redis went away")

    with RolePlayingServer("What do you add each day?") as server:
        app.config.update(AI_PROVIDER="openai", OPENAI_BASE_URL=server.base_url, AI_JUDGE=True)
        sid = student.post("/api/v1/sessions", json={"subject": "mathematics"}).get_json()["id"]
        reply_id = _say(student, sid, PROBLEM)
        monkeypatch.setattr(jobs.judge, "enqueue", refuse)
        run_jobs(app)
    with app.app_context():
        from tutor.replies import reply_job_status

        reply = db.session.get(Message, reply_id)
        assert reply.status == "done" and reply.attempts == 1
        from rq.job import Job

        from foundation.extensions import redis_ext
        from tutor.replies import reply_job_id, retry_policy

        assert reply_job_status(reply_id) == "finished"
        job = Job.fetch(reply_job_id(reply_id), connection=redis_ext.conn)
        assert job.retries_left == retry_policy().max  # it never failed (a failure spends a retry)
        assert db.session.get(ReplyJudgement, reply_id) is None
