"""Test fixtures on real PostgreSQL and Redis.

``TEST_DATABASE_URL`` / ``TEST_REDIS_URL`` point the suite at existing servers (the test
database's ``public`` schema is wiped and migrated at the start of the run; the Redis
database is flushed before every test). Without them, embedded servers are started once per
run in a temporary folder and removed afterwards.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from foundation.config import normalize_database_url

pytest_plugins = ["tests.browser_support"]  # the `browser` fixture of the browser tests

TEST_CONFIG = {
    "TESTING": True,
    "BUILTIN_CHUNK_DELAY": 0,
    "STREAM_FLUSH_MS": 0,  # one event per chunk (resume tests cut streams between chunks); test_reply_concurrency checks merging
    "AI_RETRY_DELAYS": "0,0,0",
    "AI_JUDGE": False,  # tests count the requests a reply makes; tests/jobs/test_judge.py turns it on
    "ANALYTICS_LIVE_SECONDS": 0,  # tests add today's rows between views; test_dashboard checks the reuse
    "EMBED_SECRET": "test-embed-secret-of-at-least-32-bytes",
    "EMBED_ALLOWED_ORIGINS": "https://school.example",
}
TABLES = (
    "transcript_reads",
    "class_members",
    "classes",
    "mastery_students",
    "mastery_daily",
    "bkt_params",
    "mastery",
    "attempts",
    "reply_judgements",
    "rollup_daily",
    "rollup_students",
    "rollup_topics",
    "rollup_hours",
    "rollup_models",
    "daily_stats",
    "session_metrics",
    "session_topics",
    "messages",
    "sessions",
    "users",
)


@pytest.fixture(scope="session")
def services() -> Iterator[dict[str, str]]:
    """URLs of the PostgreSQL database and Redis database the tests use."""
    tmp = Path(tempfile.mkdtemp(prefix="aitutor-test-"))
    stops = []
    db_url = os.environ.get("TEST_DATABASE_URL", "").strip()
    redis_url = os.environ.get("TEST_REDIS_URL", "").strip()
    try:
        if not db_url:
            from foundation.embedded import start_postgres

            pg = start_postgres(tmp / "postgres", database="aitutor_test", delete_on_stop=True)
            stops.append(pg.stop)
            db_url = pg.url
        if not redis_url:
            from foundation.embedded import start_redis

            rd = start_redis(tmp / "redis", persist=False)
            stops.append(rd.stop)
            redis_url = rd.url
        db_url = normalize_database_url(db_url)
        engine = create_engine(db_url)
        with engine.begin() as conn:
            conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
        engine.dispose()
        yield {"DATABASE_URL": db_url, "REDIS_URL": redis_url, "INSTANCE_PATH": str(tmp / "instance")}
    finally:
        from tutor.relay import stop_all

        stop_all()  # the reply relay's subscription, before its Redis goes away
        for stop in reversed(stops):
            stop()
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="session")
def app(services):
    """One app for the run, on a freshly migrated database."""
    saved = {k: os.environ.get(k) for k in ("DATABASE_URL", "REDIS_URL", "INSTANCE_PATH", "APP_ENV", "SECRET_KEY")}
    os.environ.update(services)
    os.environ["APP_ENV"] = "development"
    os.environ.pop("SECRET_KEY", None)
    from flask_migrate import upgrade

    from app import create_app

    application = create_app(TEST_CONFIG)
    with application.app_context():
        upgrade()
    yield application
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(autouse=True)
def _clean_state(request) -> Iterator[None]:
    """Every test starts with empty tables and an empty Redis database."""
    if "app" not in request.fixturenames:
        yield
        return
    application = request.getfixturevalue("app")
    from foundation.extensions import db, redis_ext

    with application.app_context():
        with db.engine.begin() as conn:
            conn.execute(text(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE"))
        redis_ext.conn.flushdb()
    yield


@pytest.fixture
def app_ctx(app):
    with app.app_context():
        yield app


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


class Student:
    """A logged-in student's API client: ``post`` sends the CSRF token like the pages do."""

    def __init__(self, client, user_id: int, csrf: str) -> None:
        self.client, self.id, self.csrf = client, user_id, csrf

    def get(self, path, **kw):
        return self.client.get(path, **kw)

    def post(self, path, json=None, **kw):
        headers = {"X-CSRF-Token": self.csrf, **kw.pop("headers", {})}
        return self.client.post(path, json=json, headers=headers, **kw)


def make_student(app, email="pupil@school.org", password="learning123", grade=7, role="student") -> Student:
    """A logged-in user's client (a student unless ``role`` says otherwise)."""
    from foundation.extensions import db
    from tutor.users import create_user

    with app.app_context():
        user = create_user(email, password, grade_level=grade if role == "student" else None, role=role)
        db.session.commit()
        uid = user.id
    client = app.test_client()
    response = client.post("/api/v1/auth/login", json={"email": email, "password": password})
    assert response.status_code == 200, response.get_json()
    return Student(client, uid, response.get_json()["csrf_token"])


@pytest.fixture
def student(app):
    return make_student(app)


def run_jobs(app) -> None:
    """Run every queued job with a burst worker (forks, like production)."""
    from worker import run_worker

    run_worker(app, ["ai", "default"], burst=True)
