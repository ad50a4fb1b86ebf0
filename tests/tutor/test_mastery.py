"""Graded attempts and mastery: answers in the chat become attempts, BKT moves mastery,
GET /api/v1/progress reports it (the issue's done-when checks)."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import func, select

from foundation.extensions import db
from jobs.ai import process_ai_response
from tests.conftest import make_student
from tutor.grading import Grade, Question, find_asked_question
from tutor.mastery import BKT, DEFAULT, grade_answer, record_attempt, record_chat_answer
from tutor.models import Attempt, Message

EQUATIONS = [  # five different linear equations and their solutions
    ("Solve 2x + 3 = 7", "2"),
    ("Solve 3x - 4 = 11", "5"),
    ("How do I solve 5x + 1 = 21?", "4"),
    ("Solve 4x + 6 = 30", "6"),
    ("Solve 7x - 2 = 19", "3"),
]


def _say(app, student, sid: str, content: str) -> None:
    reply_id = student.post(f"/api/v1/sessions/{sid}/messages", json={"content": content}).get_json()["reply_id"]
    with app.app_context():
        assert process_ai_response(reply_id) == "done"


def _topic(student, topic="linear equations") -> dict | None:
    response = student.get("/api/v1/progress")
    assert response.status_code == 200
    return next((t for t in response.get_json()["topics"] if t["topic"] == topic), None)


def _maths_session(student) -> str:
    return student.post("/api/v1/sessions", json={"subject": "mathematics"}).get_json()["id"]


def test_five_linear_equations_right_give_mastery_of_at_least_0_8(app, student):
    sid = _maths_session(student)
    assert student.get("/api/v1/progress").get_json() == {"topics": []}
    seen = []
    for problem, solution in EQUATIONS:
        _say(app, student, sid, problem)
        _say(app, student, sid, f"I got x = {solution}")
        seen.append(_topic(student)["mastery"])
    topic = _topic(student)
    assert topic["subject"] == "mathematics" and topic["name"] == "Linear equations"
    assert topic["attempts"] == 5 and topic["correct"] == 5
    assert topic["mastery"] >= 0.8
    assert seen == sorted(seen)  # it rises with every right answer, visible after each one
    assert topic["last_attempt"] is not None


def test_five_linear_equations_wrong_give_mastery_of_at_most_0_4(app, student):
    sid = _maths_session(student)
    for problem, solution in EQUATIONS:
        _say(app, student, sid, problem)
        _say(app, student, sid, f"x = {int(solution) + 1}")
    topic = _topic(student)
    assert (topic["attempts"], topic["correct"]) == (5, 0)
    assert topic["mastery"] <= 0.4


def test_the_same_problem_answered_twice_counts_once(app, student):
    sid = _maths_session(student)
    _say(app, student, sid, "Solve 2x + 3 = 7")
    _say(app, student, sid, "is it x = 5?")  # wrong first
    _say(app, student, sid, "oh, x = 2")  # right on the second go: the first answer stands
    topic = _topic(student)
    assert (topic["attempts"], topic["correct"]) == (1, 0)
    with app.app_context():
        (attempt,) = db.session.scalars(select(Attempt)).all()
        assert attempt.source == "problem" and attempt.graded_by == "sympy" and attempt.provider == "builtin"
        assert attempt.item == "2x + 3 = 7" and attempt.hints_seen == 1 and attempt.answer == "is it x = 5?"


def test_messages_that_answer_nothing_are_not_attempts(app, student):
    sid = _maths_session(student)
    _say(app, student, sid, "What are fractions?")
    _say(app, student, sid, "Solve 2x + 3 = 7")
    _say(app, student, sid, "I don't get it, what do I do first?")
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Attempt)) == 0


def test_a_check_question_the_tutor_asked_is_graded_whatever_the_provider(app, student):
    sid = _maths_session(student)
    _say(app, student, sid, "hello")  # a reply to hang the turns on
    with app.app_context():
        reply_id = db.session.scalar(select(func.max(Message.id)).where(Message.role == "tutor"))
        asked = "Good. Now try one yourself: **Solve 5x - 4 = 2x + 11.** What do you get?"
        recorded = record_chat_answer(reply_id, "mathematics", [("tutor", asked), ("student", "x = 5")], None)
        assert recorded is not None and recorded.counted and recorded.correct == 1
        generated = "Here is another: **What is 30% of 120?**"
        recorded = record_chat_answer(reply_id, "mathematics", [("tutor", generated), ("student", "40")], None)
        assert recorded is not None and recorded.counted is True
        # A question back is not an answer; a new problem is not an answer either.
        assert (
            record_chat_answer(reply_id, "mathematics", [("tutor", generated), ("student", "what is a percent?")], None)
            is None
        )
        assert (
            record_chat_answer(reply_id, "mathematics", [("tutor", generated), ("student", "solve 3x = 9")], None)
            is None
        )
        rows = {a.item: (a.topic, a.correct, a.source) for a in db.session.scalars(select(Attempt))}
    assert rows == {
        "Solve 5x - 4 = 2x + 11.": ("linear equations", True, "check"),
        "What is 30% of 120?": ("percentages", False, "check"),
    }


def test_english_check_question_is_graded_as_text(app, student):
    with app.app_context():
        english = student.post("/api/v1/sessions", json={"subject": "english"}).get_json()["id"]
        msg = Message(session_id=uuid.UUID(english), role="tutor", content="", status="done")
        db.session.add(msg)
        db.session.commit()
        asked = "Which device is 'as brave as a lion'? Tell me what you think."
        recorded = record_chat_answer(msg.id, "english", [("tutor", asked), ("student", "I think it's a simile")], None)
        assert recorded.counted and recorded.correct == 1
        attempt = db.session.scalars(select(Attempt)).one()
        assert (attempt.subject, attempt.topic, attempt.graded_by) == ("english", "figurative language", "text")


class _Model:
    """A provider that grades: streams a fixed verdict."""

    name = "openai"
    model = "fake"

    def __init__(self, verdict: str) -> None:
        self.verdict, self.calls = verdict, 0

    def stream(self, messages, usage, context):
        self.calls += 1
        assert "Expected answer: simile" in messages[-1]["content"]
        yield self.verdict


def test_a_model_grades_free_text_the_rules_reject_and_its_words_are_kept():
    question = Question("english", "figurative language", "Which device is 'as brave as a lion'?", "simile")
    model = _Model("CORRECT - a comparison using 'as', so a simile.")
    result = grade_answer(question, "a smilie (comparison with as)", model)
    assert result == Grade(True, "model", "CORRECT - a comparison using 'as', so a simile.")
    assert grade_answer(question, "a metaphor", _Model("INCORRECT: that is a simile.")).correct is False
    # Rules that accept need no model; nor does the builtin tutor; a non-verdict keeps the rules' grade.
    assert grade_answer(question, "simile", model).graded_by == "text" and model.calls == 1
    assert grade_answer(question, "a smilie", _Model("Hmm, maybe.")) == Grade(False, "text")
    builtin = _Model("CORRECT")
    builtin.name = "builtin"
    assert grade_answer(question, "a smilie", builtin) == Grade(False, "text") and builtin.calls == 0


def test_bkt_update_follows_the_formulas():
    bkt = BKT(p_init=0.3, p_learn=0.15, p_guess=0.2, p_slip=0.1)
    right = 0.3 * 0.9 / (0.3 * 0.9 + 0.7 * 0.2)
    assert bkt.update(0.3, True) == pytest.approx(right + (1 - right) * 0.15)
    wrong = 0.3 * 0.1 / (0.3 * 0.1 + 0.7 * 0.8)
    assert bkt.update(0.3, False) == pytest.approx(wrong + (1 - wrong) * 0.15)
    assert DEFAULT.trace([True] * 5) >= 0.8 and DEFAULT.trace([False] * 5) <= 0.4


def test_record_attempt_is_first_answer_only_and_concurrency_safe(app, student):
    with app.app_context():
        first = record_attempt(student.id, "mathematics", "fractions", "Simplify 6/8.", "3/4", Grade(True, "sympy"),
                               source="quiz")  # fmt: skip
        again = record_attempt(student.id, "mathematics", "fractions", "Simplify  6/8.", "2/3", Grade(False, "sympy"),
                               source="quiz")  # fmt: skip
        assert first.counted and not again.counted
        assert again.mastery == first.mastery and (again.attempts, again.correct) == (1, 1)


def test_progress_needs_a_student(app, client):
    assert client.get("/api/v1/progress").status_code == 401
    from tutor.users import create_user

    with app.app_context():
        create_user("boss@school.org", "learning123", role="admin")
        db.session.commit()
    admin = client.post("/api/v1/auth/login", json={"email": "boss@school.org", "password": "learning123"})
    assert admin.status_code == 200
    assert client.get("/api/v1/progress").status_code == 403


def test_progress_is_per_student(app, student):
    other = make_student(app, email="other@school.org")
    sid = _maths_session(student)
    _say(app, student, sid, "Solve 2x + 3 = 7")
    _say(app, student, sid, "x = 2")
    assert _topic(student)["attempts"] == 1
    assert other.get("/api/v1/progress").get_json() == {"topics": []}


def test_the_builtin_tutors_check_question_is_graded_as_it_is_recorded(app, student):
    """Source (b): the builtin tutor asks a check question after explaining; its verdict and the
    stored attempt come from the same grading."""
    sid = student.post("/api/v1/sessions", json={"subject": "english"}).get_json()["id"]
    _say(app, student, sid, "What is a simile?")
    with app.app_context():
        asked = db.session.scalars(select(Message.content).where(Message.role == "tutor")).all()[-1]
    question = find_asked_question("english", asked)
    assert question is not None, asked
    _say(app, student, sid, f"I think it's a {question.answer}")
    with app.app_context():
        reply = db.session.scalars(select(Message.content).where(Message.role == "tutor").order_by(Message.id)).all()[
            -1
        ]
        attempt = db.session.scalars(select(Attempt)).one()
    assert (attempt.source, attempt.item, attempt.correct) == ("check", question.text, True)
    assert reply.startswith("Yes, that's right")
