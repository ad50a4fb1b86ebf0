"""Admission control: at most ``WEB_ACTIVE_REQUESTS`` requests of a web process do work at once.

Under gevent every request of a process shares one thread, and a request waiting for the
CPU waits behind every other runnable one. When a whole class posts at once, a hundred
requests become runnable together and a health probe or a page waits behind all of them.
Requests beyond the limit wait here (parked, not runnable) and go in arrival order; health
probes never wait. A response's body is produced outside the limit: a reply stream holds a
slot only while it is set up, not while it waits for tokens.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any

#: Paths answered without waiting for a slot (load balancers must see a live process).
EXEMPT = ("/healthz", "/readyz")


class AdmissionControl:
    def __init__(self, app: Callable[..., Iterable[bytes]], limit: int) -> None:
        self.app = app
        self.slots = threading.BoundedSemaphore(limit)  # gevent's under the gevent worker (patched)

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO", "") in EXEMPT:
            return self.app(environ, start_response)
        with self.slots:
            return self.app(environ, start_response)


def init_app(app: Any) -> None:
    limit = int(app.config.get("WEB_ACTIVE_REQUESTS", 0))
    if limit > 0:
        app.wsgi_app = AdmissionControl(app.wsgi_app, limit)
