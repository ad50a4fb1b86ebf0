"""Tutor replies: ``process_ai_response(reply_id)`` runs on the ``ai`` queue.

The reply row is claimed with one UPDATE, the provider's chunks go to a Redis Stream as they
arrive, and the final content is saved with a guarded UPDATE, so the job can run twice, or
be killed mid-reply and run again, and still leave exactly one complete reply.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime

from flask import current_app
from rq import get_current_job
from sqlalchemy import select, text

from foundation import metrics
from foundation.extensions import db, redis_ext
from tutor import streams
from tutor.guardrail import reveals_answer
from tutor.models import Message, TutoringSession
from tutor.prompting import build_messages
from tutor.providers import ProviderError, ReplyContext, Usage, get_provider

log = logging.getLogger(__name__)


def process_ai_response(reply_id: int) -> str:
    """Generate, stream and save one tutor reply. Returns the final status."""
    started = time.monotonic()  # latency_ms runs from here (job start) to the last chunk
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
        return _generate(reply_id, attempt, started)
    except streams.Superseded:
        log.warning("reply %s attempt %s was superseded by a newer attempt; stopping", reply_id, attempt)
        return "superseded"


def _generate(reply_id: int, attempt: int, started: float) -> str:
    redis = redis_ext.conn
    if attempt > 1 or streams.has_events(redis, reply_id):
        streams.append(redis, reply_id, streams.RESET, {"attempt": attempt}, attempt)

    reply = db.session.get(Message, reply_id)
    assert reply is not None
    session = db.session.get(TutoringSession, reply.session_id)
    assert session is not None
    history = db.session.execute(
        select(Message.role, Message.content)
        .where(Message.session_id == reply.session_id, Message.id < reply_id, Message.status == "done")
        .order_by(Message.id)
    ).all()
    subject = session.subject
    chat = build_messages(
        subject, [(r.role, r.content) for r in history], current_app.config.get("AI_CONTEXT_TOKENS", 3000)
    )
    student_messages = [r.content for r in history if r.role == "student"]
    # The connection goes back to the pool while the model answers: a worker streams many
    # replies at once with a handful of connections.
    db.session.rollback()
    provider = get_provider(current_app.config)
    usage = Usage()
    parts: list[str] = []
    # The first chunk goes out at once; after it, chunks that arrive within STREAM_FLUSH_MS of
    # the last event are sent together. A fast model's 30-odd tokens a second become about 20
    # events a second (the text appears as smoothly), which halves the Redis, relay and
    # browser work per reply when a whole class is being answered.
    window = current_app.config.get("STREAM_FLUSH_MS", 50) / 1000
    pending: list[str] = []
    last_flush = 0.0
    try:
        for chunk in provider.stream(chat, usage, ReplyContext(subject=subject)):
            parts.append(chunk)
            pending.append(chunk)
            now = time.monotonic()
            if now - last_flush >= window:
                streams.append(redis, reply_id, streams.TOKEN, {"text": "".join(pending)}, attempt)
                pending.clear()
                last_flush = now
        if pending:
            streams.append(redis, reply_id, streams.TOKEN, {"text": "".join(pending)}, attempt)
        if not "".join(parts).strip():
            raise ProviderError("the AI service returned an empty reply", retryable=True)
    except ProviderError as exc:
        return _handle_failure(reply_id, attempt, str(exc), exc.retryable)
    latency_ms = int((time.monotonic() - started) * 1000)
    content = "".join(parts)
    revealed = reveals_answer(student_messages, content)
    saved = db.session.execute(
        text(
            """
            UPDATE messages SET status = 'done', content = :content, latency_ms = :latency,
                prompt_tokens = :pt, completion_tokens = :ct, provider = :provider, model = :model,
                completed_at = :now, error = NULL, answer_revealed = :revealed
            WHERE id = :id AND status = 'streaming' AND attempts = :attempt
            """
        ),
        {
            "id": reply_id,
            "attempt": attempt,
            "content": content,
            "latency": latency_ms,
            "pt": usage.prompt_tokens,
            "ct": usage.completion_tokens,
            "provider": provider.name,
            "model": provider.model,
            "now": datetime.now(UTC),
            "revealed": revealed,
        },
    ).rowcount
    db.session.commit()
    if not saved:
        raise streams.Superseded(f"reply {reply_id}: attempt {attempt} lost the final update")
    streams.append(redis, reply_id, streams.DONE, {"id": reply_id, "content": content}, attempt)
    metrics.record_reply(redis, provider.name, latency_ms)
    return "done"


def _handle_failure(reply_id: int, attempt: int, message: str, retryable: bool) -> str:
    job = get_current_job()
    will_retry = retryable and job is not None and (job.retries_left or 0) > 0
    new_status = "queued" if will_retry else "failed"
    db.session.execute(
        text("UPDATE messages SET status = :s, error = :e WHERE id = :id AND attempts = :a"),
        {"s": new_status, "e": message, "id": reply_id, "a": attempt},
    )
    db.session.commit()
    if will_retry:
        log.warning("reply %s attempt %s failed, will retry: %s", reply_id, attempt, message)
        raise ProviderError(message, retryable=True)  # RQ schedules the next try
    streams.append(
        redis_ext.conn, reply_id, streams.ERROR, {"error": f"The tutor could not answer: {message}"}, attempt
    )
    log.error("reply %s failed after %s attempt(s): %s", reply_id, attempt, message)
    return "failed"
