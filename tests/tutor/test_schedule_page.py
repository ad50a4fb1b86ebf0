"""Ops see the periodic jobs (rq-dashboard shows "Scheduled jobs 0") and can get back from rq-dashboard."""

from __future__ import annotations

from rq_scheduler import Scheduler

from foundation.extensions import redis_ext
from jobs.schedule import SCHEDULE, sync_schedule
from tests.security.test_odd_input import _admin


def test_admins_see_every_periodic_job_with_its_next_run(app):
    with app.app_context():
        sync_schedule(Scheduler(connection=redis_ext.conn))
    admin, _ = _admin(app)
    page = admin.get("/admin/schedule", headers={"Accept": "text/html"})
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    for job in SCHEDULE:
        assert job.name in html and job.func in html
    assert "cron 15 0 * * *" in html and "every 60 s" in html
    assert html.count("<time datetime=") == len(SCHEDULE)


def test_an_empty_schedule_says_how_to_fill_it(app):
    admin, _ = _admin(app)
    html = admin.get("/admin/schedule", headers={"Accept": "text/html"}).get_data(as_text=True)
    assert "No jobs are scheduled" in html and "--scheduler" in html


def test_students_cannot_see_it(app, student):
    assert student.get("/admin/schedule", headers={"Accept": "text/html"}).status_code == 403


def test_rq_dashboard_pages_link_back_to_the_app(app):
    admin, _ = _admin(app)
    html = admin.get("/admin/rq/", headers={"Accept": "text/html"}).get_data(as_text=True)
    assert 'href="/admin/analytics/"' in html and 'href="/admin/schedule"' in html
    data = admin.get("/admin/rq/0/data/queues.json")
    assert data.is_json and b"/admin/analytics/" not in data.data  # JSON untouched
