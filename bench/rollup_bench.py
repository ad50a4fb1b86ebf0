"""Benchmark: the nightly rollup of one day against one SQL statement computing daily_stats.

    /work/venv/bin/python bench/rollup_bench.py --sessions 1000000 \\
        --database-url postgresql://postgres@127.0.0.1:5432/aitutor_rollupbench

The database is migrated with the app's migrations and, unless it already holds exactly
``--sessions`` demo sessions, wiped and seeded with ``seed_demo`` (1M sessions: a few minutes).
Then:

1. Backfill: the rollup tables and ``daily_stats`` are emptied and ``rollup_range`` rolls up the
   whole history (as ``flask analytics rollup --since ...`` does); time, days/s and source
   rows/s (sessions + topic rows + messages read) are recorded.
2. One day, side by side, for ``--days-measured`` recent full days, ``--repeat`` rounds: the
   single SQL statement (sessions, distinct students, durations, ratings, top-10 topics,
   message counts, latency percentiles, failures, cut-short replies, mean generation time, and
   replies and tokens per model for that local day, GROUP BY day) against
   ``rollup_chunk(day, day)``, which reads that day's rows (binary COPY), aggregates them with
   numpy/pandas and writes ``daily_stats`` and the five rollup tables in one transaction. The order within a
   round alternates so load changes hit both alike. ``rewrite`` runs the rollup on a day that
   is already rolled up (the nightly recomputation of the day before); ``fresh`` deletes the
   day's rollup rows first, like the first rollup of yesterday. Both VACUUM the rollup tables
   before (untimed), as a night's autovacuum would, so rounds do not pile up dead rows.

Medians are printed, with the rollup's time split into read / aggregate / write, and written
as JSON under ``bench/results/``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
ROLLUP_TABLES = ("rollup_daily", "rollup_students", "rollup_topics", "rollup_hours", "rollup_models")

# The same daily_stats figures in one statement: what a plain SQL rollup of a day would run.
BASELINE_SQL = """
WITH s AS (
    SELECT (created_at AT TIME ZONE %(tz)s)::date AS day, id, student_id, duration_seconds, satisfaction
    FROM sessions s WHERE created_at >= %(start)s AND created_at < %(end)s
      AND EXISTS (SELECT 1 FROM messages m WHERE m.session_id = s.id AND m.role = 'student')
), ses AS (
    SELECT day, count(*) AS total_sessions, avg(duration_seconds) AS avg_duration,
           count(DISTINCT student_id) AS total_users, avg(satisfaction) AS avg_satisfaction
    FROM s GROUP BY day
), topic_counts AS (
    SELECT s.day, t.topic, count(*) AS n,
           row_number() OVER (PARTITION BY s.day ORDER BY count(*) DESC, t.topic COLLATE "C") AS rank
    FROM s JOIN session_topics t ON t.session_id = s.id
    GROUP BY s.day, t.topic
), top AS (
    SELECT day, jsonb_object_agg(topic, n) AS popular_topics FROM topic_counts WHERE rank <= 10 GROUP BY day
), msg AS (
    SELECT (created_at AT TIME ZONE %(tz)s)::date AS day,
           count(*) FILTER (WHERE role = 'student') AS total_messages,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY latency_ms)
               FILTER (WHERE role = 'tutor' AND status = 'done') AS ai_latency_p50_ms,
           percentile_cont(0.95) WITHIN GROUP (ORDER BY latency_ms)
               FILTER (WHERE role = 'tutor' AND status = 'done') AS ai_latency_p95_ms,
           count(*) FILTER (WHERE role = 'tutor' AND status = 'failed') AS ai_failures,
           count(*) FILTER (WHERE role = 'tutor' AND status = 'done' AND cut_short) AS cut_short,
           avg(generation_ms) FILTER (WHERE role = 'tutor' AND status = 'done') AS generation_mean_ms
    FROM messages WHERE created_at >= %(start)s AND created_at < %(end)s
    GROUP BY 1
), per_model AS (
    SELECT day, jsonb_object_agg(model, jsonb_build_array(replies, prompt_tokens, completion_tokens)) AS models
    FROM (
        SELECT (created_at AT TIME ZONE %(tz)s)::date AS day, COALESCE(model, provider, 'unknown') AS model,
               count(*) AS replies, sum(prompt_tokens) AS prompt_tokens, sum(completion_tokens) AS completion_tokens
        FROM messages WHERE created_at >= %(start)s AND created_at < %(end)s AND role = 'tutor' AND status = 'done'
        GROUP BY 1, 2
    ) m GROUP BY day
)
SELECT * FROM ses FULL JOIN top USING (day) FULL JOIN msg USING (day) FULL JOIN per_model USING (day)
WHERE day = %(day)s
"""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--database-url", required=True, help="a scratch database (wiped if it must be seeded)")
    p.add_argument("--sessions", type=int, default=1_000_000, help="demo sessions (default 1,000,000)")
    p.add_argument("--students", type=int, default=20_000, help="demo students (default 20,000)")
    p.add_argument("--days", type=int, default=180, help="days of history (default 180)")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--tz", default="UTC", help="ANALYTICS_TZ for the rollups (default UTC)")
    p.add_argument("--repeat", type=int, default=5, help="rounds of the one-day comparison (default 5)")
    p.add_argument("--days-measured", type=int, default=3, help="recent full days compared (default 3)")
    p.add_argument("--skip-backfill", action="store_true", help="roll up only the measured days, no backfill")
    p.add_argument("--no-progress", action="store_true")
    return p.parse_args(argv)


def make_app(url: str, tz: str):
    """A bare Flask app bound to ``db`` with the app's engine settings (no Redis, no Dash)."""
    from flask import Flask

    from foundation.extensions import db, migrate

    app = Flask("rollup_bench")
    app.config.update(
        SQLALCHEMY_DATABASE_URI=url,
        ANALYTICS_TZ=tz,
        SQLALCHEMY_ENGINE_OPTIONS={"connect_args": {"application_name": "rollup-bench", "options": "-c timezone=UTC"}},
    )
    import analytics.tables  # noqa: F401
    import tutor.models  # noqa: F401

    db.init_app(app)
    migrate.init_app(app, db, directory=str(ROOT / "migrations"))
    return app


def machine(cur: Any) -> dict[str, Any]:
    def sql(query: str) -> str:
        cur.execute(query)
        return cur.fetchone()[0]

    info: dict[str, Any] = {
        "nproc": os.cpu_count(),
        "python": platform.python_version(),
        "postgres": sql("SELECT version()"),
        "postgres_settings": {
            name: sql(f"SHOW {name}") for name in ("shared_buffers", "work_mem", "synchronous_commit", "jit")
        },
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
    }
    try:
        import numpy
        import pandas

        info["pandas"], info["numpy"] = pandas.__version__, numpy.__version__
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    except (ImportError, OSError):
        pass
    return info


def counts(cur: Any) -> dict[str, int]:
    out = {}
    for table in ("users", "sessions", "session_topics", "messages"):
        cur.execute(f"SELECT count(*) FROM {table}")
        out[table] = cur.fetchone()[0]
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("INSTANCE_PATH", tempfile.mkdtemp(prefix="aitutor-rollupbench-"))
    from flask_migrate import upgrade
    from sqlalchemy import create_engine, text

    import analytics.rollup as analytics
    from devtools.demo import seed_demo
    from foundation.config import normalize_database_url
    from foundation.extensions import db

    url = normalize_database_url(args.database_url)
    app = make_app(url, args.tz)
    with app.app_context():
        engine = db.engine
        with engine.connect() as conn:
            has_sessions = conn.execute(text("SELECT to_regclass('public.sessions') IS NOT NULL")).scalar()
            existing = conn.execute(text("SELECT count(*) FROM sessions")).scalar() if has_sessions else 0
        if existing != args.sessions:
            print(f"seeding {args.sessions:,} sessions (the database had {existing:,}); it is wiped first")
            wipe = create_engine(url)
            with wipe.begin() as conn:
                conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
                conn.execute(text("CREATE SCHEMA public"))
            wipe.dispose()
            engine.dispose()
            upgrade()
            result = seed_demo(
                engine,
                students=args.students,
                days=args.days,
                sessions=args.sessions,
                seed=args.seed,
                progress=not args.no_progress,
            )
            print(result.summary())
        else:
            upgrade()
        import psycopg2

        raw = psycopg2.connect(
            engine.url.set(drivername="postgresql").render_as_string(hide_password=False), options="-c timezone=UTC"
        )
        raw.autocommit = True
        cur = raw.cursor()
        cur.execute("VACUUM ANALYZE")
        env = machine(cur)
        rows = counts(cur)
        tz = analytics._zone(args.tz)
        cur.execute("SELECT min(created_at), max(created_at) FROM sessions")
        first_at, last_at = cur.fetchone()
        first_day = first_at.astimezone(tz).date()
        last_full_day = min(last_at.astimezone(tz).date(), analytics.local_today(tz)) - timedelta(days=1)
        print(f"data: {rows['sessions']:,} sessions, {rows['messages']:,} messages, {rows['session_topics']:,} topics")

        # 1. backfill
        report: dict[str, Any] = {
            "benchmark": "nightly rollup vs one SQL GROUP BY; backfill",
            "when": datetime.now(UTC).isoformat(timespec="seconds"),
            "parameters": vars(args) | {"database_url": "(scratch)"},
            "machine": env,
            "rows": rows,
        }
        if not args.skip_backfill:
            cur.execute(f"TRUNCATE daily_stats, {', '.join(ROLLUP_TABLES)}")
            cur.execute(f"VACUUM {', '.join(ROLLUP_TABLES)}, daily_stats")
            read = defaultdict(int)
            original = analytics.rollup_chunk

            def counting(first: date, last: date, tz: Any = None) -> Any:
                result = original(first, last, tz)
                read["sessions"] += result.sessions
                read["topics"] += result.topics
                read["messages"] += result.messages
                return result

            analytics.rollup_chunk = counting
            try:
                t0 = time.perf_counter()
                done = analytics.rollup_range(first_day, last_full_day, progress=not args.no_progress)
                seconds = time.perf_counter() - t0
            finally:
                analytics.rollup_chunk = original
            written = {}
            for table in ("daily_stats", *ROLLUP_TABLES):
                cur.execute(f"SELECT count(*) FROM {table}")
                written[table] = cur.fetchone()[0]
            source_rows = read["sessions"] + read["topics"] + read["messages"]
            report["backfill"] = {
                "days": len(done),
                "seconds": round(seconds, 2),
                "days_per_s": round(len(done) / seconds, 2),
                "source_rows_read": dict(read),
                "source_rows_per_s": round(source_rows / seconds),
                "sessions_per_s": round(read["sessions"] / seconds),
                "rows_written": written,
                "rows_written_per_s": round(sum(written.values()) / seconds),
                "chunk_days": analytics.CHUNK_DAYS,
            }
            b = report["backfill"]
            print(
                f"backfill: {b['days']} days in {b['seconds']:.1f} s ({b['sessions_per_s']:,} sessions/s, "
                f"{b['source_rows_per_s']:,} source rows/s, {sum(written.values()):,} rows written)"
            )

        # 2. one day, side by side
        measured = [last_full_day - timedelta(days=i) for i in range(args.days_measured)]
        if args.skip_backfill:
            for day in measured:
                analytics.rollup_chunk(day, day, tz)
        phases: dict[str, list[float]] = defaultdict(list)
        wrapped = {}
        for name in ("_read", "_aggregate", "_write"):
            fn = getattr(analytics, name)

            def timed(*a: Any, _fn: Any = fn, _name: str = name, **kw: Any) -> Any:
                t = time.perf_counter()
                try:
                    return _fn(*a, **kw)
                finally:
                    phases[_name.strip("_")].append((time.perf_counter() - t) * 1000)

            wrapped[name] = fn
            setattr(analytics, name, timed)

        def baseline(day: date) -> float:
            start, end = analytics.local_day_bounds(day, tz)
            t = time.perf_counter()
            cur.execute(BASELINE_SQL, {"tz": args.tz, "start": start, "end": end, "day": day})
            cur.fetchall()
            return (time.perf_counter() - t) * 1000

        def rollup(day: date) -> tuple[float, Any]:
            t = time.perf_counter()
            result = analytics.rollup_chunk(day, day, tz)
            return (time.perf_counter() - t) * 1000, result

        def make_fresh(day: date) -> None:
            for table in ROLLUP_TABLES:
                cur.execute(f"DELETE FROM {table} WHERE date = %s", (day,))
            cur.execute(f"VACUUM {', '.join(ROLLUP_TABLES)}")

        times: dict[str, list[float]] = defaultdict(list)
        split: dict[str, dict[str, list[float]]] = {"fresh": defaultdict(list), "rewrite": defaultdict(list)}
        day_sizes = {}
        try:
            for day in measured:  # warm the caches for these days
                baseline(day)
                rollup(day)
            for r in range(args.repeat):
                for day in measured:
                    order = ("baseline", "fresh", "rewrite") if r % 2 == 0 else ("fresh", "rewrite", "baseline")
                    for kind in order:
                        if kind == "baseline":
                            times["baseline"].append(baseline(day))
                            continue
                        if kind == "fresh":
                            make_fresh(day)
                        else:  # dead rows of earlier rounds would not outlive a night's autovacuum
                            cur.execute(f"VACUUM {', '.join(ROLLUP_TABLES)}, daily_stats")
                        phases.clear()
                        ms, result = rollup(day)
                        times[kind].append(ms)
                        for phase, values in phases.items():
                            split[kind][phase].append(sum(values))
                        day_sizes[day.isoformat()] = {
                            "sessions": result.sessions,
                            "topics": result.topics,
                            "messages": result.messages,
                        }
        finally:
            for name, fn in wrapped.items():
                setattr(analytics, name, fn)
        env["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
        med = {k: statistics.median(v) for k, v in times.items()}
        report["one_day"] = {
            "days": day_sizes,
            "median_ms": {k: round(v, 1) for k, v in med.items()},
            "runs_ms": {k: [round(x, 1) for x in v] for k, v in times.items()},
            "rollup_phases_median_ms": {
                kind: {p: round(statistics.median(v), 1) for p, v in ph.items()} for kind, ph in split.items()
            },
            "ratio_fresh_to_sql": round(med["fresh"] / med["baseline"], 2),
            "ratio_rewrite_to_sql": round(med["rewrite"] / med["baseline"], 2),
        }
        cur.close()
        raw.close()

    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"rollup-{args.sessions}-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.json"
    out.write_text(json.dumps(report, indent=2, default=str) + "\n")
    one = report["one_day"]
    print()
    sizes = "; ".join(f"{d}: {n['sessions']:,} sessions, {n['messages']:,} messages" for d, n in one["days"].items())
    print(f"one day ({sizes})")
    print(f"  SQL GROUP BY (daily_stats only)     {med['baseline']:8.1f} ms")
    for kind in ("fresh", "rewrite"):
        ph = one["rollup_phases_median_ms"][kind]
        detail = ", ".join(f"{p} {v:.0f}" for p, v in ph.items())
        print(
            f"  rollup, {kind:8s} (all 5 tables)     {med[kind]:8.1f} ms  ({detail})  x{med[kind] / med['baseline']:.2f}"
        )
    print(f"load average: {env['loadavg_at_start']} at start, {env['loadavg_at_end']} at end")
    print(f"written to {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
