"""The /api/v1 contract, including every error status."""

import uuid

from tests.conftest import make_student, run_jobs


def _session(student, subject="mathematics"):
    response = student.post("/api/v1/sessions", json={"subject": subject})
    assert response.status_code == 201, response.get_json()
    return response.get_json()["id"]


def test_login_returns_user_and_csrf_token(app, student):
    response = student.client.post("/api/v1/auth/login", json={"email": "PUPIL@school.org", "password": "learning123"})
    body = response.get_json()
    assert response.status_code == 200
    assert body["user"]["role"] == "student" and body["user"]["id"] == student.id
    assert body["csrf_token"]


def test_login_errors(app, client):
    assert client.post("/api/v1/auth/login", data="nope", content_type="text/plain").status_code == 400
    assert client.post("/api/v1/auth/login", json={"email": "x@y.org"}).status_code == 400
    response = client.post("/api/v1/auth/login", json={"email": "x@y.org", "password": "whatever1"})
    assert response.status_code == 401
    assert set(response.get_json()) >= {"error", "detail"}


def test_subjects(client):
    subjects = client.get("/api/v1/subjects").get_json()
    ids = {s["id"] for s in subjects}
    assert {"mathematics", "science", "english"} <= ids
    maths = next(s for s in subjects if s["id"] == "mathematics")
    assert any(t["id"] == "linear equations" for t in maths["topics"])


def test_session_lifecycle(app, student):
    sid = _session(student)
    posted = student.post(f"/api/v1/sessions/{sid}/messages", json={"content": "How do I solve 2x + 3 = 7?"})
    assert posted.status_code == 202
    body = posted.get_json()
    assert body["status"] == "queued" and body["stream_url"] == f"/api/v1/messages/{body['reply_id']}/stream"

    assert student.get(f"/api/v1/messages/{body['reply_id']}").get_json()["status"] == "queued"
    run_jobs(app)
    reply = student.get(f"/api/v1/messages/{body['reply_id']}").get_json()
    assert reply["status"] == "done" and reply["content"] and reply["attempts"] == 1

    detail = student.get(f"/api/v1/sessions/{sid}").get_json()
    assert [m["role"] for m in detail["messages"]] == ["student", "tutor"]
    assert "linear equations" in detail["topics"]

    listing = student.get("/api/v1/sessions").get_json()
    assert listing["total"] == 1 and listing["items"][0]["id"] == sid

    ended = student.post(f"/api/v1/sessions/{sid}/end")
    assert ended.status_code == 200
    assert ended.get_json()["status"] == "ended" and ended.get_json()["duration_seconds"] >= 0
    rated = student.post(f"/api/v1/sessions/{sid}/rating", json={"rating": 5, "comment": "great"})
    assert rated.status_code == 200 and rated.get_json()["satisfaction"] == 5
    assert student.post(f"/api/v1/sessions/{sid}/messages", json={"content": "more?"}).status_code == 409


def test_sessions_are_paginated_newest_first(app, student):
    ids = [_session(student) for _ in range(3)]
    page1 = student.get("/api/v1/sessions?per_page=2").get_json()
    page2 = student.get("/api/v1/sessions?per_page=2&page=2").get_json()
    assert [s["id"] for s in page1["items"] + page2["items"]] == list(reversed(ids))
    assert student.get("/api/v1/sessions?page=x").status_code == 400


def test_missing_csrf_token_is_403(student):
    response = student.client.post("/api/v1/sessions", json={"subject": "mathematics"})
    assert response.status_code == 403
    assert response.get_json()["error"] == "csrf_failed"
    wrong = student.client.post("/api/v1/sessions", json={"subject": "mathematics"}, headers={"X-CSRF-Token": "x"})
    assert wrong.status_code == 403


def test_not_logged_in_is_401(client):
    assert client.get("/api/v1/sessions").status_code == 401
    assert client.get(f"/api/v1/sessions/{uuid.uuid4()}").status_code == 401


def test_admin_has_no_sessions_403(app, runner):
    runner.invoke(args=["users", "create", "--email", "boss@x.org", "--password", "admin1234", "--role", "admin"])
    client = app.test_client()
    csrf = client.post("/api/v1/auth/login", json={"email": "boss@x.org", "password": "admin1234"}).get_json()[
        "csrf_token"
    ]
    response = client.post("/api/v1/sessions", json={"subject": "mathematics"}, headers={"X-CSRF-Token": csrf})
    assert response.status_code == 403


def test_bad_bodies_and_unknown_subject_are_400(student):
    assert student.post("/api/v1/sessions", data="{", content_type="application/json").status_code == 400
    response = student.post("/api/v1/sessions", json={"subject": "astrology"})
    assert response.status_code == 400
    assert "mathematics" in response.get_json()["detail"]
    assert student.post("/api/v1/sessions", json={"subject": "mathematics", "topic": "cooking"}).status_code == 400
    sid = _session(student)
    assert student.post(f"/api/v1/sessions/{sid}/messages", json={"content": "   "}).status_code == 400
    assert student.post(f"/api/v1/sessions/{sid}/messages", json={"content": 5}).status_code == 400
    for rating in (0, 6, "5", True, 4.5):
        assert student.post(f"/api/v1/sessions/{sid}/rating", json={"rating": rating}).status_code == 400


def test_other_students_things_are_404(app, student):
    sid = _session(student)
    reply_id = student.post(f"/api/v1/sessions/{sid}/messages", json={"content": "what is 3/4 + 1/8"}).get_json()[
        "reply_id"
    ]
    other = make_student(app, email="other@school.org")
    assert other.get(f"/api/v1/sessions/{sid}").status_code == 404
    assert other.post(f"/api/v1/sessions/{sid}/messages", json={"content": "hi"}).status_code == 404
    assert other.post(f"/api/v1/sessions/{sid}/end").status_code == 404
    assert other.get(f"/api/v1/messages/{reply_id}").status_code == 404
    assert other.get(f"/api/v1/messages/{reply_id}/stream").status_code == 404
    assert other.post(f"/api/v1/messages/{reply_id}/retry").status_code == 404
    assert student.get(f"/api/v1/sessions/{uuid.uuid4()}").status_code == 404
    assert student.get("/api/v1/sessions/not-a-uuid").status_code == 404
    assert student.get("/api/v1/messages/999999").status_code == 404


def test_content_over_limit_is_422(app, student):
    sid = _session(student)
    limit = app.config["MESSAGE_MAX_CHARS"]
    assert student.post(f"/api/v1/sessions/{sid}/messages", json={"content": "a" * (limit + 1)}).status_code == 422
    assert student.post(f"/api/v1/sessions/{sid}/messages", json={"content": "a" * limit}).status_code == 202


def test_rate_limit_is_429(app, student):
    sid = _session(student)
    app.config["MESSAGE_RATE_LIMIT"] = "3/minute"
    try:
        codes = [
            student.post(f"/api/v1/sessions/{sid}/messages", json={"content": f"q{i}"}).status_code for i in range(4)
        ]
    finally:
        app.config["MESSAGE_RATE_LIMIT"] = "20/minute"
    assert codes == [202, 202, 202, 429]


def test_retry_only_for_failed_replies(app, student):
    sid = _session(student)
    reply_id = student.post(f"/api/v1/sessions/{sid}/messages", json={"content": "hi"}).get_json()["reply_id"]
    assert student.post(f"/api/v1/messages/{reply_id}/retry").status_code == 409


def test_script_in_student_message_is_stored_as_text(app, student):
    sid = _session(student)
    payload = "<script>alert(1)</script> what is 2 + 2?"
    student.post(f"/api/v1/sessions/{sid}/messages", json={"content": payload})
    messages = student.get(f"/api/v1/sessions/{sid}").get_json()["messages"]
    assert messages[0]["content"] == payload  # the page renders it with textContent
    assert "content_html" not in messages[0]
