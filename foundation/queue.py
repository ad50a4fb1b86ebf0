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
