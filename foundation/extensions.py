"""Extensions are created here, unbound, and bound to the app in ``create_app``.

Nothing here connects at import time: a connection is opened the first time it is used.
"""

from __future__ import annotations

import time

from flask import Flask, current_app
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from redis import Redis
from sqlalchemy import MetaData, event, exc
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase

# Stable constraint names, so Alembic can drop and alter them in later migrations.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


db = SQLAlchemy(model_class=Base)
migrate = Migrate()

# A pooled connection idle for longer than this is pinged before use (see ping_idle_connections).
DB_PING_IDLE_S = 1.0


def ping_idle_connections(engine: Engine, idle_seconds: float = DB_PING_IDLE_S) -> None:
    """Check a pooled connection with ``SELECT 1`` before use only if it sat idle for a while.

    SQLAlchemy's ``pool_pre_ping`` pings on every checkout: a round trip and about 1 ms of CPU
    per request, a fifth of what posting a message costs the web process when a class posts at
    once. A connection used within the last ``idle_seconds`` is not pinged: if the server went
    away in that moment, the statement fails as a disconnect, SQLAlchemy drops every pooled
    connection made before it, and that one request answers 503 (``foundation.errors``). One
    that waited longer (a quiet night, a database restart) is pinged, and a dead one is
    replaced before the request sees it.
    """

    @event.listens_for(engine, "connect")
    def _fresh(dbapi_connection, record):  # noqa: ARG001
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkin")
    def _checkin(dbapi_connection, record):  # noqa: ARG001
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checkout(dbapi_connection, record, proxy):  # noqa: ARG001
        if time.monotonic() - record.info.get("idle_since", 0.0) <= idle_seconds:
            return
        try:
            cursor = dbapi_connection.cursor()
            try:
                cursor.execute("SELECT 1")
            finally:
                cursor.close()
            dbapi_connection.rollback()  # the caller starts its own transaction (and may set its isolation)
        except Exception as error:  # noqa: BLE001 - any failure: this connection is unusable
            raise exc.DisconnectionError(f"pooled connection failed its ping: {error}") from error


# Connection timeouts: a dead service must make requests fail fast, not hang.
DB_CONNECT_TIMEOUT_S = 2
REDIS_CONNECT_TIMEOUT_S = 2.0
# Web requests never block on Redis for long (stream reads use shorter BLOCK times).
WEB_REDIS_TIMEOUT_S = 10.0
REDIS_MAX_CONNECTIONS = 2000
#: Connections a process's app client (``redis_ext.conn``) keeps at most; more callers at once
#: wait for one (up to the socket timeout) instead of opening more. Redis calls take well under
#: a millisecond, so this serves thousands a second; without a bound, a web process that opened
#: a thousand reply streams at once kept a pooled connection for each stream that read at the
#: same moment.
APP_REDIS_CONNECTIONS = 64


class RedisExtension:
    """One lazily created Redis client per app (thread-safe connection pool inside)."""

    def init_app(self, app: Flask) -> None:
        app.extensions["redis"] = None

    @property
    def conn(self) -> Redis:
        client = current_app.extensions.get("redis")
        if client is None:
            client = make_redis(
                current_app.config["REDIS_URL"], socket_timeout=WEB_REDIS_TIMEOUT_S, bounded=APP_REDIS_CONNECTIONS
            )
            current_app.extensions["redis"] = client
        return client


def make_redis(url: str, *, socket_timeout: float | None = None, bounded: int | None = None) -> Redis:
    """A Redis client with a connect timeout; RQ needs ``socket_timeout`` unset for blocking pops.

    ``bounded``: at most that many connections, callers beyond it wait for a free one."""
    if not url:
        raise RuntimeError("REDIS_URL is not configured")
    options = {"socket_connect_timeout": REDIS_CONNECT_TIMEOUT_S, "socket_timeout": socket_timeout,
               "health_check_interval": 30}  # fmt: skip
    if bounded:
        from redis import BlockingConnectionPool

        pool = BlockingConnectionPool.from_url(
            url, max_connections=bounded, timeout=socket_timeout or WEB_REDIS_TIMEOUT_S, **options
        )
        return Redis(connection_pool=pool)
    # Connections are made on demand and reused; the bound only has to exceed what a process
    # uses at once: a worker streaming WORKER_REPLY_CONCURRENCY replies, a web process
    # answering many requests (redis-py's own default, 100, is below the worker's 200).
    return Redis.from_url(url, max_connections=REDIS_MAX_CONNECTIONS, **options)


redis_ext = RedisExtension()
