"""Logs that can be followed across processes: every line carries the request id (web) or
the RQ job id (worker). ``LOG_FORMAT=json`` (the production default) writes one JSON object
per line for a log pipeline; ``text`` is for people at a terminal."""

from __future__ import annotations

import json
import logging
import re
import uuid

from flask import Flask, g, has_request_context, request

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = g.get("request_id", "-") if has_request_context() else "-"
        record.job_id = "-"
        try:
            from rq import get_current_job

            job = get_current_job()
            if job is not None:
                record.job_id = job.id
        except Exception:  # noqa: BLE001 - outside a worker there is no job
            pass
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", "-"),
            "job_id": getattr(record, "job_id", "-"),
        }
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return json.dumps(data)


def configure(level: str, fmt: str) -> None:
    """Set up the root logger once per process (web, worker and scheduler alike)."""
    root = logging.getLogger()
    if getattr(root, "_aitutor_configured", False):
        return
    handler = logging.StreamHandler()
    handler.addFilter(ContextFilter())
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s [req=%(request_id)s job=%(job_id)s] %(message)s")
        )
    root.handlers[:] = [handler]
    root.setLevel(level)
    # The HTTP clients under the openai package log every request at INFO: one line per
    # tutor reply says nothing the job's own lines do not.
    if str(level).upper() != "DEBUG":
        for noisy in ("httpx", "httpx2", "httpcore", "httpcore2"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
    root._aitutor_configured = True  # type: ignore[attr-defined]


def _assign_request_id() -> None:
    incoming = request.headers.get("X-Request-ID", "")
    g.request_id = incoming if _REQUEST_ID.match(incoming) else uuid.uuid4().hex


def _echo_request_id(response):
    response.headers["X-Request-ID"] = g.get("request_id", "")
    return response


def init_app(app: Flask) -> None:
    configure(app.config["LOG_LEVEL"], app.config["LOG_FORMAT"])
    app.before_request(_assign_request_id)
    app.after_request(_echo_request_id)


def job_log_level(config) -> str:  # type: ignore[no-untyped-def]
    """The level for RQ's and rq-scheduler's own loggers. Their INFO lines (several per job:
    picked up, done, result kept; the scheduler's heartbeat) belong in the production (JSON)
    log or a DEBUG run; the dev console shows their warnings and errors only."""
    level = str(config.get("LOG_LEVEL", "INFO")).upper()
    if config.get("LOG_FORMAT") == "json" or level == "DEBUG":
        return level
    return "WARNING" if level == "INFO" else level
