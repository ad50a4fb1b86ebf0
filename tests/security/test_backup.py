"""Security issue, item 13: a backup and its restore work with the app's own database URL."""

from __future__ import annotations

import secrets

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from foundation.backup import libpq_url
from tests.conftest import TEST_CONFIG


@pytest.fixture
def scratch(services):
    """Two fresh databases on the test server: the app's, and an empty one to restore into."""
    base = make_url(services["DATABASE_URL"])
    names = [f"aitutor_backup_{secrets.token_hex(3)}", f"aitutor_restore_{secrets.token_hex(3)}"]
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        for name in names:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    yield [base.set(database=n).render_as_string(hide_password=False) for n in names]
    with admin.connect() as conn:
        for name in names:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _app(url: str, services):
    from app import create_app

    return create_app({**TEST_CONFIG, "SQLALCHEMY_DATABASE_URI": url, "REDIS_URL": services["REDIS_URL"]})


def _users(app) -> list[str]:
    from foundation.extensions import db

    with app.app_context():
        return list(db.session.execute(text("SELECT email FROM users ORDER BY email")).scalars())


def test_the_app_url_is_made_readable_for_pg_tools():
    assert libpq_url("postgresql+psycopg2://u:p@h:5/d?sslmode=require") == "postgresql://u:p@h:5/d?sslmode=require"
    assert libpq_url("postgres://u@h/d") == "postgresql://u@h/d"


def test_backup_then_restore_round_trip(app, services, scratch, tmp_path):  # noqa: ARG001 - app: the environment
    from flask_migrate import upgrade

    from foundation.extensions import db
    from tutor.users import create_user

    source_url, empty_url = scratch
    source = _app(source_url, services)
    with source.app_context():
        upgrade()
        create_user("kept@school.org", "learning123")
        db.session.commit()
    dump = tmp_path / "aitutor.dump"
    result = source.test_cli_runner().invoke(args=["db", "backup", str(dump)])
    assert result.exit_code == 0, result.output
    assert dump.stat().st_size > 1000 and not (tmp_path / "aitutor.dump.partial").exists()

    with source.app_context():  # a mistake after the backup ...
        db.session.execute(text("DELETE FROM users"))
        db.session.commit()
    assert _users(source) == []
    result = source.test_cli_runner().invoke(args=["db", "restore", str(dump), "--yes"])
    assert result.exit_code == 0, result.output
    assert _users(source) == ["kept@school.org"]  # ... undone

    empty = _app(empty_url, services)  # and into a database that has nothing yet
    result = empty.test_cli_runner().invoke(args=["db", "restore", str(dump), "--yes"])
    assert result.exit_code == 0, result.output
    assert _users(empty) == ["kept@school.org"]
    for made in (source, empty):
        with made.app_context():
            db.engine.dispose()


def test_a_failed_backup_leaves_no_empty_file(app, services, tmp_path):  # noqa: ARG001
    broken = _app("postgresql+psycopg2://postgres@127.0.0.1:1/none", services)  # nobody listens there
    dump = tmp_path / "x.dump"
    result = broken.test_cli_runner().invoke(args=["db", "backup", str(dump)])
    assert result.exit_code != 0 and "cannot reach the database" in result.output
    assert not dump.exists() and not (tmp_path / "x.dump.partial").exists()
