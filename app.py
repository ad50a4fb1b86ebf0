"""The AI Tutor server.

``create_app()`` builds the one Flask server that hosts the tutoring blueprint, the Dash
analytics app (``/admin/analytics/``) and the health probes. ``python app.py`` is the
one-command dev run: it starts (or connects to) PostgreSQL and Redis, applies migrations and
runs the web server, an RQ worker and the scheduler as child processes.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Flask

from foundation.config import ConfigError, development_secret_key, load_settings, normalize_database_url


def create_app(test_config: Mapping[str, Any] | None = None) -> Flask:
    """Application factory; ``test_config`` overrides settings read from the environment."""
    settings = load_settings()
    app = Flask(__name__, instance_path=settings.INSTANCE_PATH, instance_relative_config=False)
    app.config.from_mapping(settings.flask_config())
    if test_config:
        app.config.update(test_config)
    Path(app.instance_path).mkdir(parents=True, exist_ok=True)

    _resolve_services(app)
    if not app.config["SECRET_KEY"]:
        app.config["SECRET_KEY"] = development_secret_key(app.instance_path)
    app.config.setdefault("SQLALCHEMY_DATABASE_URI", app.config["DATABASE_URL"])
    app.config.setdefault(
        "SQLALCHEMY_ENGINE_OPTIONS",
        {
            # Connections idle for more than a second are pinged before use, the others are
            # not: foundation.extensions.ping_idle_connections (pool_pre_ping pings them all).
            # Sized for the web process's concurrency: requests hold a connection only while they
            # run SQL (streams and password hashing hold none); a request that waits longer than
            # DB_POOL_TIMEOUT for one gets 503 with Retry-After.
            "pool_size": app.config["DB_POOL_SIZE"],
            "max_overflow": app.config["DB_MAX_OVERFLOW"],
            "pool_timeout": app.config["DB_POOL_TIMEOUT"],
            "connect_args": {
                "connect_timeout": 2,
                "application_name": "aitutor",
                "options": "-c timezone=UTC",
            },
        },
    )
    app.config["DEBUG"] = False if app.config["APP_ENV"] == "production" else app.config.get("DEBUG", False)

    import analytics.knowledge  # noqa: F401  (the mastery snapshot joins them too)
    import analytics.tables  # noqa: F401  (the analytics tables join the models' metadata)
    from analytics import cli as analytics_cli
    from devtools import cli as devtools_cli
    from foundation import admission, backup, errors, health, logs, metrics, security
    from foundation.extensions import db, migrate, ping_idle_connections, redis_ext
    from tutor import auth, classes_api, cli, openapi  # noqa: F401  (classes_api, openapi: routes)
    from tutor import bp as tutor_bp
    from tutor.api import bp as api_bp
    from tutor.curriculum import use_directory

    logs.init_app(app)
    use_directory(app.config["CURRICULUM_DIR"])  # a broken file stops start-up, naming the file and field
    db.init_app(app)
    if not app.config["SQLALCHEMY_ENGINE_OPTIONS"].get("pool_pre_ping"):
        with app.app_context():
            ping_idle_connections(db.engine)
    migrate.init_app(app, db, directory=str(Path(__file__).parent / "migrations"), compare_type=True)
    redis_ext.init_app(app)
    auth.init_app(app)
    app.register_blueprint(tutor_bp)
    app.register_blueprint(api_bp)
    app.register_blueprint(health.bp)
    cli.init_app(app)
    analytics_cli.init_app(app)
    devtools_cli.init_app(app)
    app.before_request(auth.admin_guard)
    security.init_app(app)
    backup.init_app(app)
    admission.init_app(app)
    metrics.init_app(app)
    errors.init_app(app)
    _mount_rq_dashboard(app)

    from dashboard import init_dashboard

    init_dashboard(app)
    return app


def _mount_rq_dashboard(app: Flask) -> None:
    """rq-dashboard for ops at /admin/rq/ (the admin guard covers its pages, JSON and actions)."""
    import rq_dashboard

    app.config["RQ_DASHBOARD_REDIS_URL"] = app.config["REDIS_URL"]
    rq_dashboard.web.setup_rq_connection(app)
    app.register_blueprint(rq_dashboard.blueprint, url_prefix="/admin/rq")


# CLI groups that need neither PostgreSQL nor Redis (``guardrail judge`` runs on a plain machine).
OFFLINE_COMMANDS = frozenset({"guardrail"})


def _offline_command() -> bool:
    """Is this process the ``flask`` command line running an offline command group?

    Flask builds the app before click resolves the command, so the command is read from the
    arguments: the first one that is not one of ``flask``'s own options."""
    program = Path(sys.argv[0])
    if program.name != "flask" and program.parent.name != "flask":  # `flask ...` or `python -m flask ...`
        return False
    args = iter(sys.argv[1:])
    for arg in args:
        if arg in ("--app", "-A", "--env-file", "-e"):
            next(args, None)
        elif not arg.startswith("-"):
            return arg in OFFLINE_COMMANDS
    return False


def _resolve_services(app: Flask) -> None:
    """In development, CLI commands find the embedded services of a running ``python app.py``."""
    if app.config["DATABASE_URL"] and app.config["REDIS_URL"]:
        return
    if _offline_command():
        # Nothing connects while the app is built; these addresses are never dialled.
        app.config["DATABASE_URL"] = app.config["DATABASE_URL"] or normalize_database_url(
            "postgresql://offline.invalid/unused"
        )
        app.config["REDIS_URL"] = app.config["REDIS_URL"] or "redis://offline.invalid:6379/0"
        return
    from foundation.embedded import discover

    found = discover(Path(app.instance_path)) if app.config["APP_ENV"] != "production" else None
    for name in ("DATABASE_URL", "REDIS_URL"):
        if not app.config[name] and found:
            app.config[name] = found[name]
        if not app.config[name]:
            raise ConfigError(
                f"{name} is not set and no embedded service is running for {app.instance_path}; "
                f"set {name}, or start 'python app.py' (it starts embedded PostgreSQL and Redis)."
            )


if __name__ == "__main__":
    from functools import partial

    from devtools.firstrun import prepare_database
    from foundation.devserver import main

    try:
        sys.exit(main(prepare=partial(prepare_database, create_app)))
    except ConfigError as exc:
        sys.exit(f"error: {exc}")
