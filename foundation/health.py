"""Liveness and readiness probes.

``/readyz`` checks PostgreSQL and Redis concurrently and answers within a fixed deadline
even when a service hangs, so a load balancer never waits on it.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait

from flask import Blueprint, Flask, current_app, jsonify
from sqlalchemy import text

from .extensions import db, redis_ext

bp = Blueprint("health", __name__)

READY_DEADLINE_S = 1.5
_pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="readyz")


def _check_postgres() -> None:
    with db.engine.connect() as conn:
        conn.execute(text("SET LOCAL statement_timeout = 1000"))
        conn.execute(text("SELECT 1"))


def _check_redis() -> None:
    redis_ext.conn.ping()


def check_services(app: Flask, deadline: float = READY_DEADLINE_S) -> dict[str, str]:
    """``{"postgres": "ok"|"down", "redis": "ok"|"down"}`` within ``deadline`` seconds."""

    def run(check: Callable[[], None]) -> None:
        with app.app_context():
            check()

    futures = {name: _pool.submit(run, fn) for name, fn in (("postgres", _check_postgres), ("redis", _check_redis))}
    wait(futures.values(), timeout=deadline)
    status = {}
    for name, future in futures.items():
        ok = future.done() and future.exception() is None
        status[name] = "ok" if ok else "down"
        if future.done() and future.exception() is not None:
            app.logger.warning("readyz: %s is down: %s", name, future.exception())
    return status


@bp.get("/healthz")
def healthz():
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz():
    status = check_services(current_app._get_current_object())  # type: ignore[attr-defined]
    ready = all(v == "ok" for v in status.values())
    return jsonify(status="ok" if ready else "unavailable", **status), 200 if ready else 503
