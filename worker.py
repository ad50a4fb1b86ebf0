"""RQ worker and scheduler entry point.

``python worker.py`` runs a worker on the ``ai`` and ``default`` queues (in that order of
priority) with RQ's own scheduler enabled, so retries with delays fire. The app is built
once; tutor replies run in the worker process, other jobs in a work horse forked per job
(see :class:`AppWorker`); every job runs inside the app context.

``python worker.py --scheduler`` runs rq-scheduler and first makes it hold exactly the
periodic jobs listed in ``jobs/schedule.py``.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import threading
import time

from flask import Flask
from rq import Worker
from rq.worker import WorkerStatus

from foundation.config import ConfigError
from tutor.curriculum import CurriculumError

log = logging.getLogger("worker")


class AppWorker(Worker):
    """An RQ worker whose jobs run inside the Flask app context.

    Tutor replies (the ``ai`` queue) run in the worker process itself: no fork per reply, and
    the database and provider connections stay open between replies, which takes about 300 ms
    off the time to a reply's first token (``docs/PERFORMANCE.md``). Every other job (rollups,
    maintenance) runs in a fresh work horse (a fork), RQ's default, so a large job's memory goes
    back to the system when it ends. A job that crashes the interpreter takes an in-process
    reply's worker with it; RQ retries the reply once its heartbeat expires (tested), which a
    thread renews while the reply runs, as the forking worker does for its horse.
    """

    flask_app: Flask
    in_process_queues: frozenset[str] = frozenset({"ai"})

    def execute_job(self, job, queue):  # type: ignore[no-untyped-def]
        if queue.name not in self.in_process_queues:
            return super().execute_job(job, queue)
        # What rq.SimpleWorker does (prepare, perform here, back to idle), plus what the forking
        # worker does while it waits for a horse: renew the heartbeats every monitoring interval,
        # so a dead worker's reply is retried about as soon as a dead horse's job.
        execution = self.prepare_execution(job)
        done = threading.Event()

        def beat() -> None:
            while not done.wait(self.job_monitoring_interval):
                try:
                    self.maintain_heartbeats(job, execution)
                except Exception:  # noqa: BLE001 - Redis gone for a moment: the next beat tries again
                    log.warning("could not renew the heartbeat of %s", job.id, exc_info=True)

        beating = threading.Thread(target=beat, name=f"heartbeat-{job.id}", daemon=True)
        beating.start()
        try:
            self.perform_job(job, queue, execution)
        finally:
            done.set()
            beating.join(5)
        self.set_state(WorkerStatus.IDLE)
        return None

    def perform_job(self, job, *args, **kwargs):  # type: ignore[no-untyped-def]
        from foundation import metrics
        from foundation.extensions import db, redis_ext

        with self.flask_app.app_context():
            if self.is_horse:  # a fork: never reuse the parent's pooled connections
                db.engine.dispose(close=False)
            started = time.monotonic()
            ok = False
            try:
                ok = super().perform_job(job, *args, **kwargs)
                return ok
            finally:
                metrics.record_job(redis_ext.conn, job.func_name, time.monotonic() - started, bool(ok))
                db.session.remove()


class ForkingAppWorker(AppWorker):
    """Every job in a work horse, replies too (``--fork-every-job``: RQ's default behaviour)."""

    in_process_queues = frozenset()


def build_app() -> Flask:
    from app import create_app

    return create_app()


def check_services(app: Flask) -> str | None:
    """One line naming the service that cannot be reached, or None."""
    from foundation.health import check_services as probe

    status = probe(app, deadline=5.0)
    for name, var in (("postgres", "DATABASE_URL"), ("redis", "REDIS_URL")):
        if status[name] != "ok":
            return f"cannot reach {name} at {var}; check that it is running and that {var} is right."
    return None


# Imported once in the worker process, so that each forked work horse inherits them instead
# of importing them again per job (the openai package alone takes seconds to import).
PRELOAD = (
    "jobs.ai",
    "jobs.analytics",
    "jobs.maintenance",
    "tutor.providers.builtin",
    "tutor.providers.openai_provider",
)


def preload() -> None:
    import importlib

    for module in PRELOAD:
        importlib.import_module(module)


def run_worker(app: Flask, queues: list[str], burst: bool = False, fork_every_job: bool = False) -> bool:
    from foundation.extensions import make_redis
    from foundation.queue import QUEUES

    unknown = sorted(set(queues) - set(QUEUES))
    if unknown:
        raise SystemExit(f"error: unknown queue(s) {', '.join(unknown)}; the queues are {', '.join(QUEUES)}")
    worker_class = ForkingAppWorker if fork_every_job else AppWorker
    worker_class.flask_app = app
    preload()
    _sweep_on_start(app)
    connection = make_redis(app.config["REDIS_URL"])
    # Registries are cleaned every minute, so a job whose worker died is retried soon after
    # its heartbeat expires instead of after RQ's default ten minutes.
    worker = worker_class(queues, connection=connection, maintenance_interval=60)
    return worker.work(with_scheduler=True, burst=burst, logging_level=app.config["LOG_LEVEL"])


def _sweep_on_start(app: Flask) -> None:
    """Replies left queued while no worker (or no Redis) was there are picked up at once."""
    from foundation.extensions import db
    from jobs.maintenance import sweep_outbox

    with app.app_context():
        try:
            sweep_outbox()
        except Exception:  # noqa: BLE001 - the periodic sweep tries again within a minute
            log.exception("outbox sweep at worker start failed")
        finally:
            db.session.remove()
            db.engine.dispose()  # the work horses are forks: leave them no inherited connections


def run_scheduler(app: Flask, interval: int = 5, burst: bool = False) -> None:
    from rq_scheduler import Scheduler

    from foundation.extensions import make_redis
    from jobs.schedule import sync_schedule

    # rq-scheduler reads cron strings in the process's local time zone.
    os.environ["TZ"] = app.config["ANALYTICS_TZ"]
    time.tzset()
    connection = make_redis(app.config["REDIS_URL"])
    scheduler = Scheduler(connection=connection, interval=interval)
    changes = sync_schedule(scheduler)
    log.info("schedule: %s", ", ".join(f"{k} {len(v)}" for k, v in changes.items()))
    scheduler.run(burst=burst)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scheduler", action="store_true", help="run rq-scheduler with the periodic jobs")
    parser.add_argument("--queues", default="ai,default", help="comma-separated queues (default: ai,default)")
    parser.add_argument("--burst", action="store_true", help="stop when the queues are empty")
    parser.add_argument(
        "--fork-every-job",
        action="store_true",
        help="run tutor replies in a fork per job too (RQ's default; replies start about 300 ms later)",
    )
    args = parser.parse_args(argv)
    try:
        app = build_app()
    except (ConfigError, CurriculumError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    problem = check_services(app)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 1
    if args.scheduler:
        run_scheduler(app, burst=args.burst)
    else:
        run_worker(
            app,
            [q.strip() for q in args.queues.split(",") if q.strip()],
            burst=args.burst,
            fork_every_job=args.fork_every_job,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
