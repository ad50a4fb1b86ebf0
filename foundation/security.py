"""Response headers and HTTPS behind a proxy.

The tutor's own pages get a strict Content-Security-Policy (scripts only from this site,
nothing inline). Dash and rq-dashboard render inline bootstrap scripts, so ``/admin/`` gets
a policy that allows those but still no foreign origins. Every page refuses framing except
``/embed``, which the origins in ``EMBED_ALLOWED_ORIGINS`` may frame.
"""

from __future__ import annotations

from datetime import timedelta

from flask import Flask, current_app, request
from werkzeug.middleware.proxy_fix import ProxyFix

STRICT = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'self'; form-action 'self'; object-src 'none'"
ADMIN = "default-src 'self'; script-src 'self' 'unsafe-inline' 'unsafe-eval'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; base-uri 'self'; form-action 'self'; object-src 'none'"


def security_headers(response):
    if request.path == "/embed":
        origins = current_app.config["EMBED_ALLOWED_ORIGINS"].replace(",", " ").split()
        ancestors = " ".join(origins) if origins else "'none'"
    else:
        ancestors = "'none'"
    policy = ADMIN if request.path.startswith("/admin/") else STRICT
    response.headers.setdefault("Content-Security-Policy", f"{policy}; frame-ancestors {ancestors}")
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "strict-origin-when-cross-origin")
    if request.is_secure:
        response.headers.setdefault("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
    return response


def init_app(app: Flask) -> None:
    proxies = int(app.config.get("TRUSTED_PROXIES", 0))
    if proxies:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=proxies, x_proto=proxies, x_host=proxies)  # type: ignore[method-assign]
    if app.config["APP_ENV"] == "production":
        app.config.update(SESSION_COOKIE_SECURE=True, REMEMBER_COOKIE_SECURE=True)
    app.config.update(SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Lax", REMEMBER_COOKIE_SAMESITE="Lax")
    # "Remember me" lasts a school term, not Flask-Login's default year; logging out ends it
    # on every device (tutor.auth.end_all_logins).
    app.config.setdefault("REMEMBER_COOKIE_DURATION", timedelta(days=30))
    app.after_request(security_headers)
    app.before_request(refuse_nul_bytes)


def refuse_nul_bytes():
    """A NUL in a query string or form field cannot be stored or even compared by PostgreSQL
    (psycopg2 refuses the statement): answer 400 here rather than 500 deep inside."""
    values = list(request.args.values())
    if request.mimetype in ("application/x-www-form-urlencoded", "multipart/form-data"):
        values += request.form.values()
    if any("\x00" in v for v in values):
        from .errors import json_error, wants_json

        if wants_json():
            return json_error(400, "bad_request", "Text must not contain NUL characters.")
        return "Text must not contain NUL characters.", 400, {"Content-Type": "text/plain; charset=utf-8"}
    return None
