"""The migrations and the models describe the same schema."""

import uuid
from contextlib import contextmanager

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import downgrade, upgrade
from sqlalchemy import create_engine, inspect, make_url, text

from foundation.extensions import db


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


@contextmanager
def scratch_app(app, services):
    """An app on a scratch database of its own (dropped afterwards), in an app context."""
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
            try:
                yield
            finally:
                db.engine.dispose()
        assert app.config["SQLALCHEMY_DATABASE_URI"] == old
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def test_migrations_go_down_and_up_again(app, services):
    """On a scratch database: upgrade to head, downgrade to base, upgrade again."""
    with scratch_app(app, services):
        upgrade()
        downgrade(revision="base")
        assert set(inspect(db.engine).get_table_names()) <= {"alembic_version"}
        upgrade()
        assert "daily_stats" in inspect(db.engine).get_table_names()


# Rows of the one-row-per-value rollup tables of migration 0004 (date, subject, grade, ...).
OLD_ROLLUPS = {
    "rollup_student_day": [
        ("2024-03-05", 3, "mathematics", 7, 2, 1200, 2, 9, 2),
        ("2024-03-05", 1, "mathematics", 7, 1, 0, 0, 0, 0),
        ("2024-03-05", 1, "science", 7, 1, 300, 1, 4, 1),
        ("2024-03-06", 2, "mathematics", -1, 1, 60, 1, 0, 0),
    ],
    "rollup_topic_day": [
        ("2024-03-05", "mathematics", 7, "fractions", 2),
        ("2024-03-05", "mathematics", 7, "Zebra topic", 1),
        ("2024-03-05", "mathematics", 7, "algebra", 1),
        ("2024-03-06", "mathematics", -1, "fractions", 1),
    ],
    "rollup_hour": [
        ("2024-03-05", "mathematics", 7, 0, 1, 2),
        ("2024-03-05", "mathematics", 7, 23, 1, 1),
        ("2024-03-05", "science", 7, 9, 1, 1),
        ("2024-03-06", "mathematics", -1, 12, 2, 1),
    ],
}


def test_compact_rollups_keep_every_row_through_the_migration(app, services):
    """0004 -> 0005 packs the rows into arrays; the views of the old names give them back, and
    0005 -> 0004 unpacks them into tables again."""

    def read_all() -> dict[str, list[tuple]]:
        with db.engine.connect() as conn:
            return {
                table: sorted(tuple(str(v) for v in row) for row in conn.execute(text(f"SELECT * FROM {table}")))
                for table in OLD_ROLLUPS
            }

    expected = {table: sorted(tuple(str(v) for v in row) for row in rows) for table, rows in OLD_ROLLUPS.items()}
    with scratch_app(app, services):
        upgrade(revision="0004")
        with db.engine.begin() as conn:
            for table, rows in OLD_ROLLUPS.items():
                marks = ", ".join(f":v{i}" for i in range(len(rows[0])))
                conn.execute(
                    text(f"INSERT INTO {table} VALUES ({marks})"),
                    [{f"v{i}": v for i, v in enumerate(row)} for row in rows],
                )
        upgrade(revision="0005")
        assert read_all() == expected
        with db.engine.connect() as conn:
            topics = conn.execute(text("SELECT topics, sessions FROM rollup_topics WHERE grade_level = 7")).one()
            hours = conn.execute(
                text("SELECT sessions FROM rollup_hours WHERE subject = 'mathematics' AND grade_level = 7")
            ).scalar_one()
        assert topics == (["Zebra topic", "algebra", "fractions"], [1, 1, 2])  # by code point, like the job
        assert len(hours) == 24 and (hours[0], hours[23], sum(hours)) == (2, 1, 3)
        downgrade(revision="0004")
        assert read_all() == expected
        assert {"rollup_student_day", "rollup_topic_day", "rollup_hour"} <= set(inspect(db.engine).get_table_names())
