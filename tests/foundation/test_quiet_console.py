"""The dev console: no line per request, no per-job chatter, one line per provider failure,
no crontab FutureWarning (the console issue)."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import warnings
from pathlib import Path

from foundation.logs import job_log_level
from tests.conftest import run_jobs
from tests.openai_server import ScriptedOpenAI

ROOT = Path(__file__).resolve().parents[2]


def _accesslog(**env: str) -> str:
    clean = {k: v for k, v in os.environ.items() if k not in ("LOG_FORMAT", "LOG_LEVEL", "APP_ENV")}
    result = subprocess.run([sys.executable, "-c", "import foundation.gunicorn_conf as c; print(c.accesslog)"],
                            cwd=ROOT, env=clean | env, capture_output=True, text=True, timeout=60, check=True)  # fmt: skip
    return result.stdout.strip()


def test_a_line_per_request_only_in_the_json_log_or_at_debug():
    assert _accesslog() == "None"
    assert _accesslog(LOG_FORMAT="json") == "-"
    assert _accesslog(LOG_LEVEL="DEBUG") == "-"


def test_rq_chatter_is_kept_for_the_json_log_or_debug():
    assert job_log_level({"LOG_LEVEL": "INFO", "LOG_FORMAT": "text"}) == "WARNING"
    assert job_log_level({"LOG_LEVEL": "INFO", "LOG_FORMAT": "json"}) == "INFO"
    assert job_log_level({"LOG_LEVEL": "DEBUG", "LOG_FORMAT": "text"}) == "DEBUG"
    assert job_log_level({"LOG_LEVEL": "ERROR", "LOG_FORMAT": "text"}) == "ERROR"


def test_a_provider_outage_logs_one_line_per_attempt_not_tracebacks(app, student, caplog):
    saved = {k: app.config[k] for k in ("AI_PROVIDER", "OPENAI_BASE_URL")}
    try:
        with ScriptedOpenAI([500, 500, 500, 500]) as server, caplog.at_level(logging.INFO):
            app.config.update(AI_PROVIDER="openai", OPENAI_BASE_URL=server.base_url)
            sid = student.post("/api/v1/sessions", json={"subject": "mathematics"}).get_json()["id"]
            student.post(f"/api/v1/sessions/{sid}/messages", json={"content": "solve 2x = 8"})
            run_jobs(app)
    finally:
        app.config.update(saved)
    lines = [r.getMessage() for r in caplog.records]
    assert sum("will retry" in line for line in lines) == 3
    assert sum("failed after 4 attempt" in line for line in lines) == 1
    assert not any("exception raised while executing" in line or "Traceback" in line for line in lines), lines


def test_cron_times_come_without_a_future_warning():
    import rq_scheduler.utils

    from jobs.schedule import next_cron_time

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = rq_scheduler.utils.get_next_scheduled_time("15 3 * * *", use_local_timezone=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ours = next_cron_time("15 3 * * *", use_local_timezone=True)
    assert ours == theirs
