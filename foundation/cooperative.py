"""Running blocking work without stalling the web process's event loop.

The web server runs gunicorn's ``gevent`` worker: thousands of requests (most of them idle
reply streams) share one OS thread per process, switching whenever one waits on a socket.
A long computation that holds that thread stalls every other request in the process, so
CPU-heavy calls that release the GIL (scrypt password hashing) go to gevent's pool of real
threads. Outside gevent (tests, the CLI, the worker) :func:`offload` just calls the function.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def under_gevent() -> bool:
    """True in a process whose sockets gevent has patched (the web server's workers)."""
    if "gevent" not in sys.modules:
        return False
    from gevent import monkey

    return bool(monkey.is_module_patched("socket"))


def offload(func: Callable[..., T], *args: object) -> T:
    """``func(*args)`` on a real thread when under gevent (the caller's greenlet waits), else here."""
    if under_gevent():
        import gevent

        return gevent.get_hub().threadpool.apply(func, args)
    return func(*args)


def patch_psycopg() -> None:
    """Make psycopg2 wait for PostgreSQL through gevent (the web workers call this after fork)."""
    import psycogreen.gevent

    psycogreen.gevent.patch_psycopg()
