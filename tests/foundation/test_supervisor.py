"""A run that heals itself: ``python app.py`` restarts what crashes and waits out a Redis outage."""

import json
import signal
import sys
import threading
import time
import urllib.error
import urllib.request
from http.cookiejar import CookieJar

import psutil
import pytest

from foundation import devserver
from tests.foundation.test_devserver import _env, _leftovers, _start, _wait_ready


def test_a_crashed_child_is_restarted_with_backoff(capsys):
    crash = [sys.executable, "-c", "import sys; sys.exit(3)"]
    child = devserver.start_child("worker", crash)
    child.process.wait(10)
    devserver.supervise([child], now=child.started + 5)
    assert "the worker process exited with code 3; restarting it in 1 s" in capsys.readouterr().out
    devserver.supervise([child], now=child.started + 5.5)  # not due yet
    assert child.restart_at is not None
    devserver.supervise([child], now=child.started + 6.1)
    assert child.restart_at is None and "worker restarted" in capsys.readouterr().out
    child.process.wait(10)
    devserver.supervise([child], now=child.started + 1)  # crashed again at once: twice the wait
    assert "restarting it in 2 s" in capsys.readouterr().out
    child.restart_at = None
    child.started -= 120  # ran a long time before crashing: back to the first delay
    devserver.supervise([child], now=child.started + 121)
    assert "restarting it in 1 s" in capsys.readouterr().out


class Browserless:
    """A student speaking to a running server over HTTP (cookies and CSRF token kept)."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.jar = CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))
        self.csrf = ""

    def call(self, method: str, path: str, body: dict | None = None, timeout: float = 10) -> tuple[int, dict | str]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base + path, data=data, method=method)
        request.add_header("Content-Type", "application/json")
        if self.csrf:
            request.add_header("X-CSRF-Token", self.csrf)
        try:
            with self.opener.open(request, timeout=timeout) as response:
                raw = response.read().decode()
                status = response.status
        except urllib.error.HTTPError as exc:
            raw, status = exc.read().decode(), exc.code
        try:
            return status, json.loads(raw)
        except ValueError:
            return status, raw

    def register(self, email: str) -> None:
        status, body = self.call("POST", "/api/v1/auth/register", {"email": email, "password": "learning123"})
        assert status == 201, body
        self.csrf = body["csrf_token"]

    def ask(self, text: str) -> int:
        status, body = self.call("POST", "/api/v1/sessions", {"subject": "mathematics"})
        assert status == 201, body
        status, body = self.call("POST", f"/api/v1/sessions/{body['id']}/messages", {"content": text})
        assert status == 202, body
        return body["reply_id"]

    def reply(self, reply_id: int) -> dict:
        status, body = self.call("GET", f"/api/v1/messages/{reply_id}")
        assert status == 200, body
        return body


def _wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _workers(pid: int) -> list[psutil.Process]:
    out = []
    for p in psutil.Process(pid).children(recursive=False):
        cmd = " ".join(p.cmdline())
        if "worker.py" in cmd and "--scheduler" not in cmd:
            out.append(p)
    return out


@pytest.fixture
def run(tmp_path):
    """``python app.py`` on its own PostgreSQL and Redis, which the test may stop and start."""
    from foundation.embedded import start_postgres, start_redis

    pg = start_postgres(tmp_path / "pg", database="healing")
    redis = start_redis(tmp_path / "redis", persist=True)
    env = _env(
        tmp_path,
        DATABASE_URL=pg.url,
        REDIS_URL=redis.url,
        BUILTIN_CHUNK_DELAY="0.05",
        AI_RETRY_DELAYS="0,0,0",
        MESSAGE_RATE_LIMIT="1000/minute",
        WORKER_PROCESSES="1",  # the reply being streamed is on the one worker the test kills
    )
    proc = _start(env)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
    reader.start()
    state = {"redis": redis, "env": env, "proc": proc, "lines": lines, "tmp": tmp_path}
    try:
        assert _wait_ready(env, proc, timeout=120), "".join(lines)
        yield state
    finally:
        seen = psutil.Process(proc.pid).children(recursive=True) if proc.poll() is None else []
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
        reader.join(10)
        state["redis"].stop()
        pg.stop()
        time.sleep(0.5)
        assert _leftovers(env["INSTANCE_PATH"], seen) == []


def _stream_entries(redis_url: str, reply_id: int) -> int:
    import redis as redis_py

    try:
        return redis_py.Redis.from_url(redis_url, socket_timeout=2).xlen(f"aitutor:reply:{reply_id}")
    except redis_py.RedisError:
        return 0


@pytest.mark.faults
@pytest.mark.slow
def test_worker_killed_under_the_dev_run_is_restarted_and_its_reply_finished_once(run):
    env, proc, lines = run["env"], run["proc"], run["lines"]
    student = Browserless(f"http://127.0.0.1:{env['PORT']}")
    student.register("healing@school.org")
    reply_id = student.ask("How do I add 3/4 + 1/8?")
    _wait_for(lambda: _stream_entries(env["REDIS_URL"], reply_id) >= 5, 30, "the reply to start streaming")
    old = _workers(proc.pid)
    assert len(old) == 1
    for p in [*old[0].children(recursive=True), old[0]]:
        p.kill()  # as the OOM killer would
    _wait_for(lambda: any("restarted" in line for line in lines), 30, "the supervisor to restart the worker")
    assert any("the worker process exited with code -9; restarting it in 1 s" in line for line in lines)
    assert proc.poll() is None  # the run stays up
    done = _wait_for(lambda: (r := student.reply(reply_id))["status"] == "done" and r, 60, "the retried reply")
    assert done["attempts"] == 2
    assert student.call("GET", "/healthz")[0] == 200
    new = _workers(proc.pid)
    assert len(new) == 1 and new[0].pid != old[0].pid


@pytest.mark.faults
@pytest.mark.slow
def test_redis_stopped_for_30_s_under_the_dev_run(run):
    """The run stays up; posts are kept; streams answer 503; every reply finishes once after."""
    from foundation.embedded import start_redis

    env, proc, lines = run["env"], run["proc"], run["lines"]
    student = Browserless(f"http://127.0.0.1:{env['PORT']}")
    student.register("outage@school.org")
    before = student.ask("What is 2 + 5?")
    _wait_for(lambda: student.reply(before)["status"] == "done", 30, "a first reply")

    run["redis"].stop()
    outage_started = time.monotonic()
    during = [student.ask(f"What is {i} + {i + 2}?") for i in range(3)]  # kept in PostgreSQL
    status, body = student.call("GET", f"/api/v1/messages/{during[0]}/stream")
    assert status == 503 and body["error"] == "unavailable"
    assert student.call("GET", "/healthz")[0] == 200
    time.sleep(max(0.0, 30 - (time.monotonic() - outage_started)))
    assert proc.poll() is None
    run["redis"] = start_redis(run["tmp"] / "redis", persist=True)  # same socket, same data

    for reply_id in during:
        _wait_for(lambda r=reply_id: student.reply(r)["status"] == "done", 150, f"reply {reply_id}")
    replies = [student.reply(r) for r in [before, *during]]
    assert [r["attempts"] for r in replies] == [1, 1, 1, 1]
    assert all("stopping everything" not in line for line in lines)
    assert sum("exited with code" in line for line in lines) == 0, "".join(lines[-30:])
