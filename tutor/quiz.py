""" "Quiz me": five questions on one topic, graded at once, each answer an attempt.

A quiz is stateless: its questions travel in a signed token (the page's hidden field, the
API's ``quiz``), and each expected answer is looked up again from the question's text when
the answers come back (``grading.answer_for``), so the answers never reach the browser
before the student has answered and no quiz needs a row or a Redis key.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from flask import current_app
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from .curriculum import get_curriculum
from .grading import answer_for, grade, quiz_questions
from .mastery import answered_items, progress, record_attempt

QUIZ_SIZE = 5
QUIZ_MAX_AGE_S = 6 * 3600
MAX_ANSWER_CHARS = 500


class QuizError(Exception):
    """Something the student can put right: ``code`` for the API, the message for people."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code, self.status = code, status


@dataclass(frozen=True)
class Quiz:
    token: str
    subject: str
    topic: str
    name: str
    questions: list[str]

    def json(self) -> dict[str, Any]:
        return {
            "quiz": self.token,
            "subject": self.subject,
            "topic": self.topic,
            "name": self.name,
            "questions": [{"index": i, "question": q} for i, q in enumerate(self.questions)],
        }


def _signer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.secret_key, salt="quiz")


def start_quiz(student_id: int, subject: str, topic: str) -> Quiz:
    found = get_curriculum().topic(subject, topic) if isinstance(subject, str) and isinstance(topic, str) else None
    if found is None:
        raise QuizError("unknown_topic", "Choose a topic of the curriculum (GET /api/v1/subjects lists them).")
    subject_id = get_curriculum().subject(subject).id  # type: ignore[union-attr]
    questions = quiz_questions(subject_id, found.id, answered_items(student_id, subject_id, found.id), random.Random())
    if not questions:
        raise QuizError(
            "quiz_exhausted",
            f"You have answered every question on {found.name} we can check; try another topic or ask the tutor.",
            status=409,
        )
    texts = [q.text for q in questions[:QUIZ_SIZE]]
    token = _signer().dumps({"u": student_id, "s": subject_id, "t": found.id, "q": texts})
    return Quiz(token, subject_id, found.id, found.name, texts)


def read_quiz(student_id: int, token: Any) -> Quiz:
    try:
        data = _signer().loads(str(token), max_age=QUIZ_MAX_AGE_S)
    except SignatureExpired:
        raise QuizError("quiz_expired", "This quiz has expired; start a new one.") from None
    except BadSignature:
        raise QuizError("bad_quiz", "This is not a quiz we gave you; start a new one.") from None
    if not isinstance(data, dict) or data.get("u") != student_id:
        raise QuizError("bad_quiz", "This is not a quiz we gave you; start a new one.")
    topic = get_curriculum().topic(data["s"], data["t"])
    return Quiz(str(token), data["s"], data["t"], topic.name if topic else data["t"], list(data["q"]))


def mark_quiz(student_id: int, token: Any, answers: Any) -> dict[str, Any]:
    """Grade the answers (a list, one per question; blank ones are skipped) and record each as
    an attempt. Returns the results and the topic's progress before and after."""
    quiz = read_quiz(student_id, token)
    if not isinstance(answers, list) or len(answers) != len(quiz.questions):
        raise QuizError("bad_request", f"Send answers as a list of {len(quiz.questions)} strings (blank to skip).")
    if not all(isinstance(a, str | None) for a in answers):
        raise QuizError("bad_request", "Each answer must be a string (or null to skip).")
    before = _topic_progress(student_id, quiz)
    results = []
    for text, answer in zip(quiz.questions, answers, strict=True):
        question = answer_for(quiz.subject, quiz.topic, text)
        said = (answer or "").strip()[:MAX_ANSWER_CHARS]
        if question is None or not said:
            results.append({"question": text, "answer": said, "correct": None, "expected": None, "counted": False})
            continue
        result = grade(question.answer, said, maths=question.maths)
        recorded = record_attempt(student_id, quiz.subject, quiz.topic, text, said, result, source="quiz")
        results.append(
            {
                "question": text,
                "answer": said,
                "correct": result.correct,
                "expected": question.answer,
                "counted": recorded.counted,
            }
        )
    return {
        "subject": quiz.subject,
        "topic": quiz.topic,
        "name": quiz.name,
        "results": results,
        "mastery_before": before["mastery"] if before else None,
        "progress": _topic_progress(student_id, quiz),
    }


def _topic_progress(student_id: int, quiz: Quiz) -> dict[str, Any] | None:
    return next((t for t in progress(student_id) if (t["subject"], t["topic"]) == (quiz.subject, quiz.topic)), None)
