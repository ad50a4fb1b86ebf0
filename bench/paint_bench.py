"""Benchmark: how long the analytics dashboard takes to repaint after a range change, in Chromium.

    python bench/paint_bench.py --database-url postgresql://postgres@127.0.0.1:5432/aitutor_paintbench
    python bench/paint_bench.py --database-url ... --app-dir ../other-checkout --label before

The database is migrated and, unless it already holds ``--sessions`` demo sessions, wiped and
seeded (``devtools.demo.seed_demo``), rolled up through yesterday as the nightly job would have,
and given an admin. The web process runs as the Procfile runs it (gunicorn, one process) from
``--app-dir`` (default: this checkout), so two checkouts can be measured side by side on the
same data. Headless Chromium (Debian's, through Playwright) logs in, opens the month view and
then cycles Quarter → Week → Month ``--rounds`` times by clicking the period buttons.

For each change: **paint** is the time from the click to the last ``plotly_afterplot`` of any
chart once every callback has answered (no Dash component loading, nothing drawn for 400 ms);
**server** is the longest ``_dash-update-component`` request of that change as the browser's
Resource Timing saw it (request start to response end), **all answered** when the last of
them had arrived, from the click. Medians per change and overall are
printed and written as JSON under ``bench/results/``.
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
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
ADMIN_EMAIL, ADMIN_PASSWORD = "paint-bench@school.org", "Kettle-Orbit-4417"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update"]  # fmt: skip
SEQUENCE = (("quarter", 90), ("week", 7), ("month", 30))

#: Installed in the page before each change: remember the click time and every chart's last draw.
_ARM = """
() => {
  window.__paint = {last: 0, draws: 0};
  for (const gd of document.querySelectorAll('.js-plotly-plot')) {
    if (gd.__paintHooked) continue;
    gd.__paintHooked = true;
    gd.on('plotly_afterplot', () => { window.__paint.last = performance.now(); window.__paint.draws += 1; });
  }
  performance.clearResourceTimings();
}
"""
_CLICK = """
(value) => { window.__paint.t0 = performance.now();
             document.querySelector('#time-range input[value=' + value + ']').click(); }
"""
_SETTLED = """
([n, quiet]) => {
  const g = document.querySelector('#sessions-chart .js-plotly-plot');
  const ok = g && g.data && g.data[0] && g.data[0].x && g.data[0].x.length === n;
  const loading = document.querySelector('[data-dash-is-loading="true"]');
  return ok && !loading && window.__paint.last > window.__paint.t0 && performance.now() - window.__paint.last > quiet;
}
"""
_READY = """
(n) => { const g = document.querySelector('#sessions-chart .js-plotly-plot');
         return g && g.data && g.data[0] && g.data[0].x && g.data[0].x.length === n
                && !document.querySelector('[data-dash-is-loading="true"]'); }
"""
_RESULT = """
() => {
  const calls = performance.getEntriesByType('resource').filter(e => e.name.includes('_dash-update-component'));
  const t0 = window.__paint.t0;
  return {paint: window.__paint.last - t0, draws: window.__paint.draws,
          server: Math.max(0, ...calls.map(e => e.responseEnd - e.requestStart)), callbacks: calls.length,
          answered: Math.max(0, ...calls.map(e => e.responseEnd - t0))};
}
"""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--database-url", required=True, help="a scratch database (wiped if it must be seeded)")
    p.add_argument("--redis-url", default="redis://127.0.0.1:6379/10")
    p.add_argument("--sessions", type=int, default=20_000, help="demo sessions (default 20,000)")
    p.add_argument("--students", type=int, default=600)
    p.add_argument("--days", type=int, default=120)
    p.add_argument("--rounds", type=int, default=5, help="Quarter → Week → Month cycles (default 5)")
    p.add_argument("--app-dir", type=Path, default=ROOT, help="the checkout whose web app is measured")
    p.add_argument("--label", default="")
    p.add_argument("--trace", type=Path, help="write a Chrome trace of the last round's change to Quarter here")
    p.add_argument("--port", type=int, default=8766)
    p.add_argument("--chromium", default=os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"))
    return p.parse_args(argv)


def prepare(args: argparse.Namespace) -> None:
    """Migrate, seed when needed, roll up and create the admin, from ``--app-dir``'s code."""
    script = f"""
import sys; sys.path.insert(0, {str(args.app_dir)!r})
from datetime import timedelta
from flask_migrate import upgrade
from sqlalchemy import text
from app import create_app
from analytics.rollup import local_today, rollup_range
from devtools.demo import seed_demo
from foundation.extensions import db
from tutor.users import create_user
app = create_app()
with app.app_context():
    upgrade()
    have = db.session.execute(text("SELECT count(*) FROM sessions")).scalar()
    if have != {args.sessions}:
        db.session.remove()
        with db.engine.begin() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
        upgrade()
        print(seed_demo(db.engine, students={args.students}, days={args.days}, sessions={args.sessions},
                        seed=7, progress=False).summary())
        today = local_today()
        rollup_range(today - timedelta(days={args.days} + 1), today - timedelta(days=1))
    if db.session.execute(text("SELECT count(*) FROM users WHERE email = :e"), {{"e": {ADMIN_EMAIL!r}}}).scalar() == 0:
        create_user({ADMIN_EMAIL!r}, {ADMIN_PASSWORD!r}, role="admin")
        db.session.commit()
"""
    subprocess.run([sys.executable, "-c", script], cwd=args.app_dir, env=_env(args), check=True)


def _env(args: argparse.Namespace) -> dict[str, str]:
    return os.environ | {
        "DATABASE_URL": args.database_url,
        "REDIS_URL": args.redis_url,
        "APP_ENV": "development",
        "LOG_LEVEL": "WARNING",
        "INSTANCE_PATH": str(Path(tempfile.gettempdir()) / "aitutor-paint-bench"),
        "WEB_CONCURRENCY": "1",
        "PORT": str(args.port),
    }


def _wait_http(url: str, timeout: float = 60) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.3)
    raise SystemExit(f"the web process did not answer at {url}")


def measure(args: argparse.Namespace) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "python:foundation.gunicorn_conf", "--bind",
         f"127.0.0.1:{args.port}", "app:create_app()"],
        cwd=args.app_dir, env=_env(args),
    )  # fmt: skip
    base = f"http://127.0.0.1:{args.port}"
    changes: list[dict[str, Any]] = []
    try:
        _wait_http(base + "/healthz")
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=args.chromium, args=CHROMIUM_ARGS)
            page = browser.new_context(base_url=base, viewport={"width": 1440, "height": 900}).new_page()
            page.set_default_timeout(60_000)
            page.goto("/login")
            page.fill("#login-form input[name=email]", ADMIN_EMAIL)
            page.fill("#login-form input[name=password]", ADMIN_PASSWORD)
            page.click("#login-form button[type=submit]")
            page.wait_for_url(lambda url: "/login" not in url)
            page.goto("/admin/analytics/")
            page.wait_for_function(_READY, arg=30)
            page.wait_for_timeout(1000)
            for round_ in range(args.rounds + 1):  # the first cycle warms up
                for value, days in SEQUENCE:
                    page.evaluate(_ARM)
                    tracing = args.trace and round_ == args.rounds and value == SEQUENCE[0][0]
                    if tracing:  # one change, as a Chrome trace (open it in chrome://tracing or Perfetto)
                        browser.start_tracing(
                            page=page,
                            path=str(args.trace),
                            screenshots=False,
                            categories=[
                                "devtools.timeline",
                                "disabled-by-default-devtools.timeline",
                                "disabled-by-default-v8.cpu_profiler",
                                "v8.execute",
                                "blink.user_timing",
                            ],
                        )
                    page.evaluate(_CLICK, value)
                    page.wait_for_function(_SETTLED, arg=[days, 400], polling=50)
                    if tracing:
                        browser.stop_tracing()
                    result = page.evaluate(_RESULT)
                    if round_:
                        changes.append({"to": value} | result)
                        print(f"  → {value:8s} paint {result['paint']:7.0f} ms   server {result['server']:5.0f} ms"
                              f"   all answered {result['answered']:5.0f} ms"
                              f"   ({result['callbacks']} callbacks, {result['draws']} draws)")  # fmt: skip
                    page.wait_for_timeout(300)
            browser.close()
    finally:
        server.terminate()
        server.wait(10)
    return {"changes": changes}


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    args.app_dir = args.app_dir.resolve()
    started = datetime.now(UTC)
    load_before = os.getloadavg()
    prepare(args)
    out = measure(args)
    summary: dict[str, Any] = {}
    print(f"\n{args.label or args.app_dir}: medians of {args.rounds} rounds")
    for value, _days in (*SEQUENCE, ("all", 0)):
        rows = [c for c in out["changes"] if value in ("all", c["to"])]
        paint = statistics.median(c["paint"] for c in rows)
        server = statistics.median(c["server"] for c in rows)
        answered = statistics.median(c["answered"] for c in rows)
        summary[value] = {"paint_ms": paint, "server_ms": server, "answered_ms": answered, "n": len(rows)}
        print(
            f"  {value:8s} paint {paint:7.0f} ms   server {server:5.0f} ms   all answered {answered:5.0f} ms"
            f"   (n={len(rows)})"
        )
    print(f"load average {load_before} at start, {os.getloadavg()} at end")
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"paint-{args.label or 'run'}-{started:%Y%m%dT%H%M%SZ}.json"
    path.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "summary": summary,
                                "machine": platform.platform(), "load": [load_before, os.getloadavg()]}
                               | out, indent=1))  # fmt: skip
    print(f"written to {path}")


if __name__ == "__main__":
    main()
