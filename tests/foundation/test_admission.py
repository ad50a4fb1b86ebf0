"""Admission control: requests beyond the limit wait their turn; health probes never wait."""

import threading
import time

from foundation.admission import AdmissionControl


def test_requests_beyond_the_limit_wait_and_health_probes_do_not():
    release = threading.Event()
    running = []

    def slow_app(environ, start_response):
        running.append(environ["PATH_INFO"])
        if environ["PATH_INFO"] == "/slow":
            release.wait(5)
        start_response("200 OK", [])
        return [b"ok"]

    app = AdmissionControl(slow_app, limit=1)
    call = lambda path: app({"PATH_INFO": path}, lambda *a: None)  # noqa: E731
    first = threading.Thread(target=call, args=("/slow",))
    first.start()
    time.sleep(0.1)
    second = threading.Thread(target=call, args=("/api/v1/sessions",))
    second.start()
    time.sleep(0.2)
    assert running == ["/slow"]  # the second request waits for the slot

    started = time.monotonic()
    assert call("/healthz") == [b"ok"]  # the probe does not wait
    assert time.monotonic() - started < 0.5
    release.set()
    first.join(5)
    second.join(5)
    assert running == ["/slow", "/healthz", "/api/v1/sessions"]


def test_zero_turns_it_off(app):
    from foundation import admission

    class Fake:
        config = {"WEB_ACTIVE_REQUESTS": 0}
        wsgi_app = object()

    fake = Fake()
    admission.init_app(fake)
    assert not isinstance(fake.wsgi_app, AdmissionControl)
    assert isinstance(app.wsgi_app, AdmissionControl)  # on by default (16)
