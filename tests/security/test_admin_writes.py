"""Security issue, item 9: state-changing rq-dashboard endpoints refuse cross-site requests,
by GET too."""

from __future__ import annotations

from rq import Queue

from foundation.extensions import redis_ext
from tests.security.test_odd_input import _admin


def _failed_job(app) -> Queue:
    with app.app_context():
        queue = Queue("default", connection=redis_ext.conn)
        job = queue.enqueue("jobs.maintenance.purge_expired")
        queue.remove(job)
        queue.failed_job_registry.add(job, exc_string="boom")  # noqa: S106 - a test failure
        return queue


def _failed_count(app) -> int:
    with app.app_context():
        return Queue("default", connection=redis_ext.conn).failed_job_registry.count


def test_requeue_all_by_a_cross_site_get_is_refused(app):
    admin, _ = _admin(app)
    _failed_job(app)
    assert _failed_count(app) == 1
    for headers in ({"Referer": "https://evil.example/page"}, {}, {"Sec-Fetch-Site": "cross-site",
                                                                 "Referer": "http://localhost/admin/rq/"}):  # fmt: skip
        response = admin.get("/admin/rq/requeue/default", headers={"Accept": "application/json", **headers})
        assert response.status_code == 403, headers
    assert _failed_count(app) == 1  # nothing requeued


def test_requeue_all_from_the_dashboard_itself_still_works(app):
    admin, _ = _admin(app)
    _failed_job(app)
    response = admin.post("/admin/rq/requeue/default", headers={"Origin": "http://localhost",
                                                                "Sec-Fetch-Site": "same-origin"})  # fmt: skip
    assert response.status_code == 200
    assert _failed_count(app) == 0


def test_read_only_pages_need_no_origin(app):
    admin, _ = _admin(app)
    assert admin.get("/admin/rq/0/data/queues.json").status_code == 200
