"""What users see when something breaks: never a stack trace, never a secret.

With PostgreSQL unreachable, pages show a plain "temporarily unavailable" page and the API
answers 503 JSON; the cause goes to the log.
"""

from __future__ import annotations

from typing import Any

import redis.exceptions
from flask import Flask, Response, current_app, jsonify, render_template, request
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from werkzeug.exceptions import HTTPException, InternalServerError


def json_error(status: int, error: str, detail: str = "", **extra: Any) -> Response:
    """The one JSON error shape of the API: ``{"error": code, "detail": sentence, ...}``."""
    response = jsonify(error=error, detail=detail, **extra)
    response.status_code = status
    return response


def wants_json() -> bool:
    """Whether this request gets JSON errors: the API, and admin endpoints that are not pages."""
    if request.path.startswith("/api/"):
        return True
    return request.path.startswith("/admin/") and not request.accept_mimetypes.accept_html


def _unavailable(exc: Exception):
    from .extensions import db

    busy = isinstance(exc, PoolTimeout)
    if busy:  # every pooled connection is in use: a moment's overload, not an outage
        current_app.logger.warning("database pool exhausted on %s %s", request.method, request.path)
    elif isinstance(exc, redis.exceptions.RedisError):
        current_app.logger.error("redis unavailable: %s", exc)
    else:
        current_app.logger.error("database unavailable: %s", getattr(exc, "orig", exc))
    try:
        db.session.rollback()
    except Exception:  # noqa: BLE001 - the connection is gone; nothing to roll back
        pass
    retry_after = "2" if busy else "30"
    if wants_json():
        response = json_error(503, "unavailable", "The service is temporarily unavailable; try again shortly.")
        response.headers["Retry-After"] = retry_after
        return response
    # Rendered without Flask's context processors: Flask-Login's would load the user, which
    # needs the database that is down.
    page = current_app.jinja_env.get_template("unavailable.html").render()
    return page, 503, {"Retry-After": retry_after, "Content-Type": "text/html; charset=utf-8"}


def _internal(exc: Exception):
    if isinstance(exc, HTTPException) and not isinstance(exc, InternalServerError):
        return exc
    current_app.logger.exception("unhandled error on %s %s", request.method, request.path)
    if wants_json():
        return json_error(500, "internal_error", "Something went wrong on our side; it has been logged.")
    return render_template(
        "error.html", title="Something went wrong", message="It has been logged. Please try again in a moment."
    ), 500


def init_app(app: Flask) -> None:
    app.register_error_handler(OperationalError, _unavailable)
    app.register_error_handler(InterfaceError, _unavailable)
    app.register_error_handler(PoolTimeout, _unavailable)
    app.register_error_handler(redis.exceptions.ConnectionError, _unavailable)
    app.register_error_handler(redis.exceptions.TimeoutError, _unavailable)
    app.register_error_handler(InternalServerError, _internal)
    app.register_error_handler(Exception, _internal)
