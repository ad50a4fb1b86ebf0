"""Queueing a tutor reply: its job id, retry policy and timeout.

The reply's job is ``jobs.ai.process_ai_response``, named, not imported: the web side puts it
on the ``ai`` queue through :mod:`foundation.queue`, and the worker runs it.
"""

from __future__ import annotations

from flask import current_app
from rq import Retry

from foundation.extensions import redis_ext
from foundation.queue import AI_QUEUE, enqueue

JOB_TIMEOUT_S = 180


def reply_job_id(reply_id: int) -> str:
    return f"reply-{reply_id}"


def reply_job_status(reply_id: int) -> str | None:
    """The RQ status of the reply's job, or None when Redis holds no such job."""
    from rq.exceptions import NoSuchJobError
    from rq.job import Job

    try:
        return Job.fetch(reply_job_id(reply_id), connection=redis_ext.conn).get_status()
    except NoSuchJobError:
        return None


def retry_policy() -> Retry:
    delays = [int(x) for x in str(current_app.config.get("AI_RETRY_DELAYS", "2,10,30")).split(",") if x.strip()]
    return Retry(max=len(delays), interval=delays)


def enqueue_reply(reply_id: int) -> None:
    """Put the reply's job on the ``ai`` queue (raises if Redis is unreachable)."""
    enqueue(
        "jobs.ai.process_ai_response",
        reply_id,
        queue=AI_QUEUE,
        job_id=reply_job_id(reply_id),
        retry=retry_policy(),
        job_timeout=JOB_TIMEOUT_S,
        result_ttl=3600,
        failure_ttl=7 * 24 * 3600,
        description=f"tutor reply {reply_id}",
    )
