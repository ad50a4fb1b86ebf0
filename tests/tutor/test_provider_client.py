"""The openai provider's HTTP client: one per endpoint in a process, whatever the concurrency."""

from __future__ import annotations

import os
import threading

from tutor.providers import openai_provider


def test_threads_starting_together_share_one_client():
    """The reply worker starts a class's replies on threads at once; each must not build its own
    client (about 10 ms of CPU each, and a pool of connections nobody reuses)."""
    openai_provider._forget_clients()
    built = []
    real = openai_provider.openai.OpenAI

    class Slow(real):  # widen the window in which an unlocked cache lets others in
        def __init__(self, *a, **kw):
            built.append(1)
            threading.Event().wait(0.05)
            super().__init__(*a, **kw)

    start = threading.Barrier(32)
    got = []

    def one():
        start.wait()
        got.append(openai_provider._client("http://127.0.0.1:9/v1", "k", 5.0))

    openai_provider.openai.OpenAI = Slow
    try:
        threads = [threading.Thread(target=one) for _ in range(32)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        openai_provider.openai.OpenAI = real
        openai_provider._forget_clients()
    assert len(built) == 1
    assert len({id(c) for c in got}) == 1


def test_a_forked_child_builds_its_own_client():
    openai_provider._forget_clients()
    parent = openai_provider._client("http://127.0.0.1:9/v1", "k", 5.0)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: a client of its own, not the parent's pooled connections
        same = openai_provider._client("http://127.0.0.1:9/v1", "k", 5.0) is parent
        os.write(write, b"same" if same else b"own")
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    answer = os.read(read, 10)
    os.close(read)
    openai_provider._forget_clients()
    assert answer == b"own"
