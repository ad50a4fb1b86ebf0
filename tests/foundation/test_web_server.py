"""The production web server (the Procfile's gunicorn line): hundreds of idle reply streams
cost no thread and no Redis connection each, and the rest of the app keeps answering."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import psutil
import pytest
import redis as redis_py

from dashboard.callbacks import main_callback_payload
from foundation.extensions import APP_REDIS_CONNECTIONS, db
from tests.foundation.test_devserver import ROOT, _free_port
from tests.foundation.test_supervisor import Browserless
from tutor.users import create_user

STREAMS = 300


def _clients(redis: redis_py.Redis) -> int:
    """Connections to the test's Redis database (the server may be shared with other programs)."""
    db_index = str(redis.connection_pool.connection_kwargs.get("db", 0))
    return sum(1 for c in redis.client_list() if c.get("db") == db_index)


def _thread_names(proc: psutil.Process) -> list[str]:
    names = []
    for t in proc.threads():
        with open(f"/proc/{proc.pid}/task/{t.id}/comm") as f:
            names.append(f.read().strip())
    return names


def _analytics_days() -> None:
    """A session yesterday (rolled up, as the nightly job would) and one today (read live)."""
    from datetime import timedelta

    from analytics.rollup import local_day_bounds, local_today, rollup_range
    from tests.rows import Rows

    rows = Rows()
    today = local_today()
    for day in (today - timedelta(days=1), today):
        start = local_day_bounds(day, "UTC")[0]
        session = rows.session(rows.user(grade=6), start, topics=("fractions",))
        rows.exchange(session, start + timedelta(seconds=5), model="m1", prompt_tokens=10, completion_tokens=20)
    rollup_range(today - timedelta(days=1), today - timedelta(days=1))


def _wait_ready(base: str, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "gunicorn exited"
        try:
            with urllib.request.urlopen(base + "/readyz", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise AssertionError("gunicorn never became ready")


def _open_stream(port: int, path: str, cookie: str) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: {cookie}\r\nAccept: text/event-stream\r\n\r\n".encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(4096)
        assert chunk, "the server closed the stream"
        head += chunk
    assert head.startswith(b"HTTP/1.1 200"), head[:200]
    return sock


def _timed_get(base: str, path: str, opener=None) -> tuple[int, float]:
    started = time.monotonic()
    with (opener or urllib.request.build_opener()).open(base + path, timeout=10) as r:
        r.read()
        return r.status, time.monotonic() - started


@pytest.mark.slow
def test_idle_streams_hold_no_thread_and_the_site_keeps_answering(app, services, tmp_path):
    with app.app_context():
        create_user("ops@school.org", "learning123", role="admin")
        db.session.commit()
        _analytics_days()
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        **services,
        "APP_ENV": "development",
        "WEB_CONCURRENCY": "1",
        "STREAMS_PER_STUDENT": str(STREAMS + 10),
        "STREAM_OPEN_RATE_LIMIT": "100000/minute",
        "PYTHONUNBUFFERED": "1",
    }
    log = open(tmp_path / "gunicorn.log", "w+")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "python:foundation.gunicorn_conf", "--bind", f"127.0.0.1:{port}",
         "app:create_app()"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    sockets: list[socket.socket] = []
    try:
        _wait_ready(base, proc)
        student = Browserless(base)
        student.register("crowd@school.org")
        reply_id = student.ask("How do I add 3/4 + 1/8?")  # no worker runs: the reply waits
        cookie = "; ".join(f"{c.name}={c.value}" for c in student.jar)
        worker = next(p for p in psutil.Process(proc.pid).children() if "gunicorn" in " ".join(p.cmdline()))
        threads_before = worker.num_threads()
        redis = redis_py.Redis.from_url(services["REDIS_URL"])
        clients_before = _clients(redis)

        sockets = [_open_stream(port, f"/api/v1/messages/{reply_id}/stream", cookie) for _ in range(STREAMS)]

        # not one per stream (300): gevent's thread pool (address lookups for new pool connections,
        # password hashing) may grow to its 10 threads when the machine is busy
        assert worker.num_threads() <= threads_before + 15, _thread_names(worker)
        from collections import Counter

        # no Redis connection per stream: the app's client keeps at most APP_REDIS_CONNECTIONS
        assert _clients(redis) <= clients_before + APP_REDIS_CONNECTIONS, Counter(
            c.get("cmd")
            for c in redis.client_list()
            if c.get("db") == str(redis.connection_pool.connection_kwargs["db"])
        )
        latencies = [_timed_get(base, "/healthz")[1] for _ in range(20)]
        assert max(latencies) < 1.0, latencies
        assert _timed_get(base, "/login")[0] == 200
        assert student.call("GET", "/api/v1/sessions")[0] == 200
        admin = Browserless(base)
        status, body = admin.call("POST", "/api/v1/auth/login", {"email": "ops@school.org", "password": "learning123"})
        assert status == 200, body
        for path in ("/admin/analytics/", "/admin/rq/"):
            assert _timed_get(base, path, admin.opener)[0] == 200
        # the dashboard's main callback reads rolled-up days and today's raw rows; psycopg2 is
        # green in these workers and cannot COPY, which the reads must not need
        request = urllib.request.Request(
            base + "/admin/analytics/_dash-update-component",
            data=json.dumps(main_callback_payload("week")).encode(),
            headers={"Content-Type": "application/json", "Origin": base},  # as the page sends it
        )
        with admin.opener.open(request, timeout=30) as response:
            assert response.status == 200
            body = json.loads(response.read())
        assert "no sessions in this range" not in body["response"]["range-label"]["children"]
    finally:
        for sock in sockets:
            sock.close()
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.seek(0)
        output = log.read()
        log.close()
    assert "Traceback" not in output, output[-3000:]
