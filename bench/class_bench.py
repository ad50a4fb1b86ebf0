"""Class benchmark: a whole class on ``python app.py`` with its defaults, against a fake LLM.

    .venv/bin/python bench/class_bench.py [--app-dir DIR] [--label baseline] \\
        [--scenarios burst,idle,hog,single] [--students 200] [--idle-streams 1000] [--hog-streams 150]

Every scenario starts a fresh ``python app.py`` (cwd ``--app-dir``, default this checkout) on a
fresh PostgreSQL database ``classbench_<scenario>_<n>`` (created and dropped here) and a
flushed Redis db 11, with AI_PROVIDER=openai pointed at ``bench/fake_llm.py`` (a separate
asyncio process: first token after 0.5 s, 30 tokens 0.03 s apart), MESSAGE_RATE_LIMIT and
REGISTER_RATE_LIMIT raised, PORT/INSTANCE_PATH of its own, and every other setting at the app's default
(WEB_CONCURRENCY, WEB_THREADS, one worker, one scheduler). Clients are asyncio + httpx
(one shared connection pool, each student's cookie and CSRF token sent by hand). /healthz
is probed from threads of its own, a fresh connection per probe, one probe started every
50 ms (at most 20 in flight; a probe that gets no answer in 10 s counts as 10 s). Every process started is stopped in a
finally block. Results: stdout summary and bench/results/class_bench-<label>-<timestamp>.json.

burst   --students students (registered and given a session beforehand, untimed) post one
        message each at the same moment, then each opens its reply stream and reads it to the
        final event.
        replies done        replies whose stream ended with ``event: done`` (of --students)
        overhead from POST  (first ``event: token`` - just before the POST) - 0.5 s (the fake's
                            first-token delay): p50 / p95 / max. Students with no token: left out.
        overhead from 202   the same, measured from the 202 answer
        last reply done     burst start -> last ``done`` event
        provider max conc.  most chat requests in flight at the fake LLM at once
        healthz             p50 / p99 / max probe latency during the burst
        errors              non-2xx answers and client errors, by status / exception
        gave up             streams with no final event 180 s after opening; the burst stops
                            waiting 300 s after its start (--burst-cap) and counts the rest
                            as unfinished.
idle    --idle-streams reply streams held open by ceil(N/3) students (3 each, one session,
        three messages whose last user message carries ``[[delay=900]]``: the fake holds the
        first token, so every reply stays queued/streaming). Streams are opened gradually
        (--idle-rate per second). Then /healthz is probed for 20 s.
        streams             opened (status 200 headers received) / pending (connected, no
                            response yet) / failed (by status or exception)
        web RSS             sum over gunicorn master + workers (the ``python app.py`` process
                            tree) before the streams and with all open; also USS; delta per
                            requested stream in KB
hog     one student opens --hog-streams streams to its own FINISHED reply with
        ``Last-Event-ID: 99999999999999-0`` (nothing after that id ever comes) and re-opens
        each as it closes, for 45 s. Meanwhile /healthz is probed, and a second student posts
        a message and reads its reply to the end.
        victim reply        POST -> ``done`` of the second student's reply (goal <= 10 s;
                            given up after --victim-cap s)
        hog attempts        stream requests by outcome (HTTP status / pending / exception)
                            and how long each stayed open
single  one student, --single-messages sequential messages: t0 before the POST, t1 at the
        first ``event: token``. relay overhead = median(t1 - t0) - median(the fake's own
        first-token time: first content chunk written - request arrival, from its records);
        also against the nominal 0.5 s.

Assumed API: POST /api/v1/auth/register {email,password,display_name} -> 201 + csrf_token and
a session cookie; POST /api/v1/sessions {subject} -> 201 {id}; POST
/api/v1/sessions/<id>/messages {content} -> 202 {reply_id, stream_url}; GET stream_url ->
text/event-stream with ``event: token`` ... ``event: done`` | ``event: error``; writes send
X-CSRF-Token; GET /healthz, GET /readyz.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import http.cookiejar
import json
import math
import os
import platform
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import httpx2 as httpx  # the openai package's HTTP client (httpx API)
import psutil

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
REDIS_URL = "redis://127.0.0.1:6379/11"
PROVIDER_DELAY = 0.5
PROVIDER_TOKENS = 30
PROVIDER_TOKEN_DELAY = 0.03
SUBJECT = "mathematics"
MESSAGE = "How do I add fractions like 1/2 + 1/3?"


def message_for(i: int) -> str:
    """A different question per student (as in a class), so no cache sees the same text twice."""
    return f"How do I add fractions like {1 + i % 9}/{10 + i // 9} + 1/{3 + i % 5}?"


PASSWORD = "bench-password-123"
HOG_LAST_ID = "99999999999999-0"
PROBE_INTERVAL = 0.05
PROBE_TIMEOUT = 10.0
T0 = time.monotonic()


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')} +{time.monotonic() - T0:6.0f}s] {msg}", flush=True)


def pct(values: list[float], p: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    k = (len(s) - 1) * p / 100
    lo, hi = math.floor(k), math.ceil(k)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def summ(values: list[float], scale: float = 1.0, nd: int = 3) -> dict:
    """n, p50, p95, p99, max (scaled, rounded)."""
    if not values:
        return {"n": 0, "p50": None, "p95": None, "p99": None, "max": None}
    r = lambda x: round(x * scale, nd)  # noqa: E731
    return {"n": len(values), "p50": r(pct(values, 50)), "p95": r(pct(values, 95)), "p99": r(pct(values, 99)),
            "max": r(max(values))}  # fmt: skip


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def kill_tree(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.killpg(pid, signal.SIGKILL)  # children of app.py lead their own sessions
        except (ProcessLookupError, PermissionError):
            pass
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


# ----------------------------------------------------------------------------- fake LLM


class FakeLLMProc:
    def __init__(self, logdir: Path) -> None:
        self.logdir = logdir
        self.proc: subprocess.Popen | None = None
        self.port = 0

    def start(self) -> None:
        ready = self.logdir / "fake_llm.port"
        out = open(self.logdir / "fake_llm.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / "fake_llm.py"), "--port", "0", "--ready-file", str(ready),
             "--first-token-delay", str(PROVIDER_DELAY), "--tokens", str(PROVIDER_TOKENS),
             "--token-delay", str(PROVIDER_TOKEN_DELAY)],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if ready.exists() and ready.read_text().strip():
                self.port = int(ready.read_text())
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError("the fake LLM did not start")

    def call(self, method: str, path: str, data: dict | None = None) -> dict:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            body = json.dumps(data).encode() if data is not None else None
            conn.request(method, path, body=body, headers={"Content-Type": "application/json"})
            return json.loads(conn.getresponse().read())
        finally:
            conn.close()

    def reset(self) -> None:
        self.call("POST", "/config", {"first_token_delay": PROVIDER_DELAY, "tokens": PROVIDER_TOKENS,
                                      "token_delay": PROVIDER_TOKEN_DELAY})  # fmt: skip
        self.call("POST", "/reset")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                kill_tree([self.proc.pid])
                self.proc.wait(5)


# ----------------------------------------------------------------------------- the app


class App:
    """``python app.py`` in --app-dir on a fresh database; stopped with its whole tree."""

    def __init__(self, args, name: str, fake_port: int, logdir: Path) -> None:
        self.args, self.name, self.fake_port, self.logdir = args, name, fake_port, logdir
        self.dbname = f"classbench_{name}_{os.getpid()}_{secrets.token_hex(3)}"
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        self.seen: set[int] = set()
        self.log_path = logdir / f"app-{name}.log"

    def env(self, instance: Path) -> dict[str, str]:
        env = dict(os.environ)
        for k in list(env):  # the app's defaults, not whatever this shell exports
            if k in {"APP_ENV", "SECRET_KEY", "WEB_CONCURRENCY", "WEB_THREADS", "LOG_LEVEL", "LOG_FORMAT",
                     "AI_TIMEOUT", "AI_RETRY_DELAYS", "AI_CONTEXT_TOKENS", "CURRICULUM_DIR", "EMBED_SECRET",
                     "METRICS_TOKEN", "TRUSTED_PROXIES", "MESSAGE_MAX_CHARS", "BUILTIN_CHUNK_DELAY",
                     "SESSION_IDLE_MINUTES", "ANALYTICS_LIVE_SECONDS", "PROMETHEUS_MULTIPROC_DIR",
                     "GUNICORN_CMD_ARGS", "VIRTUAL_ENV"} or k.startswith(("OPENAI_", "AI_", "DEMO_")):  # fmt: skip
                env.pop(k)
        env.update(
            DATABASE_URL=f"postgresql://postgres@127.0.0.1:5432/{self.dbname}",
            REDIS_URL=REDIS_URL,
            AI_PROVIDER="openai",
            OPENAI_BASE_URL=f"http://127.0.0.1:{self.fake_port}/v1",
            OPENAI_API_KEY="x",
            AI_MODEL="fake",
            MESSAGE_RATE_LIMIT="1000000/minute",
            REGISTER_RATE_LIMIT="1000000/hour",  # the students all register from this one address
            INSTANCE_PATH=str(instance),
            PORT=str(self.port),
            PYTHONUNBUFFERED="1",
        )
        return env

    def start(self) -> None:
        import psycopg2
        import redis

        redis.Redis.from_url(REDIS_URL).flushdb()
        conn = psycopg2.connect(PG_ADMIN)
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{self.dbname}"')
        conn.close()
        instance = Path(tempfile.mkdtemp(prefix=f"classbench-{self.name}-", dir=self.logdir))
        self._out = open(self.log_path, "wb")  # noqa: SIM115
        self.proc = subprocess.Popen([sys.executable, "app.py"], cwd=self.args.app_dir, env=self.env(instance),
                                     stdout=self._out, stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            self.snapshot()
            if self.proc.poll() is not None:
                raise RuntimeError(f"python app.py exited with {self.proc.returncode}:\n{self.tail()}")
            try:
                c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=3)
                c.request("GET", "/readyz")
                status = c.getresponse().status
                c.close()
                if status == 200:
                    self.snapshot()
                    return
            except OSError:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"/readyz not 200 within 180 s:\n{self.tail()}")

    def tree(self) -> list[psutil.Process]:
        try:
            return psutil.Process(self.proc.pid).children(recursive=True)
        except (psutil.NoSuchProcess, AttributeError):
            return []

    def snapshot(self) -> None:
        for p in self.tree():
            self.seen.add(p.pid)

    def web_memory(self) -> dict:
        rss = uss = 0
        n = 0
        for p in self.tree():
            try:
                if "gunicorn" not in " ".join(p.cmdline()):
                    continue
                mi = p.memory_full_info()
                rss += mi.rss
                uss += mi.uss
                n += 1
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                pass
        return {"processes": n, "rss_mb": round(rss / 2**20, 1), "uss_mb": round(uss / 2**20, 1)}

    def tail(self, n: int = 25) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc is None:
            return
        self.snapshot()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # app.py stops its children (15 s, then SIGKILL)
            try:
                self.proc.wait(25)
            except subprocess.TimeoutExpired:
                pass
        kill_tree([self.proc.pid, *sorted(self.seen)])
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            pass
        self._out.close()
        time.sleep(0.5)
        try:
            import psycopg2

            conn = psycopg2.connect(PG_ADMIN)
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(f'DROP DATABASE IF EXISTS "{self.dbname}" WITH (FORCE)')
            conn.close()
        except Exception as exc:  # noqa: BLE001
            log(f"warning: could not drop {self.dbname}: {exc}")


# ----------------------------------------------------------------------------- /healthz prober


class Prober:
    """GET /healthz every 50 ms from threads of its own, a new connection per probe.

    A probe starts every 50 ms whether or not the previous ones have answered, up to
    ``max_inflight`` at once (then the tick is skipped and counted), so a server that stalls
    still gets a steady sample of probes that each count their real wait (10 s at most)."""

    def __init__(self, port: int, max_inflight: int = 20) -> None:
        self.port = port
        self.max_inflight = max_inflight
        self.samples: list[tuple[float, float, str]] = []  # (t, seconds, outcome)
        self.skipped = 0
        self._inflight = threading.BoundedSemaphore(max_inflight)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._probes: list[threading.Thread] = []

    def _probe(self) -> None:
        t = time.monotonic()
        outcome = "200"
        try:
            c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=PROBE_TIMEOUT)
            c.request("GET", "/healthz")
            r = c.getresponse()
            r.read()
            outcome = str(r.status)
            c.close()
        except TimeoutError:
            outcome = "timeout"
        except OSError as exc:
            outcome = type(exc).__name__
        finally:
            self._inflight.release()
        took = time.monotonic() - t
        if outcome == "timeout":
            took = max(took, PROBE_TIMEOUT)
        self.samples.append((t, took, outcome))

    def _run(self) -> None:
        tick = time.monotonic()
        while not self._stop.is_set():
            if self._inflight.acquire(blocking=False):
                th = threading.Thread(target=self._probe, daemon=True)
                th.start()
                self._probes = [p for p in self._probes if p.is_alive()] + [th]
            else:
                self.skipped += 1
            tick += PROBE_INTERVAL
            self._stop.wait(max(0.0, tick - time.monotonic()))

    def __enter__(self) -> Prober:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        for th in list(self._probes):  # let the probes in flight finish (10 s at most)
            th.join(PROBE_TIMEOUT + 2)

    def summary(self, since: float | None = None, until: float | None = None) -> dict:
        """Probes started in [since, until); call after stop() so the slow ones are in."""
        rows = [s for s in self.samples if (since is None or s[0] >= since) and (until is None or s[0] < until)]
        lat = [s[1] for s in rows]
        out = summ(lat, 1000, 1)
        out = {"n": out["n"], "p50_ms": out["p50"], "p99_ms": out["p99"], "max_ms": out["max"]}
        out["outcomes"] = dict(Counter(s[2] for s in rows))
        out["skipped_ticks_total"] = self.skipped
        return out


# ----------------------------------------------------------------------------- CPU accounting


def _role(proc: psutil.Process, app: App, fake: FakeLLMProc, ours: set[int]) -> str | None:
    """The process's part in the run, or None if it is not ours: web, worker and scheduler must
    descend from the app's ``python app.py`` and PostgreSQL backends serve the run's database
    (other programs on the machine may run gunicorn, workers and PostgreSQL sessions too);
    Redis is the shared server, counted whole."""
    try:
        cmd = " ".join(proc.cmdline())
        name = proc.name()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None
    if proc.pid == os.getpid():
        return "load generator"
    if fake.proc and proc.pid == fake.proc.pid:
        return "fake model"
    if app.proc and proc.pid == app.proc.pid:
        return "app.py"
    if proc.pid in ours:
        if "gunicorn" in cmd:
            return "web"
        if "worker.py" in cmd:
            return "scheduler" if "scheduler" in cmd else "worker"
        return None
    if (name.startswith("postgres") or cmd.startswith("postgres")) and f" {app.dbname} " in f" {cmd} ":
        return "PostgreSQL"
    if name.startswith("redis"):
        return "Redis (shared)"
    return None


def cpu_seconds(app: App, fake: FakeLLMProc) -> dict[int, tuple[str, float]]:
    """CPU seconds (user + system) so far of every process that takes part, by pid."""
    out = {}
    ours: set[int] = set()
    if app.proc:
        try:
            ours = {p.pid for p in psutil.Process(app.proc.pid).children(recursive=True)}
        except psutil.NoSuchProcess:
            pass
    for proc in psutil.process_iter():
        role = _role(proc, app, fake, ours)
        if role is None:
            continue
        try:
            t = proc.cpu_times()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        out[proc.pid] = (role, t.user + t.system)
    return out


def cpu_delta(before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]]) -> dict[str, float]:
    roles: Counter = Counter()
    for pid, (role, secs) in after.items():
        roles[role] += secs - before.get(pid, (role, 0.0))[1]
    return {role: round(secs, 2) for role, secs in roles.most_common()}


# ----------------------------------------------------------------------------- HTTP client


class _NoCookies(http.cookiejar.DefaultCookiePolicy):
    def set_ok(self, cookie, request):  # noqa: ARG002 - each student's cookie is kept by hand
        return False

    def return_ok(self, cookie, request):  # noqa: ARG002
        return False


def make_client(port: int) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{port}",
        limits=httpx.Limits(max_connections=None, max_keepalive_connections=200, keepalive_expiry=3.0),
        timeout=httpx.Timeout(30.0),
        cookies=http.cookiejar.CookieJar(policy=_NoCookies()),
        trust_env=False,
        headers={"User-Agent": "class-bench/1", "Accept": "application/json"},
    )


class HTTPFail(Exception):
    def __init__(self, what: str, detail: str = "") -> None:
        super().__init__(f"{what} {detail}".strip())
        self.what = what


class Student:
    def __init__(self, client: httpx.AsyncClient, n: int, errors: Counter) -> None:
        self.client, self.errors = client, errors
        self.email = f"classbench-{n}-{secrets.token_hex(4)}@example.com"
        self.cookies: dict[str, str] = {}
        self.csrf = ""
        self.session_id = ""

    def headers(self, extra: dict | None = None) -> dict:
        h = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())} if self.cookies else {}
        if self.csrf:
            h["X-CSRF-Token"] = self.csrf
        return {**h, **(extra or {})}

    def keep_cookies(self, resp: httpx.Response) -> None:
        for raw in resp.headers.get_list("set-cookie"):
            pair = raw.split(";", 1)[0]
            if "=" in pair:
                k, v = pair.split("=", 1)
                self.cookies[k.strip()] = v.strip()

    async def call(self, method: str, path: str, data: dict | None, expect: int, timeout: float = 60.0) -> dict:
        try:
            resp = await asyncio.wait_for(
                self.client.request(method, path, json=data, headers=self.headers(), timeout=timeout), timeout + 5
            )
        except (TimeoutError, httpx.HTTPError, OSError) as exc:
            name = "timeout" if isinstance(exc, (httpx.TimeoutException, asyncio.TimeoutError)) else type(exc).__name__
            self.errors[f"{method} {_route(path)}: {name}"] += 1
            raise HTTPFail(name) from exc
        self.keep_cookies(resp)
        if resp.status_code != expect:
            self.errors[f"{method} {_route(path)}: {resp.status_code}"] += 1
            raise HTTPFail(str(resp.status_code), resp.text[:200])
        return resp.json()

    async def register(self) -> None:
        data = await self.call("POST", "/api/v1/auth/register",
                               {"email": self.email, "password": PASSWORD, "display_name": "Bench"}, 201)  # fmt: skip
        self.csrf = data["csrf_token"]

    async def new_session(self) -> str:
        self.session_id = (await self.call("POST", "/api/v1/sessions", {"subject": SUBJECT}, 201))["id"]
        return self.session_id

    async def post(self, content: str, timeout: float = 60.0) -> dict:
        return await self.call("POST", f"/api/v1/sessions/{self.session_id}/messages", {"content": content}, 202,
                               timeout)  # fmt: skip


def _route(path: str) -> str:
    parts = path.split("/")
    return "/".join("<id>" if (p.isdigit() or len(p) == 36) else p for p in parts)


async def read_stream(student: Student, url: str, rec: dict, timeout: float | None,
                      extra_headers: dict | None = None) -> str:  # fmt: skip
    """Read an SSE reply stream; sets rec['t_headers'], ['status'], ['t_first_token'], ['t_done'],
    ['final']. Returns the final event name, or an outcome ('closed', 'timeout', status, exception)."""
    hdrs = student.headers({"Accept": "text/event-stream", **(extra_headers or {})})
    to = httpx.Timeout(connect=10.0, read=None, write=10.0, pool=None)
    try:
        async with asyncio.timeout(timeout):
            async with student.client.stream("GET", url, headers=hdrs, timeout=to) as resp:
                rec["t_headers"] = time.monotonic()
                rec["status"] = resp.status_code
                if resp.status_code != 200:
                    await resp.aread()
                    student.errors[f"GET stream: {resp.status_code}"] += 1
                    return str(resp.status_code)
                buf = b""
                async for chunk in resp.aiter_raw():
                    now = time.monotonic()
                    buf += chunk
                    while b"\n\n" in buf:
                        block, buf = buf.split(b"\n\n", 1)
                        event = None
                        for line in block.split(b"\n"):
                            if line.startswith(b"event:"):
                                event = line[6:].strip().decode()
                        if event == "token" and rec.get("t_first_token") is None:
                            rec["t_first_token"] = now
                        if event in ("done", "error"):
                            rec["t_done"] = now
                            rec["final"] = event
                            if event == "error":
                                student.errors["stream: event error"] += 1
                            return event
                return "closed"
    except TimeoutError:
        return "timeout"
    except (httpx.HTTPError, OSError) as exc:
        student.errors[f"GET stream: {type(exc).__name__}"] += 1
        return type(exc).__name__


async def register_all(client, n: int, errors: Counter, sessions: bool = True, conc: int = 4) -> list[Student]:
    sem = asyncio.Semaphore(conc)
    students = [Student(client, i, errors) for i in range(n)]

    async def one(s: Student) -> None:
        async with sem:
            for attempt in range(3):
                try:
                    if not s.csrf:
                        await s.register()
                    if sessions and not s.session_id:
                        await s.new_session()
                    return
                except HTTPFail:
                    await asyncio.sleep(1 + attempt)

    t = time.monotonic()
    await asyncio.gather(*(one(s) for s in students))
    ok = [s for s in students if s.csrf and (s.session_id or not sessions)]
    log(f"  registered {len(ok)}/{n} students in {time.monotonic() - t:.1f} s")
    return ok


# ----------------------------------------------------------------------------- scenarios


async def burst(args, app: App, fake: FakeLLMProc) -> dict:
    errors: Counter = Counter()
    async with make_client(app.port) as client:
        students = await register_all(client, args.students, errors)
        setup_errors = dict(errors)
        errors.clear()
        fake.reset()
        recs = [{"student": i} for i in range(len(students))]
        cap = args.burst_cap
        with Prober(app.port) as prober:
            await asyncio.sleep(1.0)
            start = time.monotonic()
            gate = asyncio.Event()

            async def one(s: Student, rec: dict) -> None:
                await gate.wait()
                rec["t_post_sent"] = time.monotonic()
                try:
                    data = await s.post(message_for(rec["student"]), timeout=max(1.0, cap - (time.monotonic() - start)))
                except HTTPFail as exc:
                    rec["outcome"] = f"post {exc.what}"
                    return
                rec["t_202"] = time.monotonic()
                left = min(args.stream_timeout, cap - (rec["t_202"] - start))
                out = await read_stream(s, data["stream_url"], rec, max(0.1, left))
                if out == "timeout":
                    out = "gave_up" if left >= args.stream_timeout else "unfinished (burst cap)"
                rec["outcome"] = out

            tasks = [asyncio.create_task(one(s, r)) for s, r in zip(students, recs, strict=True)]
            await asyncio.sleep(0.2)
            log(f"  burst: {len(students)} students post now (cap {cap:.0f} s)")
            cpu_before = cpu_seconds(app, fake)
            start = time.monotonic()
            gate.set()
            last_print = start
            while not all(t.done() for t in tasks):
                await asyncio.sleep(0.5)
                if time.monotonic() - last_print >= 15:
                    last_print = time.monotonic()
                    done = sum(1 for r in recs if r.get("final") == "done")
                    ft = sum(1 for r in recs if r.get("t_first_token"))
                    log(f"  burst +{last_print - start:.0f}s: {ft} first tokens, {done} replies done")
                if time.monotonic() - start > cap + 30:
                    for t in tasks:
                        t.cancel()
                    break
            await asyncio.gather(*tasks, return_exceptions=True)
            end = time.monotonic()
            cpu = cpu_delta(cpu_before, cpu_seconds(app, fake))
            await asyncio.to_thread(prober.stop)
            probe = prober.summary(start, end)
        stats = fake.call("GET", "/stats?records=0")
    for r in recs:
        r.setdefault("outcome", "cancelled (burst cap)")
    done = [r for r in recs if r.get("final") == "done"]
    ov_post = [r["t_first_token"] - r["t_post_sent"] - PROVIDER_DELAY for r in recs if r.get("t_first_token")]
    ov_202 = [r["t_first_token"] - r["t_202"] - PROVIDER_DELAY for r in recs if r.get("t_first_token")]
    lat_202 = [r["t_202"] - r["t_post_sent"] for r in recs if r.get("t_202")]
    res = {
        "students": len(students),
        "replies_done": len(done),
        "first_tokens": len(ov_post),
        "first_token_overhead_from_post_s": summ(ov_post),
        "first_token_overhead_from_202_s": summ(ov_202),
        "post_to_202_s": summ(lat_202),
        "last_reply_done_s": round(max(r["t_done"] for r in done) - start, 2) if done else None,
        "scenario_wall_s": round(end - start, 1),
        "provider_max_concurrency": stats["max_concurrency"],
        "provider_requests": stats["total"],
        "cpu_seconds": cpu,
        "healthz": probe,
        "errors": dict(errors),
        "setup_errors": setup_errors,
        "outcomes": dict(Counter(r["outcome"] for r in recs)),
        "gave_up": sum(1 for r in recs if r["outcome"] == "gave_up"),
        "burst_cap_s": cap,
        "stream_timeout_s": args.stream_timeout,
        "per_student": [
            {k: (round(v - start, 3) if k.startswith("t_") and isinstance(v, float) else v) for k, v in r.items()}
            for r in recs
        ],
    }
    return res


async def idle(args, app: App, fake: FakeLLMProc) -> dict:
    errors: Counter = Counter()
    n = args.idle_streams
    per = 3
    async with make_client(app.port) as client:
        students = await register_all(client, math.ceil(n / per), errors)
        fake.reset()
        msg = f"{MESSAGE} [[delay={args.idle_delay:g}]]"
        sem = asyncio.Semaphore(8)
        urls: list[tuple[Student, str]] = []

        async def post3(s: Student) -> None:
            for _ in range(per):
                async with sem:
                    try:
                        data = await s.post(msg, timeout=30)
                        urls.append((s, data["stream_url"]))
                    except HTTPFail:
                        pass

        t = time.monotonic()
        await asyncio.gather(*(post3(s) for s in students))
        urls = urls[:n]
        log(f"  idle: posted {len(urls)} messages ({per} per student) in {time.monotonic() - t:.1f} s")
        setup_errors = dict(errors)
        errors.clear()
        await asyncio.sleep(2)
        mem_before = app.web_memory()
        log(f"  idle: web memory before streams {mem_before}")
        recs: list[dict] = []
        tasks = []
        start = time.monotonic()
        with Prober(app.port) as prober:
            for i, (s, url) in enumerate(urls):
                rec = {"t_open": time.monotonic()}
                recs.append(rec)
                tasks.append(asyncio.create_task(read_stream(s, url, rec, None)))
                if (i + 1) % 100 == 0:
                    opened = sum(1 for r in recs if r.get("status") == 200)
                    log(f"  idle: {i + 1} streams requested, {opened} answered 200")
                await asyncio.sleep(1.0 / args.idle_rate)
            ramp_end = time.monotonic()
            await asyncio.sleep(3)
            measure_from = time.monotonic()
            log(f"  idle: all {len(urls)} requested; probing /healthz for {args.idle_seconds:.0f} s")
            await asyncio.sleep(args.idle_seconds)
            measure_end = time.monotonic()
            mem_open = app.web_memory()
            outcome = Counter()
            for rec, task in zip(recs, tasks, strict=True):
                if task.done():
                    r = "cancelled" if task.cancelled() else task.exception() or task.result()
                    outcome[f"ended: {r}"] += 1
                elif rec.get("status") == 200:
                    outcome["open (200)"] += 1
                elif "status" in rec:
                    outcome[f"open ({rec['status']})"] += 1
                else:
                    outcome["pending (no response headers)"] += 1
            await asyncio.to_thread(prober.stop)  # streams still open while the last probes finish
            probe = prober.summary(measure_from, measure_end)
            probe_ramp = prober.summary(start, measure_end)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        stats = fake.call("GET", "/stats?records=0")
    still_open = outcome.get("open (200)", 0) + outcome.get("pending (no response headers)", 0)
    delta_mb = mem_open["rss_mb"] - mem_before["rss_mb"]
    return {
        "streams_requested": len(urls),
        "students": len(students),
        "streams": dict(outcome),
        "streams_answered_200": sum(1 for r in recs if r.get("status") == 200),
        "ramp_s": round(ramp_end - start, 1),
        "time_to_headers_s": summ([r["t_headers"] - r["t_open"] for r in recs if "t_headers" in r]),
        "healthz_all_open": probe,
        "healthz_during_ramp_and_hold": probe_ramp,
        "web_memory_before": mem_before,
        "web_memory_all_open": mem_open,
        "web_rss_delta_mb": round(delta_mb, 1),
        "web_rss_kb_per_stream": round(delta_mb * 1024 / still_open, 1) if still_open else None,
        "web_rss_kb_per_200_stream": round(delta_mb * 1024 / outcome["open (200)"], 1)
        if outcome.get("open (200)")
        else None,  # fmt: skip
        "web_uss_kb_per_stream": round((mem_open["uss_mb"] - mem_before["uss_mb"]) * 1024 / still_open, 1)
        if still_open
        else None,  # fmt: skip
        "provider_max_concurrency": stats["max_concurrency"],
        "provider_in_flight_at_end": stats["in_flight"],
        "errors": dict(errors),
        "setup_errors": setup_errors,
        "provider_first_token_delay_s": args.idle_delay,
    }


async def hog(args, app: App, fake: FakeLLMProc) -> dict:
    errors: Counter = Counter()
    async with make_client(app.port) as client:
        hogger, victim = await register_all(client, 2, errors)
        fake.reset()
        data = await hogger.post(MESSAGE)
        rec: dict = {}
        final = await read_stream(hogger, data["stream_url"], rec, 60)
        if final != "done":
            raise RuntimeError(f"the hogging student's own reply ended with {final}")
        hog_url = data["stream_url"]
        log(f"  hog: reply {data['reply_id']} finished; opening {args.hog_streams} streams with "
            f"Last-Event-ID {HOG_LAST_ID} for {args.hog_seconds:.0f} s")  # fmt: skip
        setup_errors = dict(errors)
        errors.clear()
        attempts: list[dict] = []
        start = time.monotonic()
        stop_at = start + args.hog_seconds

        async def hold() -> None:
            while time.monotonic() < stop_at:
                a = {"t_open": time.monotonic()}
                attempts.append(a)
                out = await read_stream(hogger, hog_url, a, max(0.1, stop_at - time.monotonic()),
                                        {"Last-Event-ID": HOG_LAST_ID})  # fmt: skip
                a["t_closed"] = time.monotonic()
                a["outcome"] = out
                if out not in ("timeout",) and time.monotonic() < stop_at:
                    await asyncio.sleep(0.05)

        victim_rec: dict = {}

        async def victim_run() -> None:
            await asyncio.sleep(args.victim_after)
            victim_rec["t0"] = time.monotonic()
            try:
                d = await victim.post(MESSAGE, timeout=args.victim_cap)
            except HTTPFail as exc:
                victim_rec["outcome"] = f"post {exc.what}"
                return
            victim_rec["t_202"] = time.monotonic()
            left = args.victim_cap - (victim_rec["t_202"] - victim_rec["t0"])
            victim_rec["outcome"] = await read_stream(victim, d["stream_url"], victim_rec, max(0.1, left))

        with Prober(app.port) as prober:
            hogs = [asyncio.create_task(hold()) for _ in range(args.hog_streams)]
            vt = asyncio.create_task(victim_run())
            await asyncio.gather(*hogs, return_exceptions=True)
            hog_end = time.monotonic()
            log(f"  hog: {len(attempts)} stream attempts done; waiting for the second student's reply")
            await asyncio.gather(vt, return_exceptions=True)
            await asyncio.to_thread(prober.stop)
            probe = prober.summary(start, hog_end)
    v = victim_rec
    by = Counter()
    durations: dict[str, list[float]] = {}
    for a in attempts:
        key = a.get("outcome", "?")
        if key == "timeout":
            key = f"held to the end ({a['status']})" if "status" in a else "held to the end (no response headers)"
        by[key] += 1
        durations.setdefault(key, []).append(a["t_closed"] - a["t_open"])
    return {
        "hog_streams": args.hog_streams,
        "hog_seconds": args.hog_seconds,
        "hog_attempts": len(attempts),
        "hog_outcomes": dict(by),
        "hog_open_seconds": {k: summ(v_, 1, 2) for k, v_ in durations.items()},
        "hog_statuses": dict(Counter(str(a.get("status", "none")) for a in attempts)),
        "healthz": probe,
        "victim": {
            "outcome": v.get("outcome"),
            "post_to_202_s": round(v["t_202"] - v["t0"], 3) if "t_202" in v else None,
            "post_to_first_token_s": round(v["t_first_token"] - v["t0"], 3) if v.get("t_first_token") else None,
            "post_to_done_s": round(v["t_done"] - v["t0"], 3) if v.get("t_done") else None,
            "done_after_hog_ended": bool(v.get("t_done") and v["t_done"] > hog_end),
            "cap_s": args.victim_cap,
        },
        "errors": dict(errors),
        "setup_errors": setup_errors,
    }


async def single(args, app: App, fake: FakeLLMProc) -> dict:
    errors: Counter = Counter()
    async with make_client(app.port) as client:
        (s,) = await register_all(client, 1, errors)
        d = await s.post(MESSAGE)  # warm-up (connections, first job)
        await read_stream(s, d["stream_url"], {}, 60)
        fake.reset()
        rows = []
        for i in range(args.single_messages):
            rec: dict = {"t0": time.monotonic()}
            try:
                d = await s.post(MESSAGE, timeout=30)
                rec["t_202"] = time.monotonic()
                rec["outcome"] = await read_stream(s, d["stream_url"], rec, 60)
            except HTTPFail as exc:
                rec["outcome"] = f"post {exc.what}"
            rows.append(rec)
            if (i + 1) % 5 == 0:
                log(f"  single: {i + 1}/{args.single_messages}")
        stats = fake.call("GET", "/stats")
    t1 = [r["t_first_token"] - r["t0"] for r in rows if r.get("t_first_token")]
    prov = [q["first_token"] - q["arrival"] for q in stats["requests"] if q.get("first_token")]
    m_t1 = statistics.median(t1) if t1 else None
    m_prov = statistics.median(prov) if prov else None
    return {
        "messages": len(rows),
        "first_tokens": len(t1),
        "median_post_to_first_token_ms": round(m_t1 * 1000, 1) if t1 else None,
        "median_provider_first_token_ms": round(m_prov * 1000, 1) if prov else None,
        "relay_overhead_ms": round((m_t1 - m_prov) * 1000, 1) if t1 and prov else None,
        "relay_overhead_vs_nominal_ms": round((m_t1 - PROVIDER_DELAY) * 1000, 1) if t1 else None,
        "post_to_202_ms": summ([r["t_202"] - r["t0"] for r in rows if "t_202" in r], 1000, 1),
        "post_to_done_ms": summ([r["t_done"] - r["t0"] for r in rows if r.get("t_done")], 1000, 1),
        "post_to_first_token_ms": summ(t1, 1000, 1),
        "provider_requests": len(prov),
        "outcomes": dict(Counter(r["outcome"] for r in rows)),
        "errors": dict(errors),
    }


SCENARIOS = {"burst": burst, "idle": idle, "hog": hog, "single": single}


# ----------------------------------------------------------------------------- report


def git_commit(path: str) -> str:
    try:
        c = subprocess.run(["git", "-C", path, "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                           timeout=10).stdout.strip()  # fmt: skip
        dirty = subprocess.run(["git", "-C", path, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()  # fmt: skip
        return c + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "?"


def fmt(x, unit: str = "", nd: int = 2) -> str:
    return "-" if x is None else f"{x:.{nd}f}{unit}" if isinstance(x, float) else f"{x}{unit}"


def hz(p: dict) -> str:
    return (f"p50 {fmt(p['p50_ms'], ' ms', 1)}, p99 {fmt(p['p99_ms'], ' ms', 1)}, max {fmt(p['max_ms'], ' ms', 1)}"
            f" ({p['n']} probes {p['outcomes']})")  # fmt: skip


def print_summary(result: dict) -> None:
    m = result["machine"]
    print(f"\nClass benchmark '{result['label']}' {result['timestamp']}: app {result['app_dir']} @ {m['git_commit']}, "
          f"{m['cpus']} CPUs, load {m['loadavg_start'][0]:.2f} -> {m.get('loadavg_end', [0])[0]:.2f}")  # fmt: skip
    sc = result["scenarios"]
    if "burst" in sc and "error" not in sc["burst"]:
        b = sc["burst"]
        o, o2 = b["first_token_overhead_from_post_s"], b["first_token_overhead_from_202_s"]
        print(f"\nburst ({b['students']} students at once, cap {b['burst_cap_s']:.0f} s)")
        print(f"  replies done            {b['replies_done']}/{b['students']}  (first tokens {b['first_tokens']})")
        print(f"  first-token overhead    from POST p50 {fmt(o['p50'], ' s')}  p95 {fmt(o['p95'], ' s')}  "
              f"max {fmt(o['max'], ' s')}")  # fmt: skip
        print(f"                          from 202  p50 {fmt(o2['p50'], ' s')}  p95 {fmt(o2['p95'], ' s')}  "
              f"max {fmt(o2['max'], ' s')}")  # fmt: skip
        print(
            f"  POST -> 202             p50 {fmt(b['post_to_202_s']['p50'], ' s')}  max {fmt(b['post_to_202_s']['max'], ' s')}"
        )
        print(f"  last reply done         {fmt(b['last_reply_done_s'], ' s')} after the burst start")
        print(f"  provider max concurrency {b['provider_max_concurrency']}")
        print(f"  healthz                 {hz(b['healthz'])}")
        cpu = b.get("cpu_seconds", {})
        print(f"  CPU seconds             {sum(cpu.values()):.1f} in all: "
              + ", ".join(f"{k} {v:.2f}" for k, v in cpu.items()))  # fmt: skip
        print(f"  outcomes                {b['outcomes']}")
        print(
            f"  errors                  {b['errors'] or 'none'}; gave up ({b['stream_timeout_s']:.0f} s): {b['gave_up']}"
        )
    if "idle" in sc and "error" not in sc["idle"]:
        d = sc["idle"]
        print(f"\nidle ({d['streams_requested']} streams by {d['students']} students, {d['ramp_s']} s ramp)")
        print(f"  streams                 {d['streams']}  (answered 200 at some point: {d['streams_answered_200']})")
        print(f"  healthz, all open       {hz(d['healthz_all_open'])}")
        print(f"  web memory              before {d['web_memory_before']}  all open {d['web_memory_all_open']}")
        print(f"  per held stream         RSS {fmt(d['web_rss_kb_per_stream'], ' KB', 1)}, "
              f"USS {fmt(d['web_uss_kb_per_stream'], ' KB', 1)} (delta {d['web_rss_delta_mb']} MB over open + pending; "
              f"RSS per 200 stream {fmt(d['web_rss_kb_per_200_stream'], ' KB', 1)})")  # fmt: skip
        print(f"  provider max concurrency {d['provider_max_concurrency']}; errors {d['errors'] or 'none'}")
    if "hog" in sc and "error" not in sc["hog"]:
        h = sc["hog"]
        v = h["victim"]
        print(f"\nhog ({h['hog_streams']} streams on a finished reply, {h['hog_seconds']:.0f} s)")
        print(f"  healthz                 {hz(h['healthz'])}")
        print(f"  second student's reply  POST->done {fmt(v['post_to_done_s'], ' s')} (goal <= 10 s; "
              f"POST->202 {fmt(v['post_to_202_s'], ' s')}, outcome {v['outcome']}, "
              f"after hog ended: {v['done_after_hog_ended']})")  # fmt: skip
        print(f"  hog attempts            {h['hog_attempts']}: {h['hog_outcomes']}")
        for k, s in h["hog_open_seconds"].items():
            print(f"    {k:38s} open p50 {fmt(s['p50'], ' s')} max {fmt(s['max'], ' s')} (n {s['n']})")
    if "single" in sc and "error" not in sc["single"]:
        s = sc["single"]
        print(f"\nsingle ({s['messages']} sequential messages)")
        print(f"  median POST->first token {fmt(s['median_post_to_first_token_ms'], ' ms', 1)}; provider's own "
              f"{fmt(s['median_provider_first_token_ms'], ' ms', 1)}")  # fmt: skip
        print(f"  relay overhead          {fmt(s['relay_overhead_ms'], ' ms', 1)} "
              f"(vs nominal 0.5 s: {fmt(s['relay_overhead_vs_nominal_ms'], ' ms', 1)})")  # fmt: skip
    for name, r in sc.items():
        if "error" in r:
            print(f"\n{name}: FAILED: {r['error']}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--app-dir", default=str(ROOT), help="checkout whose app.py runs (default: this one)")
    p.add_argument("--label", default="run", help="goes into the JSON file name, e.g. baseline / new")
    p.add_argument("--scenarios", default="burst,idle,hog,single")
    p.add_argument("--students", type=int, default=200, help="burst: students (200)")
    p.add_argument("--burst-cap", type=float, default=300.0, help="burst: stop waiting after this many s (300)")
    p.add_argument("--stream-timeout", type=float, default=180.0, help="burst: a student gives up after (180 s)")
    p.add_argument("--idle-streams", type=int, default=1000, help="idle: streams to open (1000)")
    p.add_argument("--idle-rate", type=float, default=50.0, help="idle: streams opened per second (50)")
    p.add_argument("--idle-seconds", type=float, default=20.0, help="idle: probing time with all open (20)")
    p.add_argument("--idle-delay", type=float, default=900.0, help="idle: fake first-token delay (900 s)")
    p.add_argument("--hog-streams", type=int, default=150, help="hog: streams (150)")
    p.add_argument("--hog-seconds", type=float, default=45.0, help="hog: duration (45 s)")
    p.add_argument("--victim-after", type=float, default=3.0, help="hog: second student posts after (3 s)")
    p.add_argument("--victim-cap", type=float, default=90.0, help="hog: second student gives up after (90 s)")
    p.add_argument("--single-messages", type=int, default=20)
    args = p.parse_args(argv)
    args.app_dir = str(Path(args.app_dir).resolve())
    names = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    bad = [n for n in names if n not in SCENARIOS]
    if bad:
        p.error(f"unknown scenario(s): {bad}")
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 65536)), hard))
    except (ImportError, ValueError, OSError):
        pass

    def _term(signum, frame):  # noqa: ARG001 - SIGTERM runs the finally blocks too
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _term)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"class_bench-{args.label}-{stamp}.json"
    result: dict = {
        "label": args.label,
        "timestamp": stamp,
        "app_dir": args.app_dir,
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "git_commit": git_commit(args.app_dir),
            "loadavg_start": os.getloadavg(),
        },  # fmt: skip
        "settings": {k: v for k, v in vars(args).items()}
        | {
            "provider": {
                "first_token_delay_s": PROVIDER_DELAY,
                "tokens": PROVIDER_TOKENS,
                "token_delay_s": PROVIDER_TOKEN_DELAY,
            },
            "app_env": "python app.py defaults + DATABASE_URL, REDIS_URL db 11, AI_PROVIDER=openai (fake), "
            "MESSAGE_RATE_LIMIT=1000000/minute, REGISTER_RATE_LIMIT=1000000/hour, INSTANCE_PATH, PORT",
        },  # fmt: skip
        "scenarios": {},
    }
    logdir = Path(tempfile.mkdtemp(prefix="class-bench-"))
    fake = FakeLLMProc(logdir)
    log(f"class bench '{args.label}': app {args.app_dir} @ {result['machine']['git_commit']}; "
        f"scenarios {names}; logs in {logdir}")  # fmt: skip
    try:
        fake.start()
        log(f"fake LLM on port {fake.port}")
        for name in names:
            app = App(args, name, fake.port, logdir)
            log(f"== {name}: starting python app.py (database {app.dbname}, port {app.port})")
            t = time.monotonic()
            try:
                app.start()
                log(f"  app ready in {time.monotonic() - t:.1f} s")
                res = asyncio.run(SCENARIOS[name](args, app, fake))
                res["app_log_tail"] = app.tail(15).splitlines()
            except Exception as exc:  # noqa: BLE001 - report it and go on with the next scenario
                log(f"  {name} FAILED: {type(exc).__name__}: {exc}")
                res = {"error": f"{type(exc).__name__}: {exc}", "app_log_tail": app.tail(30).splitlines()}
            finally:
                log(f"  stopping the app ({name})")
                app.stop()
                try:
                    import redis

                    redis.Redis.from_url(REDIS_URL).flushdb()
                except Exception:  # noqa: BLE001
                    pass
            res["wall_s"] = round(time.monotonic() - t, 1)
            result["scenarios"][name] = res
            out.write_text(json.dumps(result, indent=1) + "\n")  # partial results survive a crash
            log(f"== {name} finished in {res['wall_s']:.0f} s")
    finally:
        fake.stop()
        result["machine"]["loadavg_end"] = os.getloadavg()
        out.write_text(json.dumps(result, indent=1) + "\n")
    print_summary(result)
    print(f"\nJSON: {out}\napp logs: {logdir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
