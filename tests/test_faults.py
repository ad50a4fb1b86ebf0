"""Fault injection against real PostgreSQL and Redis processes that the tests start and stop.

Run on its own with ``pytest -m faults``; it also runs in the full suite (and in CI).
"""

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, text

from foundation.extensions import db
from tests.conftest import TEST_CONFIG, run_jobs
from tests.openai_server import ScriptedOpenAI
from tutor.models import Message

pytestmark = pytest.mark.faults


def _login(app, email="fault@school.org"):
    from tests.conftest import Student
    from tutor.users import create_user

    with app.app_context():
        create_user(email, "learning123")
        db.session.commit()
    client = app.test_client()
    response = client.post("/api/v1/auth/login", json={"email": email, "password": "learning123"})
    assert response.status_code == 200
    return Student(client, response.get_json()["user"]["id"], response.get_json()["csrf_token"])


def test_redis_down_while_posting_then_back(app, services, tmp_path):
    """(b) Stop Redis, post 20 messages, start Redis: all 20 answered, none twice."""
    from app import create_app
    from foundation.embedded import start_redis
    from jobs.maintenance import sweep_outbox

    redis = start_redis(tmp_path / "redis", persist=True)
    faulty = create_app({**TEST_CONFIG, "REDIS_URL": redis.url, "SQLALCHEMY_DATABASE_URI": services["DATABASE_URL"]})
    try:
        student = _login(faulty)
        sid = student.post("/api/v1/sessions", json={"subject": "mathematics"}).get_json()["id"]
        redis.stop()
        codes = [
            student.post(f"/api/v1/sessions/{sid}/messages", json={"content": f"what is {i} + {i + 1}?"}).status_code
            for i in range(20)
        ]
        assert codes == [202] * 20  # safe in PostgreSQL
        with faulty.app_context():
            assert db.session.scalar(select(func.count()).where(Message.status == "queued")) == 20
        assert faulty.test_client().get("/readyz").get_json()["redis"] == "down"

        redis = start_redis(tmp_path / "redis", persist=True)
        with faulty.app_context():
            assert sweep_outbox(now=datetime.now(UTC) + timedelta(minutes=2)) != []
            assert sweep_outbox(now=datetime.now(UTC) + timedelta(minutes=2)) == []  # never twice
        run_jobs(faulty)
        with faulty.app_context():
            rows = db.session.execute(select(Message.status, Message.attempts).where(Message.role == "tutor")).all()
        assert len(rows) == 20
        assert all(status == "done" and attempts == 1 for status, attempts in rows), rows
    finally:
        redis.stop()


def test_postgres_down_then_back(tmp_path, services):
    """(c) Stop PostgreSQL: /readyz and the API answer 503, pages say so; all recovers."""
    from flask_migrate import upgrade

    from app import create_app
    from foundation.embedded import start_postgres

    pg = start_postgres(tmp_path / "pg", database="faults")
    faulty = create_app({**TEST_CONFIG, "SQLALCHEMY_DATABASE_URI": pg.url, "REDIS_URL": services["REDIS_URL"]})
    try:
        with faulty.app_context():
            upgrade()
        student = _login(faulty, "pg@school.org")
        assert student.get("/api/v1/sessions").status_code == 200
        pg.stop()

        ready = faulty.test_client().get("/readyz")
        assert ready.status_code == 503 and ready.get_json()["postgres"] == "down"
        api = student.get("/api/v1/sessions")
        assert api.status_code == 503 and api.get_json()["error"] == "unavailable"
        page = student.get("/sessions", headers={"Accept": "text/html"})
        assert page.status_code == 503 and b"Temporarily unavailable" in page.data
        assert b"Traceback" not in page.data and b"psycopg2" not in page.data and b"postgresql" not in page.data

        pg = start_postgres(tmp_path / "pg", database="faults")
        assert faulty.test_client().get("/readyz").status_code == 200
        assert student.get("/api/v1/sessions").status_code == 200
    finally:
        with faulty.app_context():
            db.engine.dispose()
        pg.stop()


def test_provider_rate_limits_twice_then_answers(app, student):
    """(d) The provider answers 429 twice, then succeeds: one reply, attempts = 3."""
    saved = {k: app.config[k] for k in ("AI_PROVIDER", "OPENAI_BASE_URL")}
    try:
        with ScriptedOpenAI([429, 429, "stream"], reply="What could you do to both sides?") as server:
            app.config.update(AI_PROVIDER="openai", OPENAI_BASE_URL=server.base_url)
            sid = student.post("/api/v1/sessions", json={"subject": "mathematics"}).get_json()["id"]
            student.post(f"/api/v1/sessions/{sid}/messages", json={"content": "solve 2x + 3 = 7"})
            run_jobs(app)
            assert len(server.requests) == 3
    finally:
        app.config.update(saved)
    with app.app_context():
        rows = db.session.execute(text("SELECT status, attempts, content FROM messages WHERE role = 'tutor'")).all()
    assert rows == [("done", 3, "What could you do to both sides?")]
