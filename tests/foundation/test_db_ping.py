"""Pooled connections: pinged before use only after sitting idle (foundation.extensions)."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, exc, text

from foundation.extensions import ping_idle_connections


def _engine(services, idle_seconds):
    engine = create_engine(services["DATABASE_URL"], pool_size=1, max_overflow=0)
    ping_idle_connections(engine, idle_seconds)
    return engine


def _kill_pooled_connection(services, engine) -> None:
    """Terminate the server side of the one pooled connection, as a database restart would."""
    with engine.connect() as conn:
        pid = conn.execute(text("SELECT pg_backend_pid()")).scalar()
    admin = create_engine(services["DATABASE_URL"], poolclass=None)
    with admin.begin() as conn:
        assert conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar()
    admin.dispose()


def test_an_idle_connection_that_died_is_replaced_before_use(services):
    engine = _engine(services, idle_seconds=0)
    try:
        _kill_pooled_connection(services, engine)
        with engine.connect() as conn:  # pinged, found dead, replaced: the request never sees it
            assert conn.execute(text("SELECT 1")).scalar() == 1
    finally:
        engine.dispose()


def test_a_recently_used_connection_is_not_pinged(services):
    """No ping within the idle window: the dead connection reaches the statement, which fails as
    a disconnect, and the pool is refilled for the next request."""
    engine = _engine(services, idle_seconds=60)
    try:
        _kill_pooled_connection(services, engine)
        with pytest.raises(exc.OperationalError), engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        with engine.connect() as conn:
            assert conn.execute(text("SELECT 1")).scalar() == 1
    finally:
        engine.dispose()


def test_the_app_pings_idle_connections_instead_of_every_checkout(app):
    assert not app.config["SQLALCHEMY_ENGINE_OPTIONS"].get("pool_pre_ping")
    from foundation.extensions import db

    with app.app_context():
        assert any(getattr(fn, "__name__", "") == "_checkout" for fn in db.engine.pool.dispatch.checkout), (
            "ping_idle_connections is not installed on the app's engine"
        )


def test_a_pinged_connection_starts_its_own_transaction(services):
    """The ping leaves no transaction open: the caller can still choose its isolation level."""
    engine = _engine(services, idle_seconds=0)
    try:
        raw = engine.raw_connection()
        try:
            cur = raw.cursor()
            cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            cur.close()
        finally:
            raw.rollback()
            raw.close()
    finally:
        engine.dispose()
