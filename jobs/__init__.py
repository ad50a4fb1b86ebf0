"""Background work, run by RQ workers (``worker.py``).

Jobs are plain functions of ids. The worker runs each inside the app context, so a job
uses ``db.session`` and the config like a request does, and tests can call it directly.

Queues, in the order a worker takes from them:
- ``ai``: tutor replies (a student is waiting for them);
- ``default``: analytics and maintenance.
"""

from __future__ import annotations

from rq import Queue

from tutor.extensions import redis_ext

AI_QUEUE = "ai"
DEFAULT_QUEUE = "default"
QUEUES = (AI_QUEUE, DEFAULT_QUEUE)


def get_queue(name: str = DEFAULT_QUEUE) -> Queue:
    if name not in QUEUES:
        raise ValueError(f"unknown queue {name!r}; the queues are {', '.join(QUEUES)}")
    return Queue(name, connection=redis_ext.conn)
