"""After a finished reply, on the ``default`` queue: the hidden solve step and the LLM judge.

``after_reply`` (called by the reply job once the reply is saved) enqueues ``judge_reply``
when a model provider is configured (``AI_PROVIDER=openai``, ``AI_JUDGE`` on). The job

1. asks the model once per new problem for its final answer and stores it on the session
   (``sessions.solved_answer``, never shown to the student);
2. judges the reply again with the rules against that answer (``messages.answer_revealed``);
3. asks the model to rate the reply on the MRBench dimensions and stores the ratings in
   ``reply_judgements`` ("unrated" when the model's answer cannot be read or the call fails).

Its id is derived from the reply (``judge-<id>``), so enqueueing twice runs it once more at
most, and running it twice leaves one row.
"""

from __future__ import annotations

import logging

from flask import current_app
from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert

from foundation.extensions import db
from foundation.queue import enqueue
from tutor.answers import parse_answer
from tutor.guardrail import reveals_answer
from tutor.llm_judge import Rating, latest_problem, rate, solve
from tutor.models import Message, ReplyJudgement, TutoringSession
from tutor.providers import ProviderError, get_provider

log = logging.getLogger(__name__)


def enabled(config) -> bool:  # type: ignore[no-untyped-def]
    return config.get("AI_PROVIDER") == "openai" and bool(config.get("AI_JUDGE", True))


def after_reply(reply_id: int) -> None:
    """Queue the judge of a finished reply, when a model provider is configured."""
    if not enabled(current_app.config):
        return
    try:
        enqueue("jobs.judge.judge_reply", reply_id, job_id=f"judge-{reply_id}", result_ttl=3600)
    except Exception:  # noqa: BLE001 - the reply is saved and sent; a missing judgement must not fail it
        log.warning("reply %s: could not queue its judgement", reply_id, exc_info=True)


def judge_reply(reply_id: int) -> str:
    config = current_app.config
    if not enabled(config):
        return "no model provider"
    reply = db.session.get(Message, reply_id)
    if reply is None or reply.role != "tutor" or reply.status != "done":
        return "not a finished reply"
    session = db.session.get(TutoringSession, reply.session_id)
    assert session is not None
    history = db.session.execute(
        select(Message.id, Message.role, Message.content)
        .where(Message.session_id == reply.session_id, Message.id < reply_id, Message.status == "done")
        .order_by(Message.id)
    ).all()
    content, session_id = reply.content, session.id
    solved_id, solved = session.solved_message_id, session.solved_answer
    db.session.rollback()  # no connection held while the model answers
    provider = get_provider(config)

    problem = latest_problem([(m.id, m.role, m.content) for m in history])
    if problem is not None and problem[0] != solved_id:
        try:
            solved = solve(provider, problem[1])
        except ProviderError as exc:
            log.warning("reply %s: the hidden solve step failed: %s", reply_id, exc)
            solved = None
        else:  # asked once per new problem, whatever the model said
            db.session.execute(
                update(TutoringSession)
                .where(TutoringSession.id == session_id)
                .values(solved_message_id=problem[0], solved_answer=solved)
            )
            db.session.commit()

    turns = [(m.role, m.content) for m in history]
    answer = parse_answer(solved, "solve") if solved else None
    if answer is not None:
        verdict = reveals_answer([c for r, c in turns if r == "student"], content, turns=turns, answers=[answer])
        db.session.execute(update(Message).where(Message.id == reply_id).values(answer_revealed=verdict))
        db.session.commit()

    try:
        rating = rate(provider, turns, content, solved)
    except ProviderError as exc:
        log.warning("reply %s: the judge's call failed: %s", reply_id, exc)
        rating = Rating(False, raw=f"(no answer: {exc})")
    values = {
        "status": "rated" if rating.rated else "unrated",
        "reveals_answer": rating.reveals_answer,
        "identifies_mistake": rating.identifies_mistake,
        "gives_guidance": rating.gives_guidance,
        "actionable": rating.actionable,
        "model": provider.model,
        "raw": rating.raw,
    }
    statement = insert(ReplyJudgement).values(message_id=reply_id, **values)
    db.session.execute(statement.on_conflict_do_update(index_elements=["message_id"], set_=values))
    db.session.commit()
    return values["status"]
