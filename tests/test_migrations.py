"""The migrations and the models describe the same schema."""

import uuid

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import downgrade, upgrade
from sqlalchemy import create_engine, inspect, make_url, text

from tutor.extensions import db


def test_autogenerate_finds_no_difference(app_ctx):
    with db.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True, "compare_server_default": True})
        diff = compare_metadata(context, db.metadata)
    assert diff == []


def test_contract_columns_exist(app_ctx):
    inspector = inspect(db.engine)
    expected = {
        "users": {"id", "email", "password_hash", "role", "display_name", "grade_level", "created_at"},
        "sessions": {"id", "student_id", "subject", "created_at", "ended_at", "duration_seconds", "status", "satisfaction"},
        "session_topics": {"session_id", "topic"},
        "messages": {
            "id", "session_id", "role", "content", "status", "created_at", "completed_at", "latency_ms",
            "prompt_tokens", "completion_tokens", "provider", "model", "attempts", "error",
        },
        "session_metrics": {
            "id", "session_id", "duration_seconds", "message_count", "student_satisfaction", "topic_coverage", "created_at",
        },
        "daily_stats": {
            "id", "date", "total_sessions", "avg_duration", "total_users", "popular_topics", "total_messages",
            "avg_satisfaction", "ai_latency_p50_ms", "ai_latency_p95_ms", "ai_failures",
        },
    }  # fmt: skip
    for table, columns in expected.items():
        assert columns <= {c["name"] for c in inspector.get_columns(table)}, table
    for table in expected:
        for column in inspector.get_columns(table):
            if column["type"].__class__.__name__ in {"TIMESTAMP", "DATETIME"}:
                assert column["type"].timezone, f"{table}.{column['name']} must be timezone-aware"


def test_plain_sql_writers_can_insert_with_contract_columns_only(app_ctx):
    """Other tools write with plain SQL: every column beyond the contract has a default."""
    with db.engine.begin() as conn:
        uid = conn.execute(
            text(
                "INSERT INTO users (email, password_hash, role, display_name) VALUES ('A@x.org', NULL, 'student', 'A') RETURNING id"
            )
        ).scalar_one()
        sid = conn.execute(
            text("INSERT INTO sessions (student_id, subject) VALUES (:u, 'mathematics') RETURNING id"), {"u": uid}
        ).scalar_one()
        conn.execute(text("INSERT INTO messages (session_id, role, content) VALUES (:s, 'student', 'hi')"), {"s": sid})
        status, attempts = conn.execute(text("SELECT status, attempts FROM messages")).one()
        assert (status, attempts) == ("done", 0)
        assert isinstance(sid, uuid.UUID)


def test_email_unique_case_insensitively(app_ctx):
    from sqlalchemy.exc import IntegrityError

    with db.engine.begin() as conn:
        conn.execute(text("INSERT INTO users (email) VALUES ('Ada@Example.org')"))
    with pytest.raises(IntegrityError), db.engine.begin() as conn:
        conn.execute(text("INSERT INTO users (email) VALUES ('ada@example.ORG')"))


def test_migrations_go_down_and_up_again(app, services):
    """On a scratch database: upgrade to head, downgrade to base, upgrade again."""
    url = make_url(services["DATABASE_URL"])
    name = f"aitutor_mig_{uuid.uuid4().hex[:8]}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    scratch_url = url.set(database=name).render_as_string(hide_password=False)
    try:
        old = app.config["SQLALCHEMY_DATABASE_URI"]
        from app import create_app

        scratch = create_app({"SQLALCHEMY_DATABASE_URI": scratch_url, "TESTING": True})
        with scratch.app_context():
            upgrade()
            downgrade(revision="base")
            assert set(inspect(db.engine).get_table_names()) <= {"alembic_version"}
            upgrade()
            assert "daily_stats" in inspect(db.engine).get_table_names()
            db.engine.dispose()
        assert app.config["SQLALCHEMY_DATABASE_URI"] == old
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
