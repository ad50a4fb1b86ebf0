"""Mastery per student and topic: Bayesian Knowledge Tracing over graded attempts.

Each topic has four parameters: P(L0) that a student knows it before the first attempt,
P(T) that an attempt teaches it, P(G) that a student who does not know it answers right
anyway, P(S) that one who knows it slips. After every attempt the student's P(known) for
the topic is updated at once (Bayes on the answer, then the chance of learning from it),
so the progress page moves as they work. The nightly refit (``analytics.knowledge``) fits
the parameters by EM from every attempt and recomputes each student's P(known) with them;
until a topic has enough attempts the defaults below are used. Definitions for readers of
the dashboard: ``docs/ANALYTICS.md``.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text

from foundation.extensions import db

from .curriculum import get_curriculum
from .grading import Grade, Question, clip_item, find_asked_question, grade, grade_with_model
from .guardrail import active_problem
from .models import BktParams
from .problems import check, find_problem, find_proposal, find_proposal_with_text

log = logging.getLogger(__name__)

MASTERED = 0.8  # P(known) from which a topic counts as mastered (the bars turn green)


@dataclass(frozen=True)
class BKT:
    """One topic's parameters; the defaults are typical published values for school maths."""

    p_init: float = 0.3
    p_learn: float = 0.15
    p_guess: float = 0.2
    p_slip: float = 0.1

    def update(self, p_known: float, correct: bool) -> float:
        """P(known) before an attempt -> P(known) after it (evidence, then learning)."""
        if correct:
            seen = p_known * (1 - self.p_slip)
            posterior = seen / (seen + (1 - p_known) * self.p_guess)
        else:
            seen = p_known * self.p_slip
            posterior = seen / (seen + (1 - p_known) * (1 - self.p_guess))
        return posterior + (1 - posterior) * self.p_learn

    def trace(self, answers: list[bool]) -> float:
        p = self.p_init
        for correct in answers:
            p = self.update(p, correct)
        return p


DEFAULT = BKT()


def params_for(subject: str, topic: str) -> BKT:
    row = db.session.get(BktParams, (subject, topic))
    if row is None:
        return DEFAULT
    return BKT(row.p_init, row.p_learn, row.p_guess, row.p_slip)


# ----------------------------------------------------------------------------- recording


@dataclass(frozen=True)
class Recorded:
    counted: bool  # False: this item was answered before, the first answer stands
    mastery: float | None  # the topic's P(known) now (None if never attempted)
    attempts: int
    correct: int


def record_attempt(
    student_id: int,
    subject: str,
    topic: str,
    item: str,
    answer: str,
    result: Grade,
    *,
    source: str,
    hints_seen: int = 0,
    provider: str | None = None,
    session_id: uuid.UUID | None = None,
) -> Recorded:
    """Store one graded answer and move the topic's mastery, in one transaction (committed).

    The same item (problem or question) answered again is not stored: the first answer is
    the evidence, and a student cannot raise their mastery by repeating a question they
    have just been told the answer to.
    """
    inserted = db.session.execute(
        text(
            """
            INSERT INTO attempts (student_id, session_id, subject, topic, item, answer, correct, hints_seen,
                                  source, graded_by, provider, verdict)
            VALUES (:student, :session, :subject, :topic, :item, :answer, :correct, :hints,
                    :source, :graded_by, :provider, :verdict)
            ON CONFLICT ON CONSTRAINT uq_attempts_student_item DO NOTHING
            RETURNING created_at
            """
        ),
        {
            "student": student_id,
            "session": session_id,
            "subject": subject,
            "topic": topic,
            "item": clip_item(item),
            "answer": answer[:2000],
            "correct": result.correct,
            "hints": min(hints_seen, 100),
            "source": source,
            "graded_by": result.graded_by,
            "provider": provider,
            "verdict": result.verdict,
        },
    ).scalar_one_or_none()
    key = {"student": student_id, "subject": subject, "topic": topic}
    if inserted is None:
        row = db.session.execute(
            text("SELECT p_known, attempts, correct FROM mastery WHERE student_id = :student "
                 "AND subject = :subject AND topic = :topic"),
            key,
        ).one_or_none()  # fmt: skip
        db.session.commit()
        return Recorded(False, row.p_known if row else None, row.attempts if row else 0, row.correct if row else 0)
    params = params_for(subject, topic)
    db.session.execute(
        text(
            "INSERT INTO mastery (student_id, subject, topic, p_known, attempts, correct) "
            "VALUES (:student, :subject, :topic, :p, 0, 0) ON CONFLICT DO NOTHING"
        ),
        {**key, "p": params.p_init},
    )
    # The row lock orders concurrent attempts of one student on one topic.
    before = db.session.execute(
        text("SELECT p_known FROM mastery WHERE student_id = :student AND subject = :subject AND topic = :topic "
             "FOR UPDATE"),
        key,
    ).scalar_one()  # fmt: skip
    row = db.session.execute(
        text(
            """
            UPDATE mastery SET p_known = :p, attempts = attempts + 1, correct = correct + :c,
                last_attempt = GREATEST(last_attempt, :at)
            WHERE student_id = :student AND subject = :subject AND topic = :topic
            RETURNING p_known, attempts, correct
            """
        ),
        {**key, "p": params.update(before, result.correct), "c": int(result.correct), "at": inserted},
    ).one()
    db.session.commit()
    return Recorded(True, row.p_known, row.attempts, row.correct)


# ----------------------------------------------------------------------------- reading


def progress(student_id: int) -> list[dict[str, Any]]:
    """The student's topics with at least one attempt, in curriculum order (the API's shape)."""
    rows = db.session.execute(
        text(
            "SELECT subject, topic, p_known, attempts, correct, last_attempt FROM mastery "
            "WHERE student_id = :s AND attempts > 0"
        ),
        {"s": student_id},
    ).all()
    order = _curriculum_order()
    out = []
    for r in sorted(rows, key=lambda r: (order.get((r.subject, r.topic), (len(order), 0)), r.subject, r.topic)):
        topic = get_curriculum().topic(r.subject, r.topic)
        out.append(
            {
                "subject": r.subject,
                "topic": r.topic,
                "name": topic.name if topic else r.topic.capitalize(),
                "mastery": round(float(r.p_known), 4),
                "attempts": r.attempts,
                "correct": r.correct,
                "last_attempt": _iso(r.last_attempt),
            }
        )
    return out


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _curriculum_order() -> dict[tuple[str, str], tuple[int, int]]:
    return {
        (s.id, t.id): (i, j) for i, s in enumerate(get_curriculum().subjects.values()) for j, t in enumerate(s.topics)
    }


def practise_next(topics: list[dict[str, Any]]) -> dict[str, str] | None:
    """What to practise next: the started topic with the lowest mastery while one is below
    ``MASTERED``; once all are mastered, the next topic not started yet, in teaching order
    after the topic practised last; None before any attempt (or when nothing is left)."""
    if not topics:
        return None
    open_topics = [t for t in topics if t["mastery"] < MASTERED]
    if open_topics:
        weakest = min(open_topics, key=lambda t: (t["mastery"], t["attempts"]))
        return {"subject": weakest["subject"], "topic": weakest["topic"], "name": weakest["name"],
                "reason": "lowest mastery"}  # fmt: skip
    latest = max(topics, key=lambda t: t["last_attempt"] or "")
    subject = get_curriculum().subject(latest["subject"])
    if subject is None:
        return None
    started = {t["topic"] for t in topics if t["subject"] == subject.id}
    order = [t.id for t in subject.topics]
    at = order.index(latest["topic"]) + 1 if latest["topic"] in order else 0
    for topic_id in order[at:] + order[:at]:  # the topics after the last one practised first
        if topic_id not in started:
            topic = subject.topic(topic_id)
            return {"subject": subject.id, "topic": topic_id, "name": topic.name, "reason": "next topic"}  # type: ignore[union-attr]
    return None


def answered_items(student_id: int, subject: str, topic: str) -> set[str]:
    return set(
        db.session.scalars(
            text("SELECT item FROM attempts WHERE student_id = :s AND subject = :su AND topic = :t"),
            {"s": student_id, "su": subject, "t": topic},
        )
    )


# ----------------------------------------------------------------------------- chat answers


def record_chat_answer(reply_id: int, subject: str, turns: list[tuple[str, str]], provider: Any) -> Recorded | None:
    """Grade the student's newest message when it answers something checkable (called by the
    reply job once the reply is saved; never raises, grading must not cost a reply).

    ``turns`` is the conversation up to that message, as ``(role, content)``. A check
    question the tutor just asked (curriculum or generated) is graded first; otherwise, in
    mathematics, a value proposed for the problem the student brought (sympy).
    """
    try:
        return _record_chat_answer(reply_id, subject, turns, provider)
    except Exception:  # noqa: BLE001
        db.session.rollback()
        log.exception("reply %s: could not record the student's answer", reply_id)
        return None


def _record_chat_answer(reply_id: int, subject: str, turns: list[tuple[str, str]], provider: Any) -> Recorded | None:
    if not turns or turns[-1][0] != "student":
        return None
    answer = turns[-1][1]
    if len(answer.split()) > 40:
        return None  # a paragraph is a new question or an explanation, not an answer
    owner = db.session.execute(
        text("SELECT s.id, s.student_id FROM messages m JOIN sessions s ON s.id = m.session_id WHERE m.id = :r"),
        {"r": reply_id},
    ).one_or_none()
    if owner is None:
        return None
    session_id, student_id = owner
    if subject == "mathematics" and find_problem(answer) is not None:
        return None  # the message brings a new problem: it answers nothing
    name = getattr(provider, "name", None)
    last_tutor = next((content for role, content in reversed(turns[:-1]) if role == "tutor"), None)
    asked = find_asked_question(subject, last_tutor) if last_tutor else None
    if asked is not None:
        result = grade_answer(asked, answer, provider)
        if not result.correct and answer.rstrip().endswith("?") and find_proposal_with_text(answer) is None:
            return None  # a question back ("what is a verb?") rather than an answer
        return record_attempt(student_id, asked.subject, asked.topic, asked.text, answer, result,
                              source="check", provider=name, session_id=session_id)  # fmt: skip
    if subject != "mathematics":
        return None
    students = [content for role, content in turns if role == "student"]
    found = active_problem(students)
    if found is None:
        return None
    problem, index = found
    proposal = find_proposal(answer)
    if proposal is None:
        return None
    hints = len(students) - 1 - index  # each reply since the problem gave a hint
    result = Grade(check(problem, proposal).correct, "sympy")
    return record_attempt(student_id, subject, problem.topic, problem.display, answer, result,
                          source="problem", hints_seen=hints, provider=name, session_id=session_id)  # fmt: skip


def grade_answer(question: Question, answer: str, provider: Any = None) -> Grade:
    """Rules first; a free-text answer the rules reject goes to the model, when a model is
    the tutor (``provider`` other than the builtin one) and it gives a verdict."""
    result = grade(question.answer, answer, maths=question.maths)
    if result.correct or result.graded_by == "sympy" or provider is None or getattr(provider, "name", "") == "builtin":
        return result
    return grade_with_model(provider, question, answer) or result
