"""rq-scheduler holds each periodic job exactly once, however often the scheduler starts."""

from datetime import UTC

import pytest
from rq_scheduler import Scheduler

from foundation.extensions import redis_ext
from jobs.schedule import SCHEDULE, PeriodicJob, sync_schedule


@pytest.fixture
def scheduler(app_ctx):
    return Scheduler(connection=redis_ext.conn)


def _ids(scheduler):
    return sorted(job.id for job in scheduler.get_jobs())


def test_sync_is_idempotent(scheduler):
    first = sync_schedule(scheduler)
    assert sorted(first["added"]) == sorted(job.job_id for job in SCHEDULE)
    for _ in range(3):
        again = sync_schedule(scheduler)
        assert again["added"] == [] and again["replaced"] == [] and again["removed"] == []
    assert _ids(scheduler) == sorted(job.job_id for job in SCHEDULE)


def test_removed_job_disappears_and_changed_job_is_replaced(scheduler):
    nightly = PeriodicJob("nightly-test", "jobs.maintenance.close_idle_sessions", cron="15 0 * * *")
    hourly = PeriodicJob("hourly-test", "jobs.maintenance.close_idle_sessions", interval=3600)
    sync_schedule(scheduler, [nightly, hourly])
    assert _ids(scheduler) == ["periodic-hourly-test", "periodic-nightly-test"]

    changed = PeriodicJob("nightly-test", "jobs.maintenance.close_idle_sessions", cron="30 1 * * *")
    result = sync_schedule(scheduler, [changed])
    assert result["removed"] == ["periodic-hourly-test"]
    assert result["replaced"] == ["periodic-nightly-test"]
    assert _ids(scheduler) == ["periodic-nightly-test"]
    (job,) = scheduler.get_jobs()
    assert job.meta["cron_string"] == "30 1 * * *"


def test_foreign_scheduled_jobs_are_left_alone(scheduler):
    from datetime import datetime, timedelta

    other = scheduler.enqueue_at(datetime.now(UTC) + timedelta(hours=1), "jobs.maintenance.close_idle_sessions")
    sync_schedule(scheduler, [])
    assert other.id in _ids(scheduler)


def test_job_definition_needs_cron_or_interval():
    with pytest.raises(ValueError):
        PeriodicJob("bad", "x.y")
    with pytest.raises(ValueError):
        PeriodicJob("bad", "x.y", cron="* * * * *", interval=5)


def test_every_scheduled_function_imports():
    from importlib import import_module

    for job in SCHEDULE:
        module, name = job.func.rsplit(".", 1)
        assert callable(getattr(import_module(module), name))


def test_nightly_rollup_is_held_exactly_once_however_often_the_scheduler_starts(scheduler):
    for _ in range(4):  # four scheduler starts
        sync_schedule(scheduler)
    nightly = [job for job in scheduler.get_jobs() if job.func_name == "jobs.analytics.aggregate_daily_stats"]
    assert len(nightly) == 1
    assert nightly[0].meta["cron_string"] == "15 0 * * *" and nightly[0].meta["use_local_timezone"] is True
