"""Benchmark: ``seed_demo`` against a plain PostgreSQL ``COPY`` of the same rows.

    /work/venv/bin/python bench/seed_bench.py --sessions 1000000 \\
        --database-url postgresql://postgres@127.0.0.1:5432/aitutor_seedbench

The database named by ``--database-url`` is wiped (``DROP SCHEMA public CASCADE``) and migrated
with the app's own migrations. Then, side by side:

1. ``seed_demo`` writes the requested sessions (``--repeat`` times, tables truncated between runs);
2. the rows it wrote are dumped to CSV files (``COPY ... TO``) with the same columns the seed
   writes, the tables are truncated, and a plain ``COPY ... FROM`` of those files loads them
   back into the same tables with the same indexes, constraints and transaction settings
   (``--repeat`` times).

The two sides alternate (seed, COPY, seed, COPY, ...) so that changes in the machine's load
affect both alike; every seed run uses the same "now", so it writes the same rows each time.

Medians of both are printed and written as JSON under ``bench/results/`` together with the
ratio seed time / plain COPY time and a description of the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
TABLES = ("users", "sessions", "session_topics", "messages", "attempts")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--sessions", type=int, default=1_000_000, help="sessions to seed (default 1,000,000)")
    p.add_argument("--days", type=int, default=120, help="days of history (default 120)")
    p.add_argument("--students", type=int, default=None, help="default: sessions / (0.3 x days)")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--repeat", type=int, default=None, help="runs per side (default 1 from 500k sessions, else 3)")
    p.add_argument("--database-url", required=True, help="a scratch database: it is wiped")
    p.add_argument("--redis-url", default="redis://127.0.0.1:6379/13")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--keep-csv", type=Path, default=None, help="keep the dumped CSV files in this folder")
    return p.parse_args(argv)


def median(values: list[float]) -> float:
    return statistics.median(values)


def machine(conn: Any) -> dict[str, Any]:
    def sql(query: str) -> str:
        with conn.cursor() as cur:
            cur.execute(query)
            return cur.fetchone()[0]

    info: dict[str, Any] = {
        "nproc": os.cpu_count(),
        "cpu": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "postgres": sql("SELECT version()"),
        "postgres_settings": {
            name: sql(f"SHOW {name}")
            for name in ("shared_buffers", "max_wal_size", "wal_level", "synchronous_commit", "fsync", "work_mem")
        },
    }
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                info["ram_gib"] = round(int(line.split()[1]) / 1024**2, 1)
    except OSError:
        pass
    try:
        import numpy

        info["numpy"] = numpy.__version__
    except ImportError:  # pragma: no cover
        pass
    try:
        info["git"] = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=False
        ).stdout.strip()
    except OSError:
        pass
    return info


def truncate(engine: Any) -> None:
    raw = engine.raw_connection()
    try:
        with raw.cursor() as cur:
            cur.execute(f"TRUNCATE {', '.join(TABLES)}, session_metrics, daily_stats RESTART IDENTITY CASCADE")
        raw.commit()
        # Start every timed run from a fresh checkpoint, so neither side pays for the other's WAL.
        raw.autocommit = True
        try:
            with raw.cursor() as cur:
                cur.execute("CHECKPOINT")
        except Exception:  # needs superuser or pg_checkpoint; the run is still valid without it
            pass
        raw.autocommit = False
    finally:
        raw.close()


def count_rows(engine: Any) -> dict[str, int]:
    raw = engine.raw_connection()
    try:
        with raw.cursor() as cur:
            out = {}
            for table in TABLES:
                cur.execute(f"SELECT count(*) FROM {table}")
                out[table] = cur.fetchone()[0]
        raw.commit()
        return out
    finally:
        raw.close()


def columns() -> dict[str, str]:
    """The columns the seed writes (users also keep their ids, which sessions point at)."""
    from devtools import demo

    return {
        "users": "id, " + demo.USER_COLUMNS,
        "sessions": demo.SESSION_COLUMNS,
        "session_topics": demo.TOPIC_COLUMNS,
        "messages": demo.MESSAGE_COLUMNS,
        "attempts": demo.ATTEMPT_COLUMNS,
    }


def dump(engine: Any, folder: Path) -> dict[str, int]:
    """COPY each table TO a CSV file, in physical (= insertion) order; returns bytes per file."""
    cols = columns()
    sizes = {}
    raw = engine.raw_connection()
    try:
        with raw.cursor() as cur:
            for table in TABLES:
                path = folder / f"{table}.csv"
                with path.open("wb") as fh:
                    cur.copy_expert(f"COPY {table} ({cols[table]}) TO STDOUT WITH (FORMAT csv)", fh)
                sizes[table] = path.stat().st_size
        raw.commit()
    finally:
        raw.close()
    return sizes


def plain_copy(engine: Any, folder: Path) -> tuple[float, dict[str, float]]:
    """COPY the files back, table by table, in one transaction like the seed. Returns seconds."""
    from devtools import demo

    cols = columns()
    per_table = {}
    raw = engine.raw_connection()
    try:
        started = time.perf_counter()
        with raw.cursor() as cur:
            cur.execute("SET LOCAL synchronous_commit = off")
            for table in TABLES:
                t0 = time.perf_counter()
                with (folder / f"{table}.csv").open("rb") as fh:
                    cur.copy_expert(
                        f"COPY {table} ({cols[table]}) FROM STDIN WITH (FORMAT csv)", fh, size=demo.COPY_CHUNK
                    )
                per_table[table] = time.perf_counter() - t0
        raw.commit()
        seconds = time.perf_counter() - started
        # users got explicit ids: move the identity past them (not timed; the seed never needs it)
        with raw.cursor() as cur:
            cur.execute("SELECT setval(pg_get_serial_sequence('users', 'id'), coalesce(max(id), 1)) FROM users")
        raw.commit()
    finally:
        raw.close()
    return seconds, per_table


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    repeat = args.repeat or (1 if args.sessions >= 500_000 else 3)
    students = args.students or max(1, round(args.sessions / (0.3 * args.days)))

    instance = Path(tempfile.mkdtemp(prefix="aitutor-seedbench-"))
    os.environ.update(
        {
            "DATABASE_URL": args.database_url,
            "REDIS_URL": args.redis_url,
            "INSTANCE_PATH": str(instance),
            "APP_ENV": "development",
        }
    )
    sys.path.insert(0, str(ROOT))
    from flask_migrate import upgrade
    from sqlalchemy import create_engine, text

    from app import create_app
    from devtools.demo import seed_demo
    from foundation.config import normalize_database_url
    from foundation.extensions import db

    url = normalize_database_url(args.database_url)
    wipe = create_engine(url)
    with wipe.begin() as conn:
        conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    wipe.dispose()

    app = create_app()
    csv_dir = Path(tempfile.mkdtemp(prefix="aitutor-seedbench-csv-"))
    try:
        with app.app_context():
            upgrade()
            engine = db.engine
            raw = engine.raw_connection()
            try:
                env = machine(raw)
                env["loadavg_at_start"] = [round(x, 2) for x in os.getloadavg()]
                raw.commit()
            finally:
                raw.close()

            print(f"{args.sessions:,} sessions, {students:,} students, {args.days} days; {repeat} round(s)")
            now = datetime.now(UTC)  # every seed run writes exactly the same rows
            seed_wall: list[float] = []
            copy_runs: list[float] = []
            copy_tables: list[dict[str, float]] = []
            rows: dict[str, int] = {}
            sizes: dict[str, int] = {}
            peak_rss_mib = 0.0
            # Rounds alternate the two sides, so a change in machine load hits both alike.
            for i in range(repeat):
                truncate(engine)
                t0 = time.perf_counter()
                result = seed_demo(
                    engine,
                    students=students,
                    days=args.days,
                    sessions=args.sessions,
                    seed=args.seed,
                    now=now,
                    progress=not args.no_progress,
                )
                seed_wall.append(time.perf_counter() - t0)
                print(f"  round {i + 1} seed_demo:  {result.summary()}")
                counted = count_rows(engine)
                assert counted == {
                    "users": result.users,
                    "sessions": result.sessions,
                    "session_topics": result.topics,
                    "messages": result.messages,
                    "attempts": result.attempts,
                }, counted
                assert not rows or counted == rows, (counted, rows)
                rows = counted
                if i == 0:
                    peak_rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
                    print("  dumping the seeded rows to CSV (COPY TO)")
                    sizes = dump(engine, csv_dir)

                truncate(engine)
                seconds, per_table = plain_copy(engine, csv_dir)
                copy_runs.append(seconds)
                copy_tables.append(per_table)
                assert count_rows(engine) == rows
                detail = ", ".join(f"{t} {s:.1f} s" for t, s in per_table.items())
                print(f"  round {i + 1} plain COPY: {seconds:.1f} s ({detail})")
            total_rows = sum(rows.values())
            env["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]

        seed_s, copy_s = median(seed_wall), median(copy_runs)
        report = {
            "benchmark": "demo seed vs plain COPY",
            "when": datetime.now(UTC).isoformat(timespec="seconds"),
            "parameters": {
                "sessions": args.sessions,
                "students": students,
                "days": args.days,
                "seed": args.seed,
                "repeat": repeat,
            },
            "machine": env,
            "rows": rows,
            "total_rows": total_rows,
            "csv_bytes": sizes,
            "seed": {
                "runs_s": [round(s, 2) for s in seed_wall],
                "median_s": round(seed_s, 2),
                "rows_per_s": round(total_rows / seed_s),
                "sessions_per_s": round(args.sessions / seed_s),
                "peak_rss_mib": round(peak_rss_mib),
            },
            "plain_copy": {
                "runs_s": [round(s, 2) for s in copy_runs],
                "median_s": round(copy_s, 2),
                "rows_per_s": round(total_rows / copy_s),
                "per_table_s": {t: round(median([run[t] for run in copy_tables]), 2) for t in TABLES},
            },
            "ratio_seed_to_plain_copy": round(seed_s / copy_s, 3),
        }
        RESULTS.mkdir(parents=True, exist_ok=True)
        out = RESULTS / f"seed-{args.sessions}-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.json"
        out.write_text(json.dumps(report, indent=2) + "\n")

        width = 22
        print()
        print(f"{'':{width}} {'seed_demo':>14} {'plain COPY':>14}")
        print(f"{'seconds (median)':{width}} {seed_s:>14.1f} {copy_s:>14.1f}")
        print(f"{'rows/s':{width}} {total_rows / seed_s:>14,.0f} {total_rows / copy_s:>14,.0f}")
        print(f"{'rows':{width}} {total_rows:>14,} {total_rows:>14,}")
        print(
            f"rows: {rows['sessions']:,} sessions, {rows['messages']:,} messages, "
            f"{rows['session_topics']:,} topic rows, {rows['users']:,} users"
        )
        print(f"ratio seed / plain COPY: {seed_s / copy_s:.2f}   peak RSS: {peak_rss_mib:,.0f} MiB")
        print(f"wrote {out.relative_to(ROOT)}")
        if args.keep_csv:
            args.keep_csv.mkdir(parents=True, exist_ok=True)
            for table in TABLES:
                shutil.move(str(csv_dir / f"{table}.csv"), args.keep_csv / f"{table}.csv")
        return 0
    finally:
        shutil.rmtree(csv_dir, ignore_errors=True)
        shutil.rmtree(instance, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
