"""The worker runs jobs in the app context, from the project's queues."""

import os
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from foundation.extensions import db
from foundation.queue import get_queue
from worker import run_worker


def _student_with_session(started: datetime, last_message: datetime | None) -> str:
    uid = db.session.execute(text("INSERT INTO users (email) VALUES ('s@x.org') RETURNING id")).scalar_one()
    sid = db.session.execute(
        text("INSERT INTO sessions (student_id, subject, created_at) VALUES (:u, 'mathematics', :t) RETURNING id"),
        {"u": uid, "t": started},
    ).scalar_one()
    if last_message:
        db.session.execute(
            text("INSERT INTO messages (session_id, role, content, created_at) VALUES (:s, 'student', 'hi', :t)"),
            {"s": sid, "t": last_message},
        )
    db.session.commit()
    return str(sid)


def test_burst_worker_runs_job_in_app_context(app_ctx):
    now = datetime.now(UTC)
    sid = _student_with_session(now - timedelta(hours=2), now - timedelta(hours=1, minutes=50))
    job = get_queue().enqueue("jobs.maintenance.close_idle_sessions")
    assert run_worker(app_ctx, ["ai", "default"], burst=True)
    job.refresh()
    assert job.get_status() == "finished", job.latest_result().exc_string
    assert job.return_value() == [sid]
    status, duration = db.session.execute(text("SELECT status, duration_seconds FROM sessions")).one()
    assert status == "abandoned"
    assert duration == 600  # start to last message, not to now


@pytest.mark.parametrize("fork_every_job", [False, True], ids=["default", "--fork-every-job"])
def test_replies_run_in_the_worker_process_other_jobs_in_a_fork(app_ctx, fork_every_job):
    reply_like = get_queue("ai").enqueue(os.getpid)
    other = get_queue("default").enqueue(os.getpid)
    assert run_worker(app_ctx, ["ai", "default"], burst=True, fork_every_job=fork_every_job)
    reply_like.refresh()
    other.refresh()
    assert (reply_like.return_value() == os.getpid()) is not fork_every_job
    assert other.return_value() != os.getpid()


def test_an_in_process_reply_keeps_its_heartbeat(app_ctx):
    """Nobody else renews an in-process job's heartbeat: the worker's thread does, every
    monitoring interval, so a dead worker's reply is retried as soon as a dead horse's job."""
    from worker import AppWorker

    job = get_queue("ai").enqueue("tests.worker_jobs.heartbeats_while_sleeping", 3.5)
    AppWorker.flask_app = app_ctx
    worker = AppWorker(["ai"], connection=get_queue().connection, job_monitoring_interval=1)
    assert worker.work(burst=True)
    job.refresh()
    assert job.get_status() == "finished", job.latest_result().exc_string
    beats = sorted(set(job.return_value()))
    assert len(beats) >= 3  # the start, then a renewal about every second


def test_close_idle_sessions_keeps_recent_ones(app_ctx):
    from jobs.maintenance import close_idle_sessions

    now = datetime.now(UTC)
    _student_with_session(now - timedelta(minutes=40), now - timedelta(minutes=5))
    assert close_idle_sessions(now) == []
    assert db.session.execute(text("SELECT status FROM sessions")).scalar_one() == "active"
    later = now + timedelta(minutes=31)
    assert len(close_idle_sessions(later)) == 1
    assert close_idle_sessions(later) == []  # idempotent


def test_unknown_queue_is_refused(app_ctx):
    import pytest

    with pytest.raises(SystemExit, match="unknown queue"):
        run_worker(app_ctx, ["nope"], burst=True)


def test_jobs_of_a_dead_worker_on_this_machine_are_handed_back_at_once(app_ctx):
    """A worker SIGKILLed mid-job: the next worker to start here retries its job right away
    (RQ alone would wait for the job's heartbeat to expire, about 90 s)."""
    import subprocess
    import sys

    from rq import Retry, Worker

    from worker import reap_dead_workers

    queue = get_queue("ai")
    job = queue.enqueue("tests.worker_jobs.heartbeats_while_sleeping", 1, retry=Retry(max=2))
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # a pid that no longer exists
    gone = Worker([queue], connection=queue.connection, name="gone-worker")
    gone.register_birth()
    queue.connection.hset(gone.key, "pid", dead.pid)
    dequeued, _ = gone.dequeue_job_and_maintain_ttl(1)
    execution = gone.prepare_execution(dequeued)
    gone.prepare_job_execution(dequeued)
    assert job.id in queue.started_job_registry.get_job_ids(cleanup=False)

    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    alive = Worker([queue], connection=queue.connection, name="alive-worker")
    alive.register_birth()
    queue.connection.hset(alive.key, "pid", sleeper.pid)  # another live process: left alone
    try:
        assert reap_dead_workers(queue.connection) == [job.id]
    finally:
        sleeper.kill()
        sleeper.wait()
    assert job.id not in queue.started_job_registry.get_job_ids(cleanup=False)
    job.refresh()
    assert job.get_status() == "queued" and job.retries_left == 1
    names = {w.name for w in Worker.all(connection=queue.connection)}
    assert "gone-worker" not in names and "alive-worker" in names
    assert execution.composite_key
    alive.register_death()


def test_sigterm_stops_the_worker_promptly_and_cleanly(app_ctx, services):
    """A deploy or Ctrl-C stops `python worker.py` (both of its loops) at once, with code 0:
    it must not take the stop for a lost Redis and start working again."""
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    from rq import Worker

    env = {**os.environ, **services, "APP_ENV": "development"}
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen(
        [sys.executable, "worker.py"], cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    connection = get_queue().connection
    try:
        deadline = time.monotonic() + 30
        while len([w for w in Worker.all(connection=connection) if w.pid == proc.pid]) < 2:
            assert time.monotonic() < deadline and proc.poll() is None, "the worker never registered both loops"
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, output[-2000:]
    assert "working again" not in output
    assert [w for w in Worker.all(connection=connection) if w.pid == proc.pid] == []


def _worker_process(env: dict[str, str]):  # type: ignore[no-untyped-def]
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    return subprocess.Popen(
        [sys.executable, "worker.py"], cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def _stop(proc, timeout: float) -> str:  # type: ignore[no-untyped-def]
    """SIGTERM, then the output; killed if it does not stop in ``timeout`` seconds."""
    import signal

    try:
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=timeout)
        return output
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_stop_while_the_worker_starts_is_a_clean_stop(app_ctx, services):
    """SIGTERM right after the first loop registers (RQ's handlers come after its scheduler
    starts): held and handed over as a warm stop, exit 0, nothing left registered."""
    import time

    from rq import Worker

    env = {**os.environ, **services, "APP_ENV": "development"}
    connection = get_queue().connection
    for _ in range(3):  # the window is short: try it a few times
        proc = _worker_process(env)
        deadline = time.monotonic() + 30
        while not [w for w in Worker.all(connection=connection) if w.pid == proc.pid]:
            if time.monotonic() > deadline or proc.poll() is not None:
                _stop(proc, 5)
                raise AssertionError("the worker never registered")
            time.sleep(0.01)
        output = _stop(proc, 20)
        assert proc.returncode == 0, output[-2000:]
        assert [w for w in Worker.all(connection=connection) if w.pid == proc.pid] == []


def test_a_stop_while_waiting_for_redis_exits_at_once(tmp_path):
    import socket
    import time

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "APP_ENV": "development", "REDIS_URL": f"redis://127.0.0.1:{port}/0",
           "DATABASE_URL": "postgresql://postgres@127.0.0.1:5432/postgres", "INSTANCE_PATH": str(tmp_path)}  # fmt: skip
    proc = _worker_process(env)
    time.sleep(4)  # started and waiting for Redis
    assert proc.poll() is None
    _stop(proc, 10)
    assert proc.returncode == 0
