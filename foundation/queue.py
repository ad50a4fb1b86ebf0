"""The queue interface: the RQ queues, and enqueueing a job by its dotted name.

The web side (``tutor/``) puts work on a queue by naming the job function
(``"jobs.ai.process_ai_response"``) instead of importing ``jobs/``, so importing the
tutor never imports the worker's code. RQ resolves the name when a worker runs the job.

Queues, in the order a worker takes from them:
- ``ai``: tutor replies (a student is waiting for them);
- ``default``: analytics and maintenance.
"""

from __future__ import annotations

from typing import Any

from rq import Queue
from rq.job import Job

from .extensions import redis_ext

AI_QUEUE = "ai"
DEFAULT_QUEUE = "default"
QUEUES = (AI_QUEUE, DEFAULT_QUEUE)


def get_queue(name: str = DEFAULT_QUEUE) -> Queue:
    if name not in QUEUES:
        raise ValueError(f"unknown queue {name!r}; the queues are {', '.join(QUEUES)}")
    return Queue(name, connection=redis_ext.conn)


def enqueue(job: str, *args: Any, queue: str = DEFAULT_QUEUE, **options: Any) -> Job:
    """Put ``job`` (a dotted function name under ``jobs.``) on ``queue``; RQ's options pass through."""
    if not job.startswith("jobs."):
        raise ValueError(f"job names are dotted paths under jobs/, e.g. 'jobs.ai.process_ai_response'; got {job!r}")
    return get_queue(queue).enqueue(job, *args, **options)


def scheduled_jobs(connection) -> list[dict]:  # type: ignore[no-untyped-def]
    """What rq-scheduler holds, for ops (rq-dashboard does not show it): each job with its
    rule (cron string or interval, from the job's meta) and next run (UTC), soonest first."""
    from datetime import UTC

    from rq_scheduler import Scheduler

    rows = []
    for job, when in Scheduler(connection=connection).get_jobs(with_times=True):
        meta = job.meta or {}
        if meta.get("cron_string"):
            rule = f"cron {meta['cron_string']}"
        elif meta.get("interval"):
            rule = f"every {meta['interval']} s"
        else:
            rule = "once"
        rows.append({
            "id": job.id,
            "name": job.id,
            "func": job.func_name,
            "rule": rule,
            "queue": job.origin,
            "next_run": when.replace(tzinfo=UTC) if when.tzinfo is None else when,
        })  # fmt: skip
    rows.sort(key=lambda r: r["next_run"])
    return rows
