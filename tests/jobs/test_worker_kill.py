"""A worker SIGKILLed mid-reply: RQ's registry clean-up retries the job; one complete reply."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from rq.registry import StartedJobRegistry
from sqlalchemy import func, select

from foundation.extensions import db, redis_ext
from tests.conftest import run_jobs
from tutor import streams
from tutor.models import Message

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.faults  # (a) of the fault-injection suite


def test_sigkill_mid_reply_then_retry_gives_one_complete_reply(app, services, student):
    sid = student.post("/api/v1/sessions", json={"subject": "mathematics"}).get_json()["id"]
    reply_id = student.post(f"/api/v1/sessions/{sid}/messages", json={"content": "How do I add 3/4 + 1/8?"}).get_json()[
        "reply_id"
    ]
    env = {**os.environ, **services, "BUILTIN_CHUNK_DELAY": "0.05", "AI_RETRY_DELAYS": "0,0,0"}
    worker = subprocess.Popen([sys.executable, "worker.py"], cwd=ROOT, env=env, start_new_session=True)
    try:
        with app.app_context():
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                if redis_ext.conn.xlen(streams.stream_key(reply_id)) >= 5:
                    break
                time.sleep(0.05)
            else:
                raise AssertionError("the worker never started streaming")
            # The work horse runs in its own process group: kill it and its worker, as when
            # the machine or the OOM killer takes them both.
            for proc in [*psutil.Process(worker.pid).children(recursive=True), psutil.Process(worker.pid)]:
                proc.kill()
            worker.wait(10)
            reply = db.session.get(Message, reply_id)
            assert reply.status == "streaming" and reply.attempts == 1
            db.session.remove()

            # What a live worker's maintenance does once the dead one's heartbeat expires:
            registry = StartedJobRegistry("ai", connection=redis_ext.conn)
            assert f"reply-{reply_id}" in registry.get_job_ids(cleanup=False)
            registry.cleanup(timestamp=time.time() + 3600)
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()

    run_jobs(app)
    with app.app_context():
        reply = db.session.get(Message, reply_id)
        assert reply.status == "done" and reply.attempts == 2
        assert db.session.scalar(select(func.count()).where(Message.role == "tutor")) == 1
        events = list(streams.read(redis_ext.conn, reply_id, "0-0"))
    kinds = [e[1] for e in events]
    assert kinds.count("reset") == 1 and kinds[-1] == "done"
    after_reset = "".join(e[2]["text"] for e in events[kinds.index("reset") :] if e[1] == "token")
    assert after_reset == reply.content == events[-1][2]["content"]
