"""Everything under /admin/ (every Dash and rq-dashboard endpoint in the URL map) is for admins only."""

import re

import pytest
from rq import Queue

from foundation.extensions import redis_ext
from tests.conftest import make_student


def _admin_urls(app) -> list[tuple[str, str]]:
    urls = []
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/admin"):
            continue
        url = re.sub(r"<int:[^>]+>", "0", rule.rule)
        url = re.sub(r"<[^>]+>", "x", url)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            urls.append((method, url))
    return urls


def _login_admin(app):
    from foundation.extensions import db
    from tutor.users import create_user

    with app.app_context():
        create_user("boss@school.org", "admin-password", role="admin")
        db.session.commit()
    client = app.test_client()
    assert (
        client.post("/api/v1/auth/login", json={"email": "boss@school.org", "password": "admin-password"}).status_code
        == 200
    )
    return client


def test_admin_url_map_covers_dash_and_rq_dashboard(app):
    urls = {u for _, u in _admin_urls(app)}
    assert any(u.startswith("/admin/analytics/_dash-update-component") for u in urls)
    assert any(u.startswith("/admin/rq/") for u in urls)
    assert len(urls) > 15


def test_anonymous_gets_login_redirect_or_401(app, client):
    for method, url in _admin_urls(app):
        response = client.open(
            url, method=method, headers={"Accept": "text/html"}, json={} if method == "POST" else None
        )
        if method == "GET" and "/_dash-" not in url and not url.endswith(".json"):
            assert response.status_code == 302 and "/login" in response.headers["Location"], (method, url)
        else:
            assert response.status_code == 401, (method, url, response.status_code)
        api = client.open(url, method=method, headers={"Accept": "application/json"})
        assert api.status_code in (302, 401), (method, url)
        assert b"rq" not in api.data.lower() or api.status_code == 302


def test_students_get_403(app):
    student = make_student(app)
    for method, url in _admin_urls(app):
        response = student.client.open(url, method=method, headers={"X-CSRF-Token": student.csrf})
        assert response.status_code == 403, (method, url, response.status_code)


def test_admin_sees_dashboards(app):
    admin = _login_admin(app)
    assert admin.get("/admin/analytics/").status_code == 200
    assert admin.get("/admin/analytics/_dash-layout").status_code == 200
    assert admin.get("/admin/rq/").status_code == 200
    assert admin.get("/admin/rq/0/data/queues.json").status_code == 200


@pytest.fixture
def failed_job(app_ctx):
    queue = Queue("default", connection=redis_ext.conn)
    job = queue.enqueue("jobs.maintenance.close_idle_sessions", job_id="to-requeue")
    job.set_status("failed")
    from rq.registry import FailedJobRegistry

    FailedJobRegistry(queue=queue).add(job, ttl=600)
    return job


def test_admin_actions_need_same_origin_and_work(app, failed_job):
    admin = _login_admin(app)
    refused = admin.post(f"/admin/rq/job/{failed_job.id}/requeue")
    assert refused.status_code == 403
    cross = admin.post(f"/admin/rq/job/{failed_job.id}/requeue", headers={"Origin": "https://evil.example"})
    assert cross.status_code == 403
    ok = admin.post(f"/admin/rq/job/{failed_job.id}/requeue", headers={"Origin": "http://localhost"})
    assert ok.status_code == 200, ok.data
    with app.app_context():
        assert failed_job.id in Queue("default", connection=redis_ext.conn).job_ids
    deleted = admin.post(f"/admin/rq/job/{failed_job.id}/delete", headers={"Origin": "http://localhost"})
    assert deleted.status_code == 200
