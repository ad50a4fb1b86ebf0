"""``python app.py``: the one-command run, its failure messages, and a clean stop."""

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import psutil
import pytest

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(tmp_path, **extra) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "SECRET_KEY", "APP_ENV"}}
    env.update(INSTANCE_PATH=str(tmp_path / "instance"), PORT=str(_free_port()), PYTHONUNBUFFERED="1", **extra)
    return env


def _start(env) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "app.py"], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def _wait_ready(env, proc, timeout=120) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{env['PORT']}/readyz", timeout=2) as r:
                if r.status == 200:
                    return True
        except OSError:
            time.sleep(0.3)
    return False


def _leftovers(instance: str, seen: list[psutil.Process]) -> list[str]:
    alive = [p for p in seen if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    for p in psutil.process_iter(["cmdline"]):
        try:
            if instance in " ".join(p.info["cmdline"] or []):
                alive.append(p)
        except psutil.Error:
            pass
    return [f"{p.pid} {p.name()}" for p in alive if p.is_running()]


def test_port_in_use_is_explained(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        env = _env(tmp_path)
        env["PORT"] = str(s.getsockname()[1])
        out = subprocess.run([sys.executable, "app.py"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 1
    assert f"port {env['PORT']} is already in use" in out.stderr
    assert "Traceback" not in out.stderr + out.stdout


@pytest.mark.parametrize(
    ("extra", "name"),
    [
        (
            {"DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none", "REDIS_URL": "redis://127.0.0.1:6379/0"},
            "DATABASE_URL",
        ),
        ({"DATABASE_URL": "SEE_BELOW", "REDIS_URL": "redis://127.0.0.1:1/0"}, "REDIS_URL"),
    ],
)
def test_unreachable_service_is_one_line(tmp_path, services, extra, name):
    extra = {k: (services["DATABASE_URL"] if v == "SEE_BELOW" else v) for k, v in extra.items()}
    out = subprocess.run(
        [sys.executable, "app.py"], cwd=ROOT, env=_env(tmp_path, **extra), capture_output=True, text=True, timeout=60
    )
    assert out.returncode != 0
    assert name in out.stderr and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_production_without_secret_key_is_one_line(tmp_path):
    out = subprocess.run(
        [sys.executable, "app.py"], cwd=ROOT, env=_env(tmp_path, APP_ENV="production"), capture_output=True, text=True
    )
    assert out.returncode != 0
    assert out.stderr.strip().splitlines() == [
        "error: SECRET_KEY is not set; production mode needs a long random SECRET_KEY in the environment."
    ]


@pytest.mark.slow
def test_embedded_run_interrupted_first_start_then_ready_then_clean_stop(tmp_path):
    """Ctrl-C while demo data loads leaves a usable instance; the next start is ready; SIGTERM stops all."""
    env = _env(tmp_path, DEMO_STUDENTS="3000", DEMO_DAYS="200")
    instance = env["INSTANCE_PATH"]
    proc = _start(env)
    first: list[str] = []
    for line in proc.stdout:
        first.append(line)
        if "loading demo data" in line:
            break
    assert len(first) <= 5, "".join(first)  # one line for all the migrations, not one each
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    proc.wait(60)
    time.sleep(0.5)
    assert _leftovers(instance, []) == []
    assert not (Path(instance) / "demo-loaded").exists()

    env["DEMO_STUDENTS"], env["DEMO_DAYS"] = "20", "10"
    proc = _start(env)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
    reader.start()
    seen: list[psutil.Process] = []
    try:
        deadline = time.monotonic() + 120
        while not any("press Ctrl-C to stop" in line for line in lines):
            assert time.monotonic() < deadline and proc.poll() is None, "".join(lines)
            time.sleep(0.2)
        assert _wait_ready(env, proc, timeout=10)
        seen = psutil.Process(proc.pid).children(recursive=True)
        assert len(seen) >= 3  # web, worker, scheduler (and their own children)
        with urllib.request.urlopen(f"http://127.0.0.1:{env['PORT']}/api/v1/subjects", timeout=5) as r:
            assert r.status == 200
        assert (Path(instance) / "demo-loaded").exists()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
        reader.join(10)
    out = "".join(lines)
    before_ready = next(i for i, line in enumerate(lines) if "press Ctrl-C to stop" in line)
    assert before_ready < 15, out  # a newcomer reads the console: about fifteen lines, no noise
    assert proc.returncode == 0
    assert "demo admin: admin@demo.aitutor.local" in out
    assert re.search(r"rolled up \d+ days of demo history", out), out  # the dashboard reads rollups at once
    time.sleep(0.5)
    assert _leftovers(instance, seen) == []
