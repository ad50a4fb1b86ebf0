"""Request ids in logs and responses; Prometheus metrics behind a token or an admin login."""

import json
import logging

from foundation.logs import ContextFilter, JsonFormatter
from tests.conftest import make_student, run_jobs


def test_request_id_is_echoed_and_generated(client):
    assert client.get("/healthz", headers={"X-Request-ID": "abc-123"}).headers["X-Request-ID"] == "abc-123"
    generated = client.get("/healthz", headers={"X-Request-ID": "bad id!"}).headers["X-Request-ID"]
    assert generated != "bad id!" and len(generated) == 32


def test_log_lines_carry_the_request_id(app):
    record = logging.LogRecord("t", logging.INFO, __file__, 1, "hello %s", ("world",), None)
    with app.test_request_context("/", headers={"X-Request-ID": "req-42"}):
        app.preprocess_request()
        ContextFilter().filter(record)
    line = json.loads(JsonFormatter().format(record))
    assert line["request_id"] == "req-42" and line["message"] == "hello world" and line["job_id"] == "-"


def test_metrics_need_a_token_or_an_admin(app, client):
    assert client.get("/metrics").status_code == 401
    student = make_student(app)
    assert student.get("/metrics").status_code == 403
    app.config["METRICS_TOKEN"] = "scrape-token"
    try:
        assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert client.get("/metrics", headers={"Authorization": "Bearer scrape-token"}).status_code == 200
    finally:
        app.config["METRICS_TOKEN"] = ""


def test_metrics_report_requests_queues_jobs_and_replies(app, client):
    student = make_student(app)
    sid = student.post("/api/v1/sessions", json={"subject": "mathematics"}).get_json()["id"]
    student.post(f"/api/v1/sessions/{sid}/messages", json={"content": "what is 3/4 + 1/8"})
    app.config["METRICS_TOKEN"] = "t"
    try:
        before = client.get("/metrics", headers={"Authorization": "Bearer t"}).get_data(as_text=True)
        assert 'aitutor_queue_depth{queue="ai"} 1.0' in before
        run_jobs(app)
        after = client.get("/metrics", headers={"Authorization": "Bearer t"}).get_data(as_text=True)
    finally:
        app.config["METRICS_TOKEN"] = ""
    assert 'aitutor_queue_depth{queue="ai"} 0.0' in after
    assert 'aitutor_job_duration_seconds_count{func="jobs.ai.process_ai_response"} 1.0' in after
    assert 'aitutor_reply_latency_seconds_count{provider="builtin"} 1.0' in after
    assert "aitutor_http_request_duration_seconds_bucket" in after
    assert "aitutor_workers" in after
