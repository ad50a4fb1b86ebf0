"""Tutor replies: ``process_ai_response(reply_id)`` runs on the ``ai`` queue.

The reply row is claimed with one UPDATE, the provider's chunks go to a Redis Stream as they
arrive, and the final content is saved with a guarded UPDATE, so the job can run twice, or
be killed mid-reply and run again, and still leave exactly one complete reply.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from flask import current_app
from rq import get_current_job
from sqlalchemy import select, text

from foundation import metrics
from foundation.extensions import db, redis_ext
from jobs import judge
from tutor import streams
from tutor.guardrail import reveals_answer
from tutor.mastery import record_chat_answer
from tutor.models import Message, TutoringSession, User
from tutor.prompting import Grounding, MessageTooLong, build_messages, prompt_budget
from tutor.providers import (
    MESSAGE_OVERHEAD_TOKENS,
    ContextOverflow,
    ProviderError,
    ReplyContext,
    Usage,
    estimate_tokens,
    get_provider,
)

log = logging.getLogger(__name__)


def process_ai_response(reply_id: int) -> str:
    """Generate, stream and save one tutor reply. Returns the final status."""
    claimed = db.session.execute(
        text(
            """
            UPDATE messages SET status = 'streaming', attempts = attempts + 1, error = NULL
            WHERE id = :id AND role = 'tutor' AND status IN ('queued', 'streaming')
            RETURNING attempts
            """
        ),
        {"id": reply_id},
    ).scalar_one_or_none()
    db.session.commit()
    if claimed is None:
        status = db.session.scalar(select(Message.status).where(Message.id == reply_id))
        log.info("reply %s not claimable (status %s); nothing to do", reply_id, status)
        return status or "missing"
    attempt = int(claimed)
    redis = redis_ext.conn
    streams.claim(redis, reply_id, attempt)
    try:
        return _generate(reply_id, attempt)
    except streams.Superseded:
        log.warning("reply %s attempt %s was superseded by a newer attempt; stopping", reply_id, attempt)
        return "superseded"


def _generate(reply_id: int, attempt: int) -> str:
    redis = redis_ext.conn
    if attempt > 1 or streams.has_events(redis, reply_id):
        streams.append(redis, reply_id, streams.RESET, {"attempt": attempt}, attempt)

    reply = db.session.get(Message, reply_id)
    assert reply is not None
    subject, grade_level = db.session.execute(
        select(TutoringSession.subject, User.grade_level)
        .join(User, User.id == TutoringSession.student_id)
        .where(TutoringSession.id == reply.session_id)
    ).one()
    history = db.session.execute(
        select(Message.role, Message.content)
        .where(Message.session_id == reply.session_id, Message.id < reply_id, Message.status == "done")
        .order_by(Message.id)
    ).all()
    asked_at = reply.created_at
    turns = [(r.role, r.content) for r in history]
    student_messages = [r.content for r in history if r.role == "student"]
    config = current_app.config
    budget = prompt_budget(int(config.get("AI_CONTEXT_WINDOW", 8192)), int(config.get("AI_MAX_TOKENS", 800)))
    grounding = _grounding(subject, student_messages[-1] if student_messages else "")
    # The connection goes back to the pool while the model answers: a worker streams many
    # replies at once with a handful of connections.
    db.session.rollback()
    provider = get_provider(config)
    context = ReplyContext(subject=subject)
    try:
        chat = build_messages(subject, turns, budget, grade_level=grade_level, grounding=grounding)
        try:
            result = _stream(provider, chat, reply_id, attempt, context, budget)
        except ContextOverflow as exc:
            # The server's window is smaller than AI_CONTEXT_WINDOW says, or the estimate fell
            # short: once more with the least that can be answered, the student's newest
            # message alone without grounding (never the same request twice). Should that
            # fail too, the message itself is too long; the next one starts afresh.
            log.warning("reply %s: %s; trying once with the newest message alone", reply_id, exc)
            chat = build_messages(subject, turns[-1:], budget, grade_level=grade_level)
            result = _stream(provider, chat, reply_id, attempt, context, budget)
    except MessageTooLong as exc:
        return _handle_failure(reply_id, attempt, ContextOverflow(f"not sent: {exc}"))
    except ProviderError as exc:
        return _handle_failure(reply_id, attempt, exc)

    usage = result.usage
    content = "".join(result.parts)
    cut_short = usage.finish_reason == "length"
    if cut_short:  # the reply hit AI_MAX_TOKENS: say so where the student reads it
        note = CUT_SHORT_NOTE
        streams.append(redis, reply_id, streams.TOKEN, {"text": note}, attempt)
        content += note
    tokens_estimated = usage.prompt_tokens is None or usage.completion_tokens is None
    prompt_tokens = usage.prompt_tokens
    if prompt_tokens is None:
        prompt_tokens = sum(estimate_tokens(m["content"]) + MESSAGE_OVERHEAD_TOKENS for m in result.chat)
    completion_tokens = usage.completion_tokens
    if completion_tokens is None:
        completion_tokens = estimate_tokens("".join(result.parts))
    now = datetime.now(UTC)
    # What the student waited: from the question to the last word, queue and retries included.
    latency_ms = max(0, int((now - asked_at).total_seconds() * 1000))
    revealed = reveals_answer(student_messages, content, turns=turns)
    saved = db.session.execute(
        text(
            """
            UPDATE messages SET status = 'done', content = :content, latency_ms = :latency,
                generation_ms = :generation, first_token_at = :first_token_at,
                prompt_tokens = :pt, completion_tokens = :ct, tokens_estimated = :estimated,
                cut_short = :cut_short, provider = :provider, model = :model,
                completed_at = :now, error = NULL, answer_revealed = :revealed, stopped = :stopped
            WHERE id = :id AND status = 'streaming' AND attempts = :attempt
            """
        ),
        {
            "id": reply_id,
            "attempt": attempt,
            "content": content,
            "latency": latency_ms,
            "generation": result.generation_ms,
            "first_token_at": result.first_token_at,
            "pt": prompt_tokens,
            "ct": completion_tokens,
            "estimated": tokens_estimated,
            "cut_short": cut_short,
            "provider": provider.name,
            "model": provider.model,
            "now": now,
            "revealed": revealed,
            "stopped": usage.finish_reason == STOPPED,
        },
    ).rowcount
    db.session.commit()
    if not saved:
        raise streams.Superseded(f"reply {reply_id}: attempt {attempt} lost the final update")
    streams.append(redis, reply_id, streams.DONE, {"id": reply_id, "content": content}, attempt)
    metrics.record_reply(redis, provider.name, latency_ms)
    record_chat_answer(reply_id, subject, turns, provider)  # an answer to grade: an attempt (tutor.mastery)
    judge.after_reply(reply_id)  # the hidden solve step and the LLM judge, when a model is configured
    return "done"


CUT_SHORT_NOTE = "\n\n*(cut short)*"
STOPPED = "stopped"  # Usage.finish_reason when the student pressed Stop
STOP_CHECK_S = 0.1  # how often a streaming reply looks for a stop request


@dataclass
class _Streamed:
    chat: list
    parts: list[str]
    usage: Usage
    first_token_at: datetime | None
    generation_ms: int


def _stream(provider, chat, reply_id: int, attempt: int, context: ReplyContext, budget: int) -> _Streamed:  # type: ignore[no-untyped-def]
    """Send ``chat`` and relay the reply's chunks to the stream as they come."""
    redis = redis_ext.conn
    usage = Usage()
    parts: list[str] = []
    first_token_at: datetime | None = None
    began = time.monotonic()
    # The first chunk goes out at once; after it, chunks that arrive within STREAM_FLUSH_MS of
    # the last event are sent together. A fast model's 30-odd tokens a second become about 20
    # events a second (the text appears as smoothly), which halves the Redis, relay and
    # browser work per reply when a whole class is being answered.
    window = current_app.config.get("STREAM_FLUSH_MS", 50) / 1000
    pending: list[str] = []
    last_flush = 0.0
    last_stop_check = began - STOP_CHECK_S
    chunks = provider.stream(chat, usage, context)
    try:
        for chunk in chunks:
            if first_token_at is None:
                first_token_at = datetime.now(UTC)
            parts.append(chunk)
            pending.append(chunk)
            now = time.monotonic()
            if now - last_flush >= window:
                streams.append(redis, reply_id, streams.TOKEN, {"text": "".join(pending)}, attempt)
                pending.clear()
                last_flush = now
            if now - last_stop_check >= STOP_CHECK_S:  # the student's Stop button
                last_stop_check = now
                if streams.stop_requested(redis, reply_id):
                    usage.finish_reason = STOPPED
                    break
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()  # ends the provider's request (an open HTTP stream) at once
    if pending:
        streams.append(redis, reply_id, streams.TOKEN, {"text": "".join(pending)}, attempt)
    if not "".join(parts).strip() and usage.finish_reason != STOPPED:
        sent = sum(estimate_tokens(m["content"]) for m in chat)
        if not parts and usage.finish_reason is None and sent * 4 >= budget:
            # llama.cpp answers a streamed prompt longer than its context with 200 and nothing.
            raise ContextOverflow(f"the AI service sent an empty stream for a {sent}-token prompt")
        raise ProviderError("the AI service returned an empty reply", retryable=True, kind="empty")
    return _Streamed(chat, parts, usage, first_token_at, int((time.monotonic() - began) * 1000))


def _grounding(subject_id: str, text: str) -> Grounding | None:
    """The curriculum topic the student's message matched, for the system prompt."""
    if not text:
        return None
    from tutor.curriculum import get_curriculum, match_topics

    found = match_topics(text, subject_id)
    topic = get_curriculum().topic(subject_id, found[0]) if found else None
    if topic is None:
        return None
    return Grounding(topic.name, topic.explanation, tuple(topic.misconceptions[:3]))


def _handle_failure(reply_id: int, attempt: int, exc: ProviderError) -> str:
    """Retry (RQ schedules it) or fail for good. The student is told what they can do
    (``exc.student_message``); the operator's detail goes to the log and to the RQ job."""
    job = get_current_job()
    detail = str(exc)
    will_retry = exc.retryable and job is not None and (job.retries_left or 0) > 0
    new_status = "queued" if will_retry else "failed"
    db.session.execute(
        text("UPDATE messages SET status = :s, error = :e WHERE id = :id AND attempts = :a"),
        {"s": new_status, "e": exc.student_message, "id": reply_id, "a": attempt},
    )
    db.session.commit()
    if will_retry:
        log.warning("reply %s attempt %s failed, will retry: %s", reply_id, attempt, detail)
        raise exc  # RQ records it on the job (rq-dashboard) and schedules the next try
    if job is not None:
        job.meta["error"] = detail
        try:
            job.save_meta()
        except Exception:  # noqa: BLE001 - the log has it too
            pass
    streams.append(redis_ext.conn, reply_id, streams.ERROR, {"error": exc.student_message}, attempt)
    log.error("reply %s failed after %s attempt(s): %s", reply_id, attempt, detail)
    return "failed"
