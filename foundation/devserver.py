"""``python app.py``: the one-command run.

With no ``DATABASE_URL`` / ``REDIS_URL`` it starts embedded PostgreSQL and Redis (data kept
under the instance folder), applies migrations, loads a demo data set on the first run and
prints the demo admin's login. It then supervises its child processes (gunicorn, the RQ
workers, rq-scheduler): one that crashes is restarted with backoff (1 s doubling to 30 s) and
said so in one line; only Ctrl-C or SIGTERM (or a web server that cannot start) stops them
all, and the embedded servers.
"""

from __future__ import annotations

import ctypes
import errno
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .config import PROJECT_ROOT, ConfigError, Settings, load_settings

STOP_TIMEOUT_S = 15.0


def say(message: str) -> None:
    print(f"[aitutor] {message}", flush=True)


class Stop(Exception):
    """Raised by the SIGTERM handler so that SIGTERM and Ctrl-C share one clean-up path."""


def _on_sigterm(signum, frame) -> None:  # noqa: ARG001
    raise Stop()


def _die_with_parent() -> None:
    """Linux: a child gets SIGTERM if the supervisor itself is killed (no orphans)."""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        except OSError:
            pass


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return False
            raise
    return True


@dataclass
class Child:
    name: str
    args: list[str]
    process: subprocess.Popen
    started: float = 0.0
    restarts: int = 0
    restart_at: float | None = None  # when a crashed child is due to start again
    niceness: int = 0

    def start(self) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        nice = self.niceness

        def setup() -> None:
            _die_with_parent()
            if nice:
                os.nice(nice)

        self.process = subprocess.Popen(self.args, cwd=PROJECT_ROOT, env=env, start_new_session=True, preexec_fn=setup)
        self.started = time.monotonic()
        self.restart_at = None


def start_child(name: str, args: list[str], niceness: int = 0) -> Child:
    child = Child(name, args, process=None, niceness=niceness)  # type: ignore[arg-type]
    child.start()
    return child


#: Workers run at a lower CPU priority than the web server on the one machine of the dev run:
#: under a burst, pages, posts and /healthz keep answering while replies use the spare CPU.
WORKER_NICENESS = 5


#: Backoff between restarts of a crashed child: 1 s, doubling to 30 s; back to 1 s once a child
#: has run for a minute.
RESTART_FIRST_S, RESTART_MAX_S, RESTART_RESET_S = 1.0, 30.0, 60.0


def supervise(children: list[Child], now: float | None = None) -> None:
    """Restart crashed children with backoff, saying so in one line each time."""
    now = time.monotonic() if now is None else now
    for child in children:
        if child.restart_at is not None:
            if now >= child.restart_at:
                child.start()
                say(f"{child.name} restarted (pid {child.process.pid})")
            continue
        code = child.process.poll()
        if code is None:
            continue
        if now - child.started >= RESTART_RESET_S:
            child.restarts = 0
        delay = min(RESTART_FIRST_S * 2**child.restarts, RESTART_MAX_S)
        child.restarts += 1
        child.restart_at = now + delay
        say(f"the {child.name} process exited with code {code}; restarting it in {delay:.0f} s")


def stop_children(children: list[Child]) -> None:
    for child in children:
        if child.process.poll() is None:
            # gunicorn stops at once on SIGINT (open reply streams would hold a SIGTERM for its
            # graceful timeout); the workers finish or hand back their jobs on SIGTERM.
            child.process.send_signal(signal.SIGINT if child.name == "web" else signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    for child in children:
        try:
            child.process.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            say(f"{child.name} did not stop in {STOP_TIMEOUT_S:.0f} s; killing it")
            os.killpg(child.process.pid, signal.SIGKILL)
            child.process.wait()


def wait_ready(url: str, web: Child, timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if web.process.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(0.3)
    return False


def main(prepare: Callable[[Settings, Path], str | None]) -> int:
    """Run everything; ``prepare`` migrates and loads demo data (``app.py`` passes it) and
    returns a line to print once the app is up (the demo admin's login), or None."""
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    instance = Path(settings.INSTANCE_PATH)
    instance.mkdir(parents=True, exist_ok=True)
    if not port_free(settings.PORT):
        print(
            f"error: port {settings.PORT} is already in use; stop the program using it or choose another, "
            f"e.g. PORT={settings.PORT + 1} python app.py",
            file=sys.stderr,
        )
        return 1

    signal.signal(signal.SIGTERM, _on_sigterm)
    stops: list = []
    children: list[Child] = []
    try:
        if settings.embedded:
            from .embedded import start_postgres, start_redis, write_services_file

            say(f"starting embedded PostgreSQL and Redis (data in {instance})")
            pg = start_postgres(instance / "postgres")
            stops.append(pg.stop)
            redis = start_redis(instance / "redis")
            stops.append(redis.stop)
            os.environ["DATABASE_URL"] = pg.url
            os.environ["REDIS_URL"] = redis.url
            write_services_file(instance, pg.url, redis.url)
        elif not settings.DATABASE_URL or not settings.REDIS_URL:
            missing = "DATABASE_URL" if not settings.DATABASE_URL else "REDIS_URL"
            print(
                f"error: {missing} is not set; set both DATABASE_URL and REDIS_URL, or neither to use embedded servers.",
                file=sys.stderr,
            )
            return 2
        else:
            problem = _unreachable(settings)
            if problem:
                print(f"error: {problem}", file=sys.stderr)
                return 1

        try:
            login_line = prepare(settings, instance)
        except ConfigError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2

        python = sys.executable
        children.append(
            start_child(
                "web",
                [
                    python,
                    "-m",
                    "gunicorn",
                    "-c",
                    "python:foundation.gunicorn_conf",
                    "--bind",
                    f"127.0.0.1:{settings.PORT}",
                    "app:create_app()",
                ],
            )
        )
        # One worker takes every queue; on a machine with cores to spare beside the web server,
        # more take tutor replies (each has its own GIL). On two cores a second worker starts
        # replies sooner but starves the web server: /healthz p99 went from 0.3 s to 1.5-3 s.
        workers = settings.WORKER_PROCESSES or max(1, min(4, (os.cpu_count() or 1) - 1))
        children.append(start_child("worker", [python, "worker.py"], WORKER_NICENESS))
        for n in range(2, workers + 1):
            children.append(start_child(f"worker {n}", [python, "worker.py", "--queues", "ai"], WORKER_NICENESS))
        children.append(start_child("scheduler", [python, "worker.py", "--scheduler"]))

        base = f"http://127.0.0.1:{settings.PORT}"
        if not wait_ready(base + "/readyz", children[0]):
            say("the web server did not become ready; stopping")
            return 1
        say(f"AI Tutor is running at {base}/  (analytics: {base}/admin/analytics/)")
        if login_line:
            say(login_line)
        say("press Ctrl-C to stop")
        while True:  # a crashed web server, worker or scheduler is restarted; only Ctrl-C stops
            supervise(children)
            time.sleep(0.5)
    except (KeyboardInterrupt, Stop):
        say("stopping")
        return 0
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stop_children(children)
        for stop in reversed(stops):
            stop()
        if settings.embedded:
            from .embedded import remove_services_file

            remove_services_file(instance)
        say("stopped")


def _unreachable(settings: Settings) -> str | None:
    """Check each configured service with a short timeout; one line naming the one that fails."""
    import redis
    from sqlalchemy import create_engine, text

    engine = create_engine(settings.DATABASE_URL, connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:  # noqa: BLE001 - any failure means "unreachable" here
        reason = str(getattr(exc, "orig", exc)).strip().splitlines()[0]
        return f"cannot reach PostgreSQL at DATABASE_URL ({reason}); check the URL and that the server runs."
    finally:
        engine.dispose()
    try:
        redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=3, socket_timeout=3).ping()
    except Exception as exc:  # noqa: BLE001
        return f"cannot reach Redis at REDIS_URL ({exc}); check the URL and that the server runs."
    return None
