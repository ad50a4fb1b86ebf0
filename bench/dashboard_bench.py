"""Benchmark: the analytics dashboard's quarter view on 1,000,000 sessions against 10,000.

    /work/venv/bin/python bench/dashboard_bench.py prepare --sessions 1000000 --days 1110 --students 3000 \\
        --database-url postgresql://postgres@127.0.0.1:5432/aitutor_dash1m
    /work/venv/bin/python bench/dashboard_bench.py prepare --sessions 10000 --days 1110 --students 30 \\
        --database-url postgresql://postgres@127.0.0.1:5432/aitutor_dash10k
    /work/venv/bin/python bench/dashboard_bench.py prepare --sessions 10000 --days 11 --students 3000 \\
        --database-url postgresql://postgres@127.0.0.1:5432/aitutor_dash10k_young
    /work/venv/bin/python bench/dashboard_bench.py run \\
        --database-url postgresql://postgres@127.0.0.1:5432/aitutor_dash1m \\
        --database-url postgresql://postgres@127.0.0.1:5432/aitutor_dash10k \\
        --database-url postgresql://postgres@127.0.0.1:5432/aitutor_dash10k_young

Teachers' views (issue 17: a teacher sees only their classes' students, computed from those
students' raw rows rather than the rollups) are timed with ``run --viewer teacher``: the same
quarter view, logged in as a teacher whose one class holds the ``--class-size`` (30) students
with the lowest ids. ``prepare`` creates that teacher and class; ``teacher --database-url URL``
adds them to a database prepared before.

``prepare`` wipes the database (``DROP SCHEMA public CASCADE``), migrates it with the app's own
migrations, seeds demo data (``devtools.demo.seed_demo``), rolls up every day before today
(``analytics.rollup.rollup_range``) as the nightly job would have (today stays raw: the dashboard
reads it live), runs ``VACUUM ANALYZE`` and creates the benchmark's admin.

The two 10,000-session databases answer different questions: ``dash10k`` spreads them over the
same three years as the 1M database (100 times fewer sessions every day, today included);
``dash10k_young`` is a young deployment with the 1M database's daily volume (about 900 sessions
a day, today included) and 11 days of history, so its ratio shows what history alone costs.

``run`` starts one process per database (each its own web app, so each has its own RSS) and
times the dashboard's main callback for the quarter view exactly as the browser sends it: an
HTTP ``POST`` to ``/admin/analytics/_dash-update-component`` through the Flask test client,
logged in as an admin, through the whole WSGI stack (admin guard, Dash's dispatch, the queries,
the figures, JSON). The processes are measured in alternating batches so that background load
hits all of them alike. Reported per database: median, p90 and minimum of ``--runs`` requests
(after ``--warmup``) as the app serves them (today's live figures reused for
``ANALYTICS_LIVE_SECONDS``, 5 s), a "today recomputed" median (the live figures dropped before
each request, so every request reads today's raw rows), the very first request (rolled-up days
not yet in memory), a cold median
(the in-memory days cleared before each request, so every request reads its 180 days of rollup
rows from PostgreSQL), the process's RSS after the runs, and the ratio of the largest
database's medians to the others'. Results are printed (also as Markdown) and written as JSON
under ``bench/results/``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
ADMIN_EMAIL = "bench-admin@school.org"
ADMIN_PASSWORD = "quarter-view-on-1m-sessions"  # not guessable from the e-mail (password rules)
TEACHER_EMAIL = "bench-teacher@school.org"


def _env(database_url: str, redis_url: str) -> None:
    """Point the app at the benchmark's services (before ``app`` is imported)."""
    os.environ["DATABASE_URL"] = database_url
    os.environ["REDIS_URL"] = redis_url
    os.environ.setdefault("INSTANCE_PATH", str(Path(tempfile.gettempdir()) / "aitutor-dash-bench"))
    os.environ.setdefault("APP_ENV", "development")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    sys.path.insert(0, str(ROOT))


def prepare(args: argparse.Namespace) -> None:
    _env(args.database_url, args.redis_url)
    from flask_migrate import upgrade
    from sqlalchemy import text

    from analytics.rollup import local_today, rollup_range
    from app import create_app
    from devtools.demo import seed_demo
    from foundation.extensions import db

    app = create_app()
    with app.app_context():
        with db.engine.begin() as conn:
            conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
        upgrade()
        started = time.perf_counter()
        result = seed_demo(
            db.engine, students=args.students, days=args.days, sessions=args.sessions, seed=args.seed, progress=True
        )
        print(f"seeded {result} in {time.perf_counter() - started:.0f} s", flush=True)
        first = db.session.execute(text("SELECT min(created_at) FROM sessions")).scalar()
        db.session.remove()
        today = local_today()
        started = time.perf_counter()
        days = rollup_range(first.date(), today - timedelta(days=1), progress=True)
        print(f"rolled up {len(days)} days in {time.perf_counter() - started:.0f} s", flush=True)
        with db.engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("VACUUM ANALYZE"))
        from tutor.users import create_user

        create_user(ADMIN_EMAIL, ADMIN_PASSWORD, role="admin")
        db.session.commit()
        _add_teacher(args.class_size)


def _add_teacher(class_size: int) -> None:
    """The benchmark's teacher and their class of the ``class_size`` students with the lowest ids."""
    from sqlalchemy import text

    from foundation.extensions import db
    from tutor.classes import create_class
    from tutor.users import create_user

    teacher = create_user(TEACHER_EMAIL, ADMIN_PASSWORD, role="teacher")
    db.session.flush()
    klass = create_class(teacher, "Bench class")
    db.session.execute(
        text(
            "INSERT INTO class_members (class_id, student_id) SELECT :c, id FROM users WHERE role = 'student' "
            "ORDER BY id LIMIT :n"
        ),
        {"c": klass.id, "n": class_size},
    )
    db.session.commit()


def teacher(args: argparse.Namespace) -> None:
    _env(args.database_url, args.redis_url)
    from app import create_app

    with create_app().app_context():
        _add_teacher(args.class_size)


# ------------------------------------------------------------------------------------ measuring


def _rss_mb() -> tuple[float, float]:
    """(current, peak) resident set size of this process in MB."""
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    current = peak
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                current = int(line.split()[1]) / 1024
    except OSError:
        pass
    return current, peak


def serve(args: argparse.Namespace) -> int:
    """Child process: one web app on one database, timing requests on command (stdin -> stdout, JSON lines)."""
    _env(args.database_url[0], args.redis_url)
    from sqlalchemy import text

    from analytics import reads as data
    from app import create_app
    from dashboard.callbacks import main_callback_payload
    from foundation.extensions import db

    app = create_app()
    client = app.test_client()
    email = TEACHER_EMAIL if args.viewer == "teacher" else ADMIN_EMAIL
    login = client.post("/api/v1/auth/login", json={"email": email, "password": ADMIN_PASSWORD})
    assert login.status_code == 200, login.get_json()
    with app.app_context():
        info = db.session.execute(
            text("SELECT count(*), min(created_at)::date, max(created_at)::date FROM sessions")
        ).one()
        today = db.session.execute(
            text("SELECT count(*) FROM sessions WHERE created_at >= date_trunc('day', now())")
        ).scalar()
        db.session.remove()
    body = json.dumps(main_callback_payload(time_range="quarter"))
    headers = {"Origin": "http://localhost", "Content-Type": "application/json"}

    def once() -> float:
        t0 = time.perf_counter()
        response = client.post("/admin/analytics/_dash-update-component", data=body, headers=headers)
        elapsed = (time.perf_counter() - t0) * 1000
        assert response.status_code == 200, response.data[:500]
        return elapsed

    data.clear_cache()
    first = once()
    size = len(client.post("/admin/analytics/_dash-update-component", data=body, headers=headers).data)
    hello = {"sessions": info[0], "first_day": str(info[1]), "last_day": str(info[2]), "today_sessions": today}
    hello["viewer"] = args.viewer
    print(json.dumps(hello | {"first_ms": first, "response_bytes": size}), flush=True)
    for line in sys.stdin:
        command, _, n = line.strip().partition(" ")
        if command == "warm":
            print(json.dumps([once() for _ in range(int(n))]), flush=True)
        elif command == "live":
            out = []
            for _ in range(int(n)):
                data.STORE.clear_live()
                out.append(once())
            print(json.dumps(out), flush=True)
        elif command == "cold":
            out = []
            for _ in range(int(n)):
                data.clear_cache()
                out.append(once())
            print(json.dumps(out), flush=True)
        elif command == "rss":
            print(json.dumps(_rss_mb()), flush=True)
        else:
            break
    return 0


class _Child:
    def __init__(self, url: str, redis_url: str, viewer: str = "admin") -> None:
        cmd = [sys.executable, __file__, "_serve", "--database-url", url, "--redis-url", redis_url, "--viewer", viewer]
        self.url = url
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
        self.hello = self._read()

    def _read(self) -> Any:
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the benchmark process for {self.url} exited ({self.proc.wait()})")
        return json.loads(line)

    def ask(self, command: str) -> Any:
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self) -> None:
        try:
            self.proc.stdin.write("quit\n")
            self.proc.stdin.close()
        except OSError:
            pass
        self.proc.wait(30)


def _summary(child: _Child, warm: list[float], live: list[float], cold: list[float]) -> dict[str, Any]:
    rss, peak = child.ask("rss")
    return {
        "database": child.url.rsplit("/", 1)[-1],
        **child.hello,
        "runs": len(warm),
        "median_ms": round(statistics.median(warm), 1),
        "p90_ms": round(statistics.quantiles(warm, n=10)[-1], 1),
        "min_ms": round(min(warm), 1),
        "live_median_ms": round(statistics.median(live), 1),
        "cold_runs": len(cold),
        "cold_median_ms": round(statistics.median(cold), 1),
        "first_ms": round(child.hello["first_ms"], 1),
        "rss_mb": round(rss, 1),
        "peak_rss_mb": round(peak, 1),
    }


def run(args: argparse.Namespace) -> int:
    """Both databases' processes side by side, measured in alternating batches (background load hits both)."""
    children = [_Child(url, args.redis_url, args.viewer) for url in args.database_url]
    try:
        warm: list[list[float]] = [[] for _ in children]
        live: list[list[float]] = [[] for _ in children]
        cold: list[list[float]] = [[] for _ in children]
        for child in children:
            child.ask(f"warm {args.warmup}")
        rounds = max(1, args.runs // args.batch)
        for _ in range(rounds):
            for i, child in enumerate(children):
                warm[i] += child.ask(f"warm {args.batch}")
                live[i] += child.ask(f"live {args.batch}")
        for _ in range(max(1, args.cold_runs // 5)):
            for i, child in enumerate(children):
                cold[i] += child.ask("cold 5")
        results = [_summary(child, warm[i], live[i], cold[i]) for i, child in enumerate(children)]
    finally:
        for child in children:
            child.close()
    report: dict[str, Any] = {"when": datetime.now(UTC).isoformat(timespec="seconds"), "results": results}
    big = max(results, key=lambda r: r["sessions"])
    for r in results:
        if r is not big:
            r["ratio_of_largest_median"] = round(big["median_ms"] / r["median_ms"], 2)
            r["ratio_of_largest_live_median"] = round(big["live_median_ms"] / r["live_median_ms"], 2)
            r["ratio_of_largest_cold_median"] = round(big["cold_median_ms"] / r["cold_median_ms"], 2)
    report["machine"] = _machine()
    for r in results:
        print(json.dumps(r))
    print(markdown(report))
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"dashboard_bench-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"written to {path.relative_to(ROOT)}")
    return 0


def _machine() -> dict[str, Any]:
    info: dict[str, Any] = {"nproc": os.cpu_count(), "python": platform.python_version(), "cpu": platform.machine()}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        info["load_average"] = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        pass
    return info


def markdown(report: dict[str, Any]) -> str:
    rows = [
        "| Database | Sessions (history) | Today's sessions | Median | p90 | Min | Today recomputed | Cold median "
        "| First request | RSS after |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in report["results"]:
        rows.append(
            f"| `{r['database']}` ({r.get('viewer', 'admin')}) | {r['sessions']:,} ({r['first_day']} to {r['last_day']}) | {r['today_sessions']:,} "
            f"| {r['median_ms']:.0f} ms | {r['p90_ms']:.0f} ms | {r['min_ms']:.0f} ms | {r['live_median_ms']:.0f} ms "
            f"| {r['cold_median_ms']:.0f} ms "
            f"| {r['first_ms']:.0f} ms | {r['rss_mb']:.0f} MB |"
        )
    ratios = [
        f"{r['database']}: {r['ratio_of_largest_median']} (today recomputed {r['ratio_of_largest_live_median']}, "
        f"cold {r['ratio_of_largest_cold_median']})"
        for r in report["results"]
        if "ratio_of_largest_median" in r
    ]
    machine = report["machine"]
    return "\n".join(
        [
            *rows,
            "",
            f"Ratio of the largest database's median to: {'; '.join(ratios) or '-'}.",
            f"Machine: {machine.get('cpu')}, {machine.get('nproc')} CPUs, load average {machine.get('load_average')}.",
        ]
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = p.add_subparsers(dest="command", required=True)
    prep = sub.add_parser("prepare", help="wipe, migrate, seed and roll up a scratch database")
    prep.add_argument("--database-url", required=True, help="a scratch database: it is wiped")
    prep.add_argument("--sessions", type=int, default=1_000_000)
    prep.add_argument("--days", type=int, default=1110)
    prep.add_argument("--students", type=int, default=3000)
    prep.add_argument("--seed", type=int, default=42)
    r = sub.add_parser("run", help="measure the quarter view")
    r.add_argument("--database-url", action="append", required=True, help="repeat for each database")
    r.add_argument("--runs", type=int, default=40, help="timed requests per database (default 40)")
    r.add_argument("--batch", type=int, default=5, help="requests per database in each alternating batch")
    r.add_argument("--cold-runs", type=int, default=10, help="requests with the in-memory days cleared first")
    r.add_argument("--warmup", type=int, default=5)
    r.add_argument("--viewer", choices=["admin", "teacher"], default="admin", help="who asks (default admin)")
    t = sub.add_parser("teacher", help="add the benchmark's teacher and class to a prepared database")
    t.add_argument("--database-url", required=True)
    for parser in (prep, t):
        parser.add_argument("--class-size", type=int, default=30, help="students in the teacher's class")
    child = sub.add_parser("_serve", help=argparse.SUPPRESS)
    child.add_argument("--database-url", action="append", required=True)
    child.add_argument("--viewer", default="admin")
    for parser in sub.choices.values():
        parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/10")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.command == "prepare":
        prepare(args)
        return 0
    if args.command == "teacher":
        teacher(args)
        return 0
    if args.command == "_serve":
        return serve(args)
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
