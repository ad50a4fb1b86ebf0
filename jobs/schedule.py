"""Every periodic job, in one list, and the one function that makes rq-scheduler match it.

Each job has a fixed id (``periodic:<name>``), so registering the list any number of times
leaves exactly one scheduled copy of each, and a job removed from the list is cancelled the
next time the scheduler starts. Cron strings are read in ``ANALYTICS_TZ``: the scheduler
process runs with that as its local time zone (see ``worker.py``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from rq.job import Job
from rq_scheduler import Scheduler

from foundation.queue import DEFAULT_QUEUE

ID_PREFIX = "periodic-"


@dataclass(frozen=True)
class PeriodicJob:
    name: str
    func: str  # dotted path, so the list imports nothing heavy
    cron: str | None = None  # crontab in ANALYTICS_TZ, e.g. "15 0 * * *"
    interval: int | None = None  # seconds
    timeout: int = 300
    result_ttl: int = 3600
    queue: str = DEFAULT_QUEUE

    @property
    def job_id(self) -> str:
        return ID_PREFIX + self.name

    @property
    def fingerprint(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:16]

    def __post_init__(self) -> None:
        if (self.cron is None) == (self.interval is None):
            raise ValueError(f"periodic job {self.name}: give exactly one of cron or interval")


SCHEDULE: list[PeriodicJob] = [
    PeriodicJob("close-idle-sessions", "jobs.maintenance.close_idle_sessions", interval=60, timeout=120),
    PeriodicJob("sweep-outbox", "jobs.maintenance.sweep_outbox", interval=60, timeout=120),
    PeriodicJob("recover-stale-replies", "jobs.maintenance.recover_stale_replies", interval=300, timeout=120),
    PeriodicJob("nightly-rollup", "jobs.analytics.aggregate_daily_stats", cron="15 0 * * *", timeout=3600),
    PeriodicJob("nightly-mastery-refit", "jobs.mastery.refit_mastery", cron="30 0 * * *", timeout=3600),
    PeriodicJob("purge-expired", "jobs.maintenance.purge_expired", cron="45 3 * * *", timeout=900),
]


def next_cron_time(cron_string: str, use_local_timezone: bool = False) -> datetime:
    """rq-scheduler's next run time of a cron job, with the local-time reading stated.

    rq-scheduler hands the ``crontab`` package a naive local ``now`` without saying which
    reading it means, so crontab warns (FutureWarning) on every schedule sync and every run.
    The local reading is the one we rely on (the scheduler process runs with TZ set to
    ANALYTICS_TZ), so it is asked for explicitly here: same times, no warning.
    """
    import crontab
    import dateutil.tz

    now = datetime.now()
    next_time = crontab.CronTab(cron_string).next(now=now, return_datetime=True, default_utc=False)
    return next_time.astimezone(dateutil.tz.tzlocal() if use_local_timezone else dateutil.tz.UTC)


def _state_cron_reading() -> None:
    import rq_scheduler.scheduler

    rq_scheduler.scheduler.get_next_scheduled_time = next_cron_time


def sync_schedule(scheduler: Scheduler, schedule: list[PeriodicJob] | None = None) -> dict[str, list[str]]:
    """Make the scheduler hold exactly the jobs of ``schedule``; return what changed."""
    _state_cron_reading()
    schedule = SCHEDULE if schedule is None else schedule
    wanted = {job.job_id: job for job in schedule}
    changes: dict[str, list[str]] = {"added": [], "kept": [], "replaced": [], "removed": []}

    for job in scheduler.get_jobs():
        if not job.id.startswith(ID_PREFIX):
            continue  # one-off jobs scheduled by others are not ours to touch
        definition = wanted.get(job.id)
        if definition is not None and job.meta.get("fingerprint") == definition.fingerprint:
            changes["kept"].append(job.id)
            continue
        scheduler.cancel(job)
        job.delete()
        changes["replaced" if definition else "removed"].append(job.id)

    for job_id, definition in wanted.items():
        if job_id in changes["kept"]:
            continue
        # A leftover job hash with this id (not scheduled) would be overwritten anyway.
        if Job.exists(job_id, connection=scheduler.connection):
            Job.fetch(job_id, connection=scheduler.connection).delete()
        common = dict(
            id=job_id,
            queue_name=definition.queue,
            timeout=definition.timeout,
            result_ttl=definition.result_ttl,
            meta={"fingerprint": definition.fingerprint},
            description=f"periodic: {definition.name}",
        )
        if definition.cron:
            scheduler.cron(definition.cron, func=definition.func, use_local_timezone=True, **common)
        else:
            scheduler.schedule(datetime.now(UTC), func=definition.func, interval=definition.interval, **common)
        if job_id not in changes["replaced"]:
            changes["added"].append(job_id)
    return changes
