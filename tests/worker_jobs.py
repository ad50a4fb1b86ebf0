"""Jobs that only tests enqueue (importable by a worker as ``tests.worker_jobs.*``)."""

from __future__ import annotations

import time

from rq import get_current_job


def heartbeats_while_sleeping(seconds: float) -> list[float]:
    """Sleep, sampling the job's last heartbeat (as RQ stores it) every 0.1 s."""
    job = get_current_job()
    seen = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        job.refresh()
        seen.append(job.last_heartbeat.timestamp() if job.last_heartbeat else 0.0)
        time.sleep(0.1)
    return seen
