"""API benchmark: message-post throughput against a bare Flask app, and time to first token.

    python bench/api_bench.py --database-url postgresql://postgres@127.0.0.1:5432/aitutor_apibench \\
        --redis-url redis://127.0.0.1:6379/12 --duration 10 --rounds 3

1. Prepares the database (DROP/CREATE SCHEMA public, ``flask db upgrade``) and creates a
   student. The database name must contain "bench" (or pass --force): it is wiped.
2. Throughput, side by side: the real app (``gunicorn -c python:foundation.gunicorn_conf
   'app:create_app()'``, the Procfile's web process) and ``bench/bare_app.py`` (one trivial
   JSON route) under the same gunicorn settings, loaded by the same ``wrk`` script
   (``bench/api_bench.lua``) with the same connections, alternating A/B for --rounds rounds.
   Each message post really runs: login cookie + CSRF check, session lookup, rate-limit
   INCR in Redis, one transaction inserting the message and its queued reply (plus topics),
   and the RQ enqueue. No worker runs; Redis is flushed before every message-post run and
   the queued jobs are counted afterwards against wrk's 202s.
3. Time to first token: a ScriptedOpenAI server (first_token_delay 0.2 s), the web process
   and one real ``python worker.py`` with AI_PROVIDER=openai. For each of --messages
   sequential messages: t0 just before the POST, t1 when the first ``event: token`` arrives on
   the SSE stream opened right after the 202. Interleaved with those, the provider's own
   TTFT measured directly with the ``openai`` client. Overhead = median(t1-t0) - median(provider
   TTFT). Then, side by side, the same openai messages with ``python worker.py
   --fork-every-job`` (every reply in a forked work horse, RQ's default; the worker otherwise
   runs replies in its own process), unless --skip-fork-every-job, and the builtin provider
   (--builtin-messages, 0 to skip).
4. Prints a summary and writes bench/results/api_bench-<timestamp>.json. Every process it
   starts is stopped in a finally block.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
RESULTS = BENCH / "results"
LUA = BENCH / "api_bench.lua"
BIN = Path(sys.executable).parent
UA = "api-bench/1"
STUDENT_EMAIL = "bench-student@example.com"
STUDENT_PASSWORD = "bench-password-123"
SUBJECT = "mathematics"
MESSAGE = "How do I add fractions like 1/2 + 1/3?"
RATE_LIMIT = "1000000/minute"
GUNICORN_CONF = "python:foundation.gunicorn_conf"

sys.path.insert(0, str(ROOT))


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ----------------------------------------------------------------------------- processes


class Procs:
    """Every process this script starts, each in its own session; stopped by pid."""

    def __init__(self, logdir: Path) -> None:
        self.logdir = logdir
        self.running: dict[str, subprocess.Popen] = {}

    def start(self, name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen:
        out = open(self.logdir / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        proc._bench_log = out  # type: ignore[attr-defined]
        self.running[name] = proc
        return proc

    def stop(self, name: str, grace: float = 25.0) -> None:
        proc = self.running.pop(name, None)
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)  # gunicorn: graceful stop; RQ: warm shutdown
            try:
                proc.wait(grace)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)  # its own process group (start_new_session)
                except ProcessLookupError:
                    pass
                proc.wait(5)
        # children (gunicorn workers, RQ work horses) share the group; make sure none is left
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        proc._bench_log.close()  # type: ignore[attr-defined]

    def stop_all(self) -> None:
        for name in list(self.running):
            self.stop(name, grace=10.0)

    def tail(self, name: str, lines: int = 30) -> str:
        path = self.logdir / f"{name}.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def wait_http(port: int, method: str, path: str, proc: subprocess.Popen, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before answering on port {port}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request(method, path, body=b"{}" if method == "POST" else None,
                         headers={"Content-Type": "application/json"})  # fmt: skip
            status = conn.getresponse().status
            conn.close()
            if status < 500:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"nothing answered {method} {path} on port {port} within {timeout:.0f} s")


def gunicorn_argv(app_spec: str, config: str, access_log: str) -> list[str]:
    argv = [str(BIN / "gunicorn"), "-c", config]
    if access_log == "devnull":
        argv += ["--access-logfile", os.devnull]
    return argv + [app_spec]


def write_quiet_config(tmp: Path) -> str:
    """The Procfile's config module with only the access log switched off.

    gunicorn cannot switch a configured access log off from the command line
    (``--access-logfile ''`` is refused), so this file star-imports foundation.gunicorn_conf
    and overrides ``accesslog``; every other setting is the module's own.
    """
    path = tmp / "gunicorn_quiet.py"
    path.write_text("from foundation.gunicorn_conf import *  # noqa: F403\n\naccesslog = None\n")
    return str(path)


# ----------------------------------------------------------------------------- HTTP client


class Client:
    """Keep-alive JSON client holding the session cookie and CSRF token."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        self.cookie = ""
        self.csrf = ""

    def call(self, method: str, path: str, data: dict | None = None) -> tuple[int, dict, http.client.HTTPResponse]:
        headers = {"User-Agent": UA, "Accept": "application/json"}
        body = None
        if data is not None:
            body = json.dumps(data).encode()
            headers["Content-Type"] = "application/json"
        if self.cookie:
            headers["Cookie"] = self.cookie
        if self.csrf:
            headers["X-CSRF-Token"] = self.csrf
        for attempt in (1, 2):
            try:
                self.conn.request(method, path, body=body, headers=headers)
                resp = self.conn.getresponse()
                raw = resp.read()
                break
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                self.conn.close()  # keep-alive timed out server-side; reconnect once
                if attempt == 2:
                    raise
        cookie = resp.getheader("Set-Cookie")
        if cookie:
            self.cookie = cookie.split(";", 1)[0]
        return resp.status, (json.loads(raw) if raw else {}), resp

    def login(self) -> None:
        status, data, _ = self.call(
            "POST", "/api/v1/auth/login", {"email": STUDENT_EMAIL, "password": STUDENT_PASSWORD}
        )
        if status != 200:
            raise RuntimeError(f"login failed: {status} {data}")
        self.csrf = data["csrf_token"]

    def new_session(self) -> str:
        status, data, _ = self.call("POST", "/api/v1/sessions", {"subject": SUBJECT})
        if status != 201:
            raise RuntimeError(f"creating a session failed: {status} {data}")
        return data["id"]

    def close(self) -> None:
        self.conn.close()


def first_token(port: int, path: str, cookie: str, timeout: float = 30.0) -> tuple[float, float, str]:
    """Open the SSE stream on a raw socket (no client-side buffering); return
    (time of the first ``event: token``, time of the final event, final event name)."""
    deadline = time.perf_counter() + timeout
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.sendall(
            (
                f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept: text/event-stream\r\n"
                f"Cookie: {cookie}\r\nUser-Agent: {UA}\r\nConnection: close\r\n\r\n"
            ).encode()
        )
        buf = b""
        t_first = None
        while True:
            chunk = sock.recv(65536)
            now = time.perf_counter()
            if not chunk:
                raise RuntimeError(f"stream closed early: {buf[:300]!r}")
            if now > deadline:  # keep-alive comments arrive, but no reply
                raise RuntimeError(f"no final event within {timeout:.0f} s: {buf[-300:]!r}")
            buf += chunk
            if not buf.startswith(b"HTTP/1.1 200"):
                if b"\r\n" in buf:
                    status_line = buf.split(b"\r\n", 1)[0]
                    raise RuntimeError(f"stream answered {status_line!r}")
                continue
            if t_first is None and b"event: token\n" in buf:
                t_first = now
            if b"event: error\n" in buf:
                return t_first or now, now, "error"
            if b"event: done\n" in buf:
                return t_first or now, now, "done"
    finally:
        sock.close()


# ----------------------------------------------------------------------------- setup


def check_targets(args: argparse.Namespace) -> None:
    db = urlsplit(args.database_url)
    dbname = db.path.lstrip("/")
    if "bench" not in dbname and not args.force:
        raise SystemExit(f"error: refusing to wipe database {dbname!r}: its name has no 'bench' (use --force)")
    r = urlsplit(args.redis_url)
    if (r.path.strip("/") or "0") == "0" and not args.force:
        raise SystemExit("error: refusing to FLUSHDB Redis database 0; name another one, e.g. redis://host:6379/12")


def libpq_url(url: str) -> str:
    return re.sub(r"^postgres(ql)?(\+psycopg2)?://", "postgresql://", url.strip())


def prepare_database(args: argparse.Namespace, env: dict[str, str]) -> None:
    import psycopg2

    url = libpq_url(args.database_url)
    parts = urlsplit(url)
    dbname = parts.path.lstrip("/")
    try:
        conn = psycopg2.connect(url)
    except psycopg2.OperationalError as exc:
        if "does not exist" not in str(exc):
            raise
        admin = psycopg2.connect(parts._replace(path="/postgres").geturl())
        admin.autocommit = True
        with admin.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{dbname}"')
        admin.close()
        conn = psycopg2.connect(url)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("DROP SCHEMA IF EXISTS public CASCADE")
        cur.execute("CREATE SCHEMA public")
    conn.close()
    flask = [str(BIN / "flask"), "--app", "app"]
    subprocess.run([*flask, "db", "upgrade"], cwd=ROOT, env=env, check=True, capture_output=True)
    subprocess.run(
        [*flask, "users", "create", "--email", STUDENT_EMAIL, "--password", STUDENT_PASSWORD, "--role", "student"],
        cwd=ROOT, env=env, check=True, capture_output=True,
    )  # fmt: skip


def base_env(args: argparse.Namespace, instance: Path) -> dict[str, str]:
    env = dict(os.environ)
    for name in ("AI_PROVIDER", "OPENAI_BASE_URL", "OPENAI_API_KEY", "AI_MODEL", "EMBED_SECRET", "APP_ENV"):
        env.pop(name, None)
    env.update(
        DATABASE_URL=args.database_url,
        REDIS_URL=args.redis_url,
        INSTANCE_PATH=str(instance),
        SECRET_KEY=secrets.token_hex(32),
        LOG_LEVEL="WARNING",
        MESSAGE_RATE_LIMIT=RATE_LIMIT,
        PYTHONUNBUFFERED="1",
    )
    return env


def redis_conn(url: str):
    import redis

    return redis.Redis.from_url(url)


# ----------------------------------------------------------------------------- throughput


def run_wrk(args: argparse.Namespace, port: int, seconds: float, env_extra: dict[str, str]) -> dict:
    env = dict(os.environ, **env_extra)
    argv = [
        args.wrk, f"-t{args.wrk_threads}", f"-c{args.connections}", f"-d{seconds:g}s", "--timeout", "10s",
        "-s", str(LUA), f"http://127.0.0.1:{port}",
    ]  # fmt: skip
    out = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=seconds + 60)
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("BENCH_JSON ")), None)
    if out.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({out.returncode}): {out.stdout[-800:]} {out.stderr[-800:]}")
    res = json.loads(line[len("BENCH_JSON ") :])
    res["rps"] = res["requests"] / (res["duration_us"] / 1e6)
    sock = res["socket_errors"]
    res["errors"] = res["unexpected_status"] + sock["connect"] + sock["read"] + sock["write"] + sock["timeout"]
    return res


def throughput(args, procs: Procs, env: dict[str, str], config: str, result: dict) -> None:
    from rq import Queue

    app_port, bare_port = args.port, args.port + 1
    log(f"starting gunicorn: app on :{app_port}, bare on :{bare_port}")
    app_proc = procs.start(
        "web-app", gunicorn_argv("app:create_app()", config, args.access_log), dict(env, PORT=str(app_port))
    )
    bare_proc = procs.start(
        "web-bare",
        gunicorn_argv("bench.bare_app:create_app()", config, args.access_log),
        dict(env, PORT=str(bare_port)),
    )
    wait_http(app_port, "GET", "/healthz", app_proc)
    wait_http(bare_port, "POST", "/ping", bare_proc)

    client = Client(app_port)
    client.login()
    sessions = [client.new_session() for _ in range(args.sessions)]
    paths = [f"/api/v1/sessions/{s}/messages" for s in sessions]
    body = json.dumps({"content": MESSAGE})
    status, data, resp = client.call("POST", paths[0], {"content": MESSAGE})
    if status != 202:
        raise RuntimeError(f"sanity message post answered {status}: {data}")
    if resp.getheader("Set-Cookie"):
        log("note: message posts set a cookie (session rewritten on every request)")
    client.close()

    wrk_app = {"BENCH_PATHS": " ".join(paths), "BENCH_BODY": body, "BENCH_COOKIE": client.cookie,
               "BENCH_CSRF": client.csrf, "BENCH_UA": UA, "BENCH_EXPECT": "202"}  # fmt: skip
    wrk_bare = {"BENCH_PATHS": "/ping", "BENCH_BODY": body, "BENCH_COOKIE": "", "BENCH_CSRF": "",
                "BENCH_UA": UA, "BENCH_EXPECT": "200"}  # fmt: skip
    targets = {"message_post": (app_port, wrk_app), "bare": (bare_port, wrk_bare)}
    r = redis_conn(args.redis_url)

    def one(kind: str, seconds: float) -> dict:
        port, extra = targets[kind]
        if kind == "message_post":
            r.flushdb()
        res = run_wrk(args, port, seconds, extra)
        if kind == "message_post":
            time.sleep(0.3)  # requests in flight when wrk stopped finish their enqueue
            res["jobs_enqueued"] = Queue("ai", connection=r).count
            r.flushdb()
        return res

    if args.warmup > 0:
        log(f"warm-up {args.warmup:g} s each")
        one("message_post", args.warmup)
        one("bare", args.warmup)
    rounds = []
    for i in range(args.rounds):
        order = ["message_post", "bare"] if i % 2 == 0 else ["bare", "message_post"]
        rnd: dict = {"order": order}
        for kind in order:
            rnd[kind] = one(kind, args.duration)
            log(f"round {i + 1}/{args.rounds} {kind:12s} {rnd[kind]['rps']:8.1f} req/s  "
                f"p50 {rnd[kind]['latency_us']['p50'] / 1000:6.1f} ms  errors {rnd[kind]['errors']}")  # fmt: skip
        rnd["ratio"] = rnd["message_post"]["rps"] / rnd["bare"]["rps"]
        rounds.append(rnd)

    import psycopg2

    with psycopg2.connect(libpq_url(args.database_url)) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM messages WHERE role = 'student'")
        stored = cur.fetchone()[0]
    conn.close()

    mp = [x["message_post"]["rps"] for x in rounds]
    bare = [x["bare"]["rps"] for x in rounds]
    result["throughput"] = {
        "connections": args.connections,
        "wrk_threads": args.wrk_threads,
        "duration_s": args.duration,
        "rounds": rounds,
        "message_post_rps_median": statistics.median(mp),
        "bare_rps_median": statistics.median(bare),
        "ratio_of_medians": statistics.median(mp) / statistics.median(bare),
        "ratio_median_per_round": statistics.median(x["ratio"] for x in rounds),
        "message_post_p50_ms_median": statistics.median(x["message_post"]["latency_us"]["p50"] / 1000 for x in rounds),
        "bare_p50_ms_median": statistics.median(x["bare"]["latency_us"]["p50"] / 1000 for x in rounds),
        "errors": {k: sum(x[k]["errors"] for x in rounds) for k in ("message_post", "bare")},
        "status_codes": {
            k: {c: sum(x[k]["codes"].get(c, 0) for x in rounds) for c in {c for x in rounds for c in x[k]["codes"]}}
            for k in ("message_post", "bare")
        },
        "student_messages_in_db": stored,
        "jobs_enqueued_vs_202": [
            (x["message_post"]["jobs_enqueued"], x["message_post"]["codes"].get("202", 0)) for x in rounds
        ],  # fmt: skip
    }
    procs.stop("web-app")
    procs.stop("web-bare")


# ----------------------------------------------------------------------------- time to first token


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    k = (len(values) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


def summarize(values: list[float]) -> dict:
    ms = [v * 1000 for v in values]
    return {"n": len(ms), "median_ms": statistics.median(ms), "p90_ms": pct(ms, 0.9),
            "min_ms": min(ms), "max_ms": max(ms)}  # fmt: skip


def wait_worker(redis_url: str, proc: subprocess.Popen, timeout: float = 90.0) -> None:
    from rq import Worker

    r = redis_conn(redis_url)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"worker exited with {proc.returncode}")
        if Worker.count(connection=r) >= 1:
            return
        time.sleep(0.2)
    raise RuntimeError("the worker did not register within the timeout")


def e2e_message(client: Client, session_id: str) -> dict:
    t0 = time.perf_counter()
    status, data, _ = client.call("POST", f"/api/v1/sessions/{session_id}/messages", {"content": MESSAGE})
    t_post = time.perf_counter()
    if status != 202:
        raise RuntimeError(f"message post answered {status}: {data}")
    t_first, t_end, final = first_token(client.port, data["stream_url"], client.cookie)
    if final != "done":
        raise RuntimeError(f"reply {data['reply_id']} ended with {final}")
    return {"ttft": t_first - t0, "post": t_post - t0, "total": t_end - t0}


def openai_direct(client, chat: list[dict]) -> float:
    t0 = time.perf_counter()
    stream = client.chat.completions.create(
        model="bench-model", messages=chat, stream=True, stream_options={"include_usage": True}, temperature=0.4
    )
    t1 = None
    for chunk in stream:  # read to the end, as the worker does
        if t1 is None and any(c.delta and c.delta.content for c in chunk.choices):
            t1 = time.perf_counter()
    assert t1 is not None, "the provider sent no content"
    return t1 - t0


def builtin_direct(chunk_delay: float, chat: list[dict]) -> float:
    from tutor.providers import ReplyContext, Usage
    from tutor.providers.builtin import BuiltinProvider

    provider = BuiltinProvider(chunk_delay=chunk_delay)
    t0 = time.perf_counter()
    stream = provider.stream(chat, Usage(), ReplyContext(subject=SUBJECT))
    next(stream)
    t1 = time.perf_counter()
    stream.close()
    return t1 - t0


def measure_provider(args, procs: Procs, client: Client, name: str, worker_argv: list[str], worker_env: dict,
                     n: int, warmup: int, direct) -> dict:  # fmt: skip
    """Start one worker, send ``n`` sequential messages (after ``warmup``), each followed by one
    direct provider call, stop the worker; return the figures."""
    worker = procs.start(f"worker-{name}", worker_argv, worker_env)
    wait_worker(args.redis_url, worker)
    session_id = client.new_session()
    for _ in range(warmup):
        e2e_message(client, session_id)
        direct()
    e2e, alone = [], []
    for i in range(n):  # interleaved: one through the app, one straight to the provider
        e2e.append(e2e_message(client, session_id))
        alone.append(direct())
        if (i + 1) % 10 == 0 or i + 1 == n:
            log(f"  {name} {i + 1}/{n}: median TTFT so far {statistics.median(x['ttft'] for x in e2e) * 1000:.1f} ms")
    procs.stop(f"worker-{name}")
    res = {
        "ttft": summarize([x["ttft"] for x in e2e]),
        "post_202": summarize([x["post"] for x in e2e]),
        "until_done": summarize([x["total"] for x in e2e]),
        "provider_ttft": summarize(alone),
        "samples_ms": {
            "ttft": [round(x["ttft"] * 1000, 2) for x in e2e],
            "provider_ttft": [round(x * 1000, 2) for x in alone],
        },
    }
    res["overhead_ms"] = res["ttft"]["median_ms"] - res["provider_ttft"]["median_ms"]
    return res


def ttft(args, procs: Procs, env: dict[str, str], config: str, result: dict) -> None:
    import openai
    import psycopg2

    from tests.openai_server import ScriptedOpenAI
    from tutor.prompting import build_messages

    # The throughput runs left their replies queued (their jobs were flushed from Redis); the
    # worker's outbox sweep would re-enqueue them all ahead of the measured messages.
    with psycopg2.connect(libpq_url(args.database_url)) as conn, conn.cursor() as cur:
        cur.execute(
            "UPDATE messages SET status = 'failed', error = 'api_bench: throughput run, not processed' "
            "WHERE role = 'tutor' AND status IN ('queued', 'streaming')"
        )
    conn.close()
    redis_conn(args.redis_url).flushdb()  # no jobs left over from the throughput runs
    port = args.port + 2
    chat = build_messages(SUBJECT, [("student", MESSAGE)], 3000)
    out: dict = {"first_token_delay_s": args.first_token_delay, "chunk_delay_s": args.chunk_delay}
    with ScriptedOpenAI() as server:
        server.first_token_delay = args.first_token_delay
        server.chunk_delay = args.chunk_delay
        ai_env = dict(env, AI_PROVIDER="openai", OPENAI_BASE_URL=server.base_url, OPENAI_API_KEY="bench",
                      AI_MODEL="bench-model", PORT=str(port))  # fmt: skip
        log(f"time to first token: web on :{port}, one worker, ScriptedOpenAI at {server.base_url}")
        web = procs.start("web-ttft", gunicorn_argv("app:create_app()", config, args.access_log), ai_env)
        wait_http(port, "GET", "/healthz", web)
        client = Client(port)
        client.login()
        oa = openai.OpenAI(base_url=server.base_url, api_key="bench", max_retries=0, timeout=30)
        oa_direct = lambda: openai_direct(oa, chat)  # noqa: E731
        worker = [sys.executable, "worker.py"]
        out["openai"] = measure_provider(
            args, procs, client, "openai", worker, ai_env, args.messages, args.warmup_messages, oa_direct
        )
        if not args.skip_fork_every_job:
            out["openai_fork_every_job"] = measure_provider(
                args, procs, client, "openai_fork_every_job", [*worker, "--fork-every-job"], ai_env,
                args.messages, args.warmup_messages, oa_direct,
            )  # fmt: skip
        oa.close()
        if args.builtin_messages > 0:
            # The web process never calls a provider, so only the worker changes.
            delay = float(env.get("BUILTIN_CHUNK_DELAY", "0.03") or 0.03)
            log(f"builtin provider: {args.builtin_messages} messages (chunk delay {delay:g} s)")
            out["builtin"] = measure_provider(
                args, procs, client, "builtin", worker, dict(ai_env, AI_PROVIDER="builtin"),
                args.builtin_messages, 1, lambda: builtin_direct(delay, chat),
            )  # fmt: skip
            out["builtin"]["chunk_delay_s"] = delay
        client.close()
        procs.stop("web-ttft")
    result["ttft"] = out


# ----------------------------------------------------------------------------- report


def machine() -> dict:
    def version(argv: list[str]) -> str:
        try:
            p = subprocess.run(argv, capture_output=True, text=True, timeout=10)
            return (p.stdout or p.stderr).strip().splitlines()[0]
        except (OSError, IndexError, subprocess.SubprocessError):
            return "?"

    commit = version(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"])
    dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain"], capture_output=True, text=True).stdout
    cpu = "?"
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        cpu = next(ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {
        "cpus": os.cpu_count(),
        "cpu_model": cpu,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "gunicorn": version([str(BIN / "gunicorn"), "--version"]),
        "wrk": version(["wrk", "-v"]),
        "git_commit": commit + ("+dirty" if dirty.strip() else ""),
        "loadavg_start": os.getloadavg(),
    }


def print_summary(result: dict) -> None:
    m, s = result["machine"], result["settings"]
    print(f"\nAPI benchmark {result['timestamp']}  ({m['cpus']} CPUs, commit {m['git_commit']}, "
          f"load average at start {m['loadavg_start'][0]:.1f})")  # fmt: skip
    print(f"gunicorn {GUNICORN_CONF}: WEB_CONCURRENCY={s['WEB_CONCURRENCY']} WEB_THREADS={s['WEB_THREADS']} "
          f"gthread, access log {s['access_log']}")  # fmt: skip
    t = result.get("throughput")
    if t:
        print(f"\nThroughput (wrk -t{t['wrk_threads']} -c{t['connections']}, "
              f"{len(t['rounds'])} rounds x {t['duration_s']:g} s, alternating A/B)")  # fmt: skip
        print(f"  {'':22s}{'median req/s':>14s}{'p50 ms':>10s}{'errors':>8s}   per round")
        for kind, label in (("message_post", "POST .../messages"), ("bare", "bare Flask JSON")):
            per = ", ".join(f"{x[kind]['rps']:.0f}" for x in t["rounds"])
            rps, p50 = t[f"{kind}_rps_median"], t[f"{kind}_p50_ms_median"]
            print(f"  {label:22s}{rps:14.1f}{p50:10.1f}{t['errors'][kind]:8d}   {per}")
        print(f"  ratio message-post / bare: {t['ratio_of_medians']:.3f} (of medians), "
              f"{t['ratio_median_per_round']:.3f} (median of per-round ratios)")  # fmt: skip
        print(f"  status codes: {t['status_codes']}")
        print(f"  RQ jobs enqueued vs 202s per round: {t['jobs_enqueued_vs_202']}; "
              f"student messages stored: {t['student_messages_in_db']}")  # fmt: skip
    tt = result.get("ttft")
    if tt:
        print(f"\nTime to first token (ScriptedOpenAI first_token_delay {tt['first_token_delay_s']:g} s, "
              f"chunk_delay {tt['chunk_delay_s']:g} s; sequential messages)")  # fmt: skip

        def row(label: str, n: object, median: float, p90: float | None = None) -> None:
            print(f"  {label:44s}{n!s:>4s}{median:11.1f}{'' if p90 is None else f'{p90:9.1f}'}")

        print(f"  {'':44s}{'n':>4s}{'median ms':>11s}{'p90 ms':>9s}")
        for prov in ("openai", "openai_fork_every_job", "builtin"):
            if prov in tt:
                d = tt[prov]
                row(f"{prov}: POST -> first SSE token", d["ttft"]["n"], d["ttft"]["median_ms"], d["ttft"]["p90_ms"])
                row(f"{prov}: provider alone", d["provider_ttft"]["n"], d["provider_ttft"]["median_ms"],
                    d["provider_ttft"]["p90_ms"])  # fmt: skip
                row(f"{prov}: overhead (median - median)", "", d["overhead_ms"])
        d = tt["openai"]
        print(f"  openai: POST answered 202 in median {d['post_202']['median_ms']:.1f} ms; "
              f"reply done after {d['until_done']['median_ms']:.1f} ms")  # fmt: skip
        if "openai_fork_every_job" in tt:
            print("  openai_fork_every_job: the same messages with `python worker.py --fork-every-job`")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--database-url", required=True, help="PostgreSQL database to WIPE and use (name must contain 'bench')"
    )
    p.add_argument("--redis-url", required=True, help="Redis database to FLUSHDB and use (not database 0)")
    p.add_argument("--duration", type=float, default=10.0, help="seconds per throughput run (default 10)")
    p.add_argument("--rounds", type=int, default=3, help="A/B rounds (default 3)")
    p.add_argument("--warmup", type=float, default=2.0, help="warm-up seconds per app before the rounds (default 2)")
    p.add_argument("--connections", type=int, default=32, help="wrk connections (default 32)")
    p.add_argument("--wrk-threads", type=int, default=1, help="wrk threads (default 1: leave the CPUs to the server)")
    p.add_argument("--sessions", type=int, default=32, help="tutoring sessions the message posts rotate over")
    p.add_argument("--messages", type=int, default=40, help="sequential messages for time to first token (default 40)")
    p.add_argument("--warmup-messages", type=int, default=2, help="messages sent before measuring TTFT (default 2)")
    p.add_argument("--builtin-messages", type=int, default=5, help="messages with the builtin provider (0: skip)")
    p.add_argument(
        "--skip-fork-every-job", action="store_true", help="do not repeat the openai messages with --fork-every-job"
    )
    p.add_argument("--first-token-delay", type=float, default=0.2, help="ScriptedOpenAI first_token_delay (s)")
    p.add_argument("--chunk-delay", type=float, default=0.01, help="ScriptedOpenAI chunk_delay (s)")
    p.add_argument("--port", type=int, default=18610, help="first of three ports used (default 18610)")
    p.add_argument("--access-log", choices=("off", "devnull"), default="off",
                   help="off: the Procfile config with accesslog=None; devnull: the config unchanged plus "
                        "--access-logfile /dev/null (lines formatted and discarded)")  # fmt: skip
    p.add_argument("--skip-throughput", action="store_true")
    p.add_argument("--skip-ttft", action="store_true")
    p.add_argument("--force", action="store_true", help="allow any database name / Redis database 0")
    args = p.parse_args(argv)
    args.wrk = shutil.which("wrk")
    if args.wrk is None and not args.skip_throughput:
        raise SystemExit("error: wrk is not installed (apt-get install -y wrk), or pass --skip-throughput")
    check_targets(args)

    def _term(signum, frame):  # noqa: ARG001 - run the finally blocks on SIGTERM too
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _term)
    from foundation.config import load_settings

    started = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix="api-bench-"))
    procs = Procs(tmp)
    result: dict = {"timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), "machine": machine()}
    try:
        env = base_env(args, tmp / "instance")
        settings = load_settings(env)
        config = GUNICORN_CONF if args.access_log == "devnull" else write_quiet_config(tmp)
        result["settings"] = {
            "WEB_CONCURRENCY": settings.WEB_CONCURRENCY,
            "WEB_THREADS": settings.WEB_THREADS,
            "LOG_LEVEL": "WARNING",
            "MESSAGE_RATE_LIMIT": RATE_LIMIT,
            "gunicorn_config": config if config == GUNICORN_CONF else f"{GUNICORN_CONF} + accesslog=None",
            "access_log": args.access_log,
            "message": MESSAGE,
            "subject": SUBJECT,
        }
        log(f"preparing database {urlsplit(args.database_url).path.lstrip('/')} (drop schema, migrate, student)")
        prepare_database(args, env)
        redis_conn(args.redis_url).flushdb()
        if not args.skip_throughput:
            throughput(args, procs, env, config, result)
        if not args.skip_ttft:
            ttft(args, procs, env, config, result)
    except BaseException:
        for name in procs.running:
            sys.stderr.write(f"--- last lines of {name} ---\n{procs.tail(name)}\n")
        raise
    finally:
        procs.stop_all()
        result["machine"]["loadavg_end"] = os.getloadavg()
        result["wall_seconds"] = round(time.monotonic() - started, 1)
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            redis_conn(args.redis_url).flushdb()
        except Exception:  # noqa: BLE001
            pass
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"api_bench-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print_summary(result)
    print(f"\nwall time {result['wall_seconds']:.0f} s; JSON: {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
