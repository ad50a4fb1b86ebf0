"""``/readyz`` names the service that is down and answers within 2 s, even when one hangs."""

import socket
import threading
import time

import pytest

from app import create_app


@pytest.fixture
def hanging_port():
    """A TCP server that accepts connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    held = []
    stop = threading.Event()

    def accept():
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                pass

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    server.close()


def _readyz(app):
    started = time.monotonic()
    response = app.test_client().get("/readyz")
    return response, time.monotonic() - started


def test_redis_stopped(app, services, tmp_path):
    from foundation.embedded import start_redis

    redis = start_redis(tmp_path / "r", persist=False)
    redis.stop()
    other = create_app({"REDIS_URL": redis.url, "SQLALCHEMY_DATABASE_URI": services["DATABASE_URL"]})
    response, elapsed = _readyz(other)
    assert response.status_code == 503
    assert response.get_json()["redis"] == "down"
    assert response.get_json()["postgres"] == "ok"
    assert elapsed < 2.0


def test_hanging_redis_and_postgres_answer_within_deadline(app, hanging_port):
    other = create_app(
        {
            "REDIS_URL": f"redis://127.0.0.1:{hanging_port}/0",
            "SQLALCHEMY_DATABASE_URI": f"postgresql+psycopg2://postgres@127.0.0.1:{hanging_port}/x",
        }
    )
    response, elapsed = _readyz(other)
    assert response.status_code == 503
    assert response.get_json() == {"status": "unavailable", "postgres": "down", "redis": "down"}
    assert elapsed < 2.0
