"""RQ worker and scheduler entry point.

``python worker.py`` runs the ``ai`` and ``default`` queues in one process, each with its own
RQ worker (two entries in rq-dashboard):

- **tutor replies** (``ai``): :class:`ReplyWorker` runs up to ``WORKER_REPLY_CONCURRENCY``
  replies at once, each on its own thread in this process. A reply spends nearly all its time
  waiting for the model's next token, so one process keeps a whole class's replies streaming;
  no fork per reply, and database and provider connections are reused between replies.
- **everything else** (``default``: rollups, maintenance): :class:`AppWorker` forks a fresh
  work horse per job, RQ's default, so a large job's memory goes back to the system when it
  ends and a crash cannot take a reply with it.

Both run every job inside the app context, with RQ's scheduler enabled so retries with delays
fire. While Redis is unreachable the process waits for it (with backoff) instead of exiting.

``python worker.py --scheduler`` runs rq-scheduler and first makes it hold exactly the
periodic jobs listed in ``jobs/schedule.py``.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time

import redis.exceptions
from flask import Flask
from rq import Worker
from rq.exceptions import StopRequested
from rq.job_lifecycle import call_exception_handlers
from rq.timeouts import TimerDeathPenalty, UnixSignalDeathPenalty
from rq.worker import WorkerStatus

from foundation.config import ConfigError
from foundation.logs import job_log_level

log = logging.getLogger("worker")

#: Seconds between the reply worker's polls of its queue, so that it notices a stop request
#: (signals reach the main thread only) within this time.
REPLY_POLL_S = 1
#: The reply worker's GIL switch interval (Python's default: 5 ms).
SWITCH_INTERVAL_S = 0.0005
#: How long a warm shutdown waits for replies in flight before leaving them to be retried.
REPLY_DRAIN_S = 10.0


#: Names of the workers running in this process (the reaper leaves them alone).
_LIVE: set[str] = set()
#: Stop signals that came before RQ's own handlers were in place (see ``hold_stop_signals``).
_EARLY_STOP: list[int] = []
_STARTING: list[bool] = []  # non-empty once a worker has begun to start (register, scheduler)


def hold_stop_signals() -> None:
    """Remember SIGTERM/SIGINT until RQ installs its handlers.

    RQ registers a worker (``register_birth``), starts its scheduler and only then installs its
    signal handlers; a stop in between (a deploy right after a start) killed the process with
    the signal's default action, exit -15 and the worker left registered. Held here, it is
    handed to the worker as a warm stop as soon as its handlers are in place.
    """

    def held(received: int, _frame: object) -> None:
        if not _STARTING:
            raise SystemExit(0)  # still waiting for Redis or PostgreSQL: nothing to wind down
        _EARLY_STOP.append(received)

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, held)


class AppWorker(Worker):
    """An RQ worker whose jobs run inside the Flask app context, each in a forked work horse."""

    flask_app: Flask

    def work(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        _LIVE.add(self.name)
        _STARTING.append(True)
        try:
            return super().work(*args, **kwargs)
        finally:
            _LIVE.discard(self.name)

    def _install_signal_handlers(self) -> None:
        super()._install_signal_handlers()
        if _EARLY_STOP:  # asked to stop while starting: the loop stops before its first job
            self.log.info("Worker %s: stopping on request (asked while starting)", self.name)
            from rq.utils import now

            self._stop_requested = True
            self._shutdown_requested_date = now()
            self.set_shutdown_requested_date()

    def handle_exception(self, job, *exc_info):  # type: ignore[no-untyped-def]
        # A provider failure is expected weather (an outage, a rate limit): the reply job has
        # already logged one line for it. RQ would add the whole traceback for every attempt.
        from tutor.providers import ProviderError

        if len(exc_info) > 1 and isinstance(exc_info[1], ProviderError):
            self.log.debug("job %s: %s", job.id, exc_info[1])
            call_exception_handlers(self._exc_handlers, job, *exc_info)
            return
        super().handle_exception(job, *exc_info)

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


class ReplyWorker(AppWorker):
    """Runs up to ``concurrency`` jobs at once, each on a thread of this process.

    RQ's own loop dequeues; instead of forking, :meth:`execute_job` starts the job on a thread
    and returns, and the loop waits for a free slot before it dequeues again. Everything that
    makes a reply exactly-once stays as it is: the job claims its row with one UPDATE, owns its
    stream through the owner key, saves with a guarded UPDATE, and RQ's retries, registries
    and executions work per job (RQ 2+ tracks several executions per worker). A thread renews
    the heartbeats of every running job each monitoring interval, as the forking worker does
    for its horse, so the replies of a killed worker are retried once their heartbeat expires.
    A job over its timeout is stopped by RQ's timer-based death penalty (signals reach the main
    thread only).
    """

    concurrency: int = 1

    def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        self._slots = threading.BoundedSemaphore(self.concurrency)
        self._running: dict[str, tuple] = {}  # job id -> (job, execution)
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._beats_stop = threading.Event()
        self._beats: threading.Thread | None = None
        self._loop: threading.Thread | None = None
        self._last_beat = 0.0
        self._last_suspension_check = 0.0

    # -- RQ hooks -----------------------------------------------------------------------------

    @property
    def death_penalty_class(self):  # type: ignore[no-untyped-def]
        """Signal-based timeouts on the main thread (RQ's default), timer-based on job threads."""
        if threading.current_thread() is threading.main_thread():
            return UnixSignalDeathPenalty
        return TimerDeathPenalty

    @property
    def dequeue_timeout(self) -> int:
        # Short polls: the loop may run on a thread, which signals never reach; it checks for a
        # stop request between polls.
        return REPLY_POLL_S

    def heartbeat(self, timeout=None, pipeline=None):  # type: ignore[no-untyped-def]
        # RQ's loop heartbeats before each poll of the queue and after each job: the place to
        # notice a stop request made from another thread (RQ's loop leaves on StopRequested).
        # While a burst of replies is being started, once a second is enough, and the three
        # commands go in one round trip: each round trip of this loop waits for the GIL behind
        # the running replies, and the loop starts every reply.
        if pipeline is None and timeout is None and threading.current_thread() is self._loop:
            if self._stop_requested:
                raise StopRequested()
            now = time.monotonic()
            if now - self._last_beat < 1.0:
                return None
            self._last_beat = now
            with self.connection.pipeline(transaction=False) as beat:
                super().heartbeat(timeout, beat)
                beat.execute()
            return None
        return super().heartbeat(timeout, pipeline)

    def check_for_suspension(self, burst: bool) -> None:
        now = time.monotonic()  # once a second, not before every job (one round trip each)
        if now - self._last_suspension_check >= 1.0:
            self._last_suspension_check = now
            super().check_for_suspension(burst)

    def set_state(self, state, pipeline=None):  # type: ignore[no-untyped-def]
        # RQ marks the worker idle before each poll and busy for each job; with replies running
        # it stays busy (one round trip less per reply started).
        if state == WorkerStatus.IDLE and self._running:
            return None
        if pipeline is None and state == self._state:
            return None
        return super().set_state(state, pipeline)

    def work(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        self._loop = threading.current_thread()
        # Replies are many threads that mostly wait on sockets. When one gets its answer it
        # needs the GIL back, and by default waits up to 5 ms for a busy thread to hand it over;
        # a shorter interval keeps each of those waits (and so each reply's start) short.
        sys.setswitchinterval(SWITCH_INTERVAL_S)
        return super().work(*args, **kwargs)  # AppWorker.work: registered as live

    def dequeue_job_and_maintain_ttl(self, timeout, max_idle_time=None):  # type: ignore[no-untyped-def]
        while not self._slots.acquire(timeout=REPLY_POLL_S):  # every slot busy: wait for one
            if self._stop_requested:
                return None
            self.heartbeat()
        if self._stop_requested:
            self._slots.release()
            return None
        try:
            result = super().dequeue_job_and_maintain_ttl(timeout, max_idle_time)
            if result is None and timeout is None and self.running():
                # Burst mode found the queue empty: let the replies in flight finish (a failed
                # one may be retried at once), then look again.
                self.wait_idle()
                result = super().dequeue_job_and_maintain_ttl(timeout, max_idle_time)
        except BaseException:
            self._slots.release()
            raise
        if result is None:
            self._slots.release()
        return result

    def execute_job(self, job, queue):  # type: ignore[no-untyped-def]
        execution = self.prepare_execution(job)
        thread = threading.Thread(target=self._run, args=(job, queue, execution), name=f"job-{job.id}", daemon=True)
        with self._lock:
            self._running[job.id] = (job, execution)
        self._ensure_heartbeats()
        thread.start()

    def teardown(self) -> None:
        # A warm shutdown lets the replies in flight finish (they are short); what is still
        # running after REPLY_DRAIN_S is retried once its heartbeat expires.
        if not self.wait_idle(REPLY_DRAIN_S):
            log.warning("stopping with %d replies still running; they will be retried", len(self.running()))
        self._beats_stop.set()
        super().teardown()

    # -- our own ------------------------------------------------------------------------------

    def running(self) -> list[str]:
        with self._lock:
            return list(self._running)

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until no job runs; False if some still run after ``timeout`` seconds."""
        with self._idle:
            return self._idle.wait_for(lambda: not self._running, timeout)

    def _run(self, job, queue, execution) -> None:  # type: ignore[no-untyped-def]
        try:
            self.perform_job(job, queue, execution)
        except Exception:  # noqa: BLE001 - perform_job records failures itself; never lose the slot
            log.exception("job %s: unexpected error outside the job", job.id)
        finally:
            with self._idle:
                self._running.pop(job.id, None)
                idle = not self._running
                self._idle.notify_all()
            self._slots.release()
            if idle:
                try:
                    self.set_state(WorkerStatus.IDLE)
                except redis.exceptions.RedisError:
                    pass

    def _ensure_heartbeats(self) -> None:
        if self._beats is None or not self._beats.is_alive():
            self._beats = threading.Thread(target=self._beat, name="heartbeats", daemon=True)
            self._beats.start()

    def _beat(self) -> None:
        while not self._beats_stop.wait(self.job_monitoring_interval):
            with self._lock:
                running = list(self._running.values())
            for job, execution in running:
                try:
                    self.maintain_heartbeats(job, execution)
                except Exception:  # noqa: BLE001 - Redis gone for a moment: the next beat tries again
                    log.warning("could not renew the heartbeat of %s", job.id, exc_info=True)


class WorkerLost(RuntimeError):
    """A worker loop ended without being asked to (RQ leaves its loop when Redis fails)."""


def _asked_to_stop(worker: Worker) -> bool:
    # RQ records a stop request in one of two ways: an idle worker gets StopRequested raised
    # in its signal handler (only the request date is kept), a busy one finishes first.
    return bool(worker._stop_requested or worker._shutdown_requested_date)


def _work(worker: Worker, burst: bool, **kwargs) -> bool:  # type: ignore[no-untyped-def]
    worked = worker.work(burst=burst, **kwargs)
    if not burst and not _asked_to_stop(worker):
        raise WorkerLost(f"worker {worker.name} stopped on its own")
    return worked


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


def wait_for_services(app: Flask, give_up_after: float | None = None) -> str | None:
    """Wait (with backoff, one log line per change) until PostgreSQL and Redis answer.

    A worker started while Redis or PostgreSQL is restarting, or one whose Redis blipped,
    waits instead of exiting (and crash-looping under a supervisor). Returns None once both
    answer, or the problem if ``give_up_after`` seconds pass first.
    """
    started = time.monotonic()
    delay, last = 0.5, None
    while True:
        problem = check_services(app)
        if problem is None:
            if last is not None:
                log.info("services are back; starting")
            return None
        if give_up_after is not None and time.monotonic() - started >= give_up_after:
            return problem
        if problem != last:
            log.warning("%s Waiting for it.", problem)
            last = problem
        time.sleep(delay)
        delay = min(delay * 2, 10.0)


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


def check_provider(app: Flask) -> None:
    """Once at start: warn (one line, no crash) when the AI service is unreachable or does not
    list AI_MODEL."""
    config = app.config
    if config.get("AI_PROVIDER") != "openai":
        return
    from tutor.providers.openai_provider import check_model

    problem = check_model(
        config.get("OPENAI_BASE_URL") or None, config.get("OPENAI_API_KEY") or "not-needed", config["AI_MODEL"]
    )
    if problem:
        log.warning("%s", problem)


def run_worker(
    app: Flask,
    queues: list[str],
    burst: bool = False,
    fork_every_job: bool = False,
    concurrency: int | None = None,
) -> bool:
    """Work ``queues``; in burst mode, until they are all empty. Returns whether any job ran."""
    from foundation.extensions import make_redis
    from foundation.queue import AI_QUEUE, QUEUES

    unknown = sorted(set(queues) - set(QUEUES))
    if unknown:
        raise SystemExit(f"error: unknown queue(s) {', '.join(unknown)}; the queues are {', '.join(QUEUES)}")
    preload()
    _sweep_on_start(app)
    connection = make_redis(app.config["REDIS_URL"])
    reap_dead_workers(connection)
    level = job_log_level(app.config)
    AppWorker.flask_app = app
    if fork_every_job:
        # Registries are cleaned every minute, so a job whose worker died is retried soon after
        # its heartbeat expires instead of after RQ's default ten minutes.
        worker = AppWorker(queues, connection=connection, maintenance_interval=60)  # a fork per job, replies too
        return _work(worker, burst, with_scheduler=True, logging_level=level)

    ReplyWorker.concurrency = concurrency or app.config["WORKER_REPLY_CONCURRENCY"]
    reply_queues = [q for q in queues if q == AI_QUEUE]
    other_queues = [q for q in queues if q != AI_QUEUE]

    def replies() -> ReplyWorker:
        return ReplyWorker(reply_queues, connection=connection, maintenance_interval=60)

    def others() -> AppWorker:
        return AppWorker(other_queues, connection=connection, maintenance_interval=60)

    if not other_queues:
        return _work(replies(), burst, with_scheduler=True, logging_level=level)
    if not reply_queues:
        return _work(others(), burst, with_scheduler=True, logging_level=level)
    if burst:
        # Until both are empty: a maintenance job may enqueue replies (the outbox sweep).
        worked = False
        while True:
            worked = replies().work(with_scheduler=True, burst=True, logging_level=level) or worked
            worked = others().work(with_scheduler=True, burst=True, logging_level=level) or worked
            if not _pending(connection, queues):
                return worked
    # Replies on a thread of their own (RQ's signal handlers belong to the main thread), the
    # forking worker on the main thread; a stop request for the one stops the other.
    reply_worker, other_worker = replies(), others()
    reply_worker._install_signal_handlers = lambda: None  # type: ignore[method-assign]
    outcome: dict[str, object] = {}

    def run_replies() -> None:
        try:
            outcome["worked"] = reply_worker.work(with_scheduler=False, logging_level=level)
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            outcome["error"] = exc
        finally:
            if not reply_worker._stop_requested:  # the reply loop ended on its own: leave too
                outcome["lost"] = True
                os.kill(os.getpid(), signal.SIGTERM)  # RQ's handler, on the main thread, stops the other loop

    thread = threading.Thread(target=run_replies, name="reply-worker", daemon=True)
    thread.start()
    try:
        worked = other_worker.work(with_scheduler=True, logging_level=level)
    finally:
        reply_worker._stop_requested = True
        thread.join(REPLY_DRAIN_S + 5)
    if outcome.get("lost") or not _asked_to_stop(other_worker):
        raise WorkerLost(f"a worker loop stopped on its own: {outcome.get('error', 'the jobs worker')}")
    return bool(worked or outcome.get("worked"))


def reap_dead_workers(connection) -> list[str]:  # type: ignore[no-untyped-def]
    """Hand back, at once, the jobs of workers on this machine whose process is gone.

    A worker killed mid-reply (SIGKILL, the OOM killer, a crash) leaves its jobs in RQ's
    started registry until their heartbeat expires, about 90 s. A worker starting on the same
    machine knows better: a registered worker whose pid no longer exists here (or is this very
    process, from before a Redis outage) is dead, so its jobs go through RQ's own abandoned-job
    handling now (retried if they have retries left) and the worker is unregistered. The
    reply's claim, owner key and guarded save keep the retry exactly-once even if a worker with
    the same host name on another machine were taken for dead. Returns the job ids handed back.
    """
    import socket

    from rq import Queue
    from rq.registry import StartedJobRegistry

    host, me = socket.gethostname(), os.getpid()
    handed_back: list[str] = []
    for old in Worker.all(connection=connection):
        if old.hostname != host or not old.pid:
            continue
        if old.pid != me:
            try:
                os.kill(old.pid, 0)
                continue  # alive (or a process we may not signal: leave it to its heartbeat)
            except ProcessLookupError:
                pass
            except PermissionError:
                continue
        elif old.name in _LIVE:
            continue  # one of ours, working
        executions = old.get_current_executions(refresh=True)
        by_queue: dict[str, list[str]] = {}
        mine: list[str] = []
        for execution in executions:
            try:
                origin = execution.job.origin
            except Exception:  # noqa: BLE001 - the job hash is gone: nothing to hand back
                continue
            by_queue.setdefault(origin, []).append(execution.composite_key)
            mine.append(execution.job_id)
        for origin, keys in by_queue.items():
            queue = Queue(origin, connection=connection)
            registry = StartedJobRegistry(queue=queue)
            connection.zadd(registry.key, dict.fromkeys(keys, 1), xx=True)  # expired now
            registry.cleanup()
        old.register_death()
        handed_back += mine
        log.warning("worker %s (pid %s) is gone; handed back its jobs: %s", old.name, old.pid, mine or "none")
    return handed_back


def _pending(connection, queues: list[str]) -> bool:  # type: ignore[no-untyped-def]
    """Whether any of ``queues`` holds a job, or a scheduled one (a retry) that is due."""
    from rq import Queue
    from rq.registry import ScheduledJobRegistry

    for name in queues:
        queue = Queue(name, connection=connection)
        if queue.count or ScheduledJobRegistry(queue=queue).get_jobs_to_schedule():
            return True
    return False


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
    logging.getLogger("rq_scheduler.scheduler").setLevel(job_log_level(app.config))
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
        "--concurrency",
        type=int,
        default=None,
        help="tutor replies run at once (default: WORKER_REPLY_CONCURRENCY, 200)",
    )
    parser.add_argument(
        "--fork-every-job",
        action="store_true",
        help="run tutor replies one at a time, each in a fork (RQ's default; for comparison)",
    )
    args = parser.parse_args(argv)
    try:
        app = build_app()
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not args.scheduler:
        hold_stop_signals()
    problem = wait_for_services(app, give_up_after=0 if args.burst else None)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 1
    if not args.scheduler:
        check_provider(app)
    while True:
        try:
            if args.scheduler:
                run_scheduler(app, burst=args.burst)
            else:
                run_worker(
                    app,
                    [q.strip() for q in args.queues.split(",") if q.strip()],
                    burst=args.burst,
                    fork_every_job=args.fork_every_job,
                    concurrency=args.concurrency,
                )
            return 0
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, WorkerLost) as exc:
            if args.burst:
                raise
            log.warning("%s; waiting for Redis and PostgreSQL, then working again", exc)
            time.sleep(1)
            wait_for_services(app)


if __name__ == "__main__":
    sys.exit(main())
