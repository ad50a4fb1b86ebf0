"""The chat's finishing touches through the API and pages: thumbs on replies, Stop, the rating
and its comment after a reload, "My sessions", the favicon, and an embed that resumes."""

import re

from sqlalchemy import select

from tests.conftest import TEST_CONFIG, run_jobs
from tutor import streams
from tutor.embed import make_token


def _session(student, subject="mathematics") -> str:
    return student.post("/api/v1/sessions", json={"subject": subject}).get_json()["id"]


def _say(student, sid, text) -> int:
    response = student.post(f"/api/v1/sessions/{sid}/messages", json={"content": text})
    assert response.status_code == 202, response.get_json()
    return response.get_json()["reply_id"]


def _row(app, reply_id):
    from foundation.extensions import db
    from tutor.models import Message

    with app.app_context():
        return db.session.execute(
            select(Message.status, Message.content, Message.stopped, Message.feedback).where(Message.id == reply_id)
        ).one()


def test_thumbs_up_and_down_are_stored_and_shown(app, student):
    sid = _session(student)
    reply_id = _say(student, sid, "what is 3/4 + 1/8")
    assert student.post(f"/api/v1/messages/{reply_id}/feedback", json={"feedback": "up"}).status_code == 409
    run_jobs(app)
    response = student.post(f"/api/v1/messages/{reply_id}/feedback", json={"feedback": "down"})
    assert response.status_code == 200 and response.get_json() == {"id": reply_id, "feedback": "down"}
    assert _row(app, reply_id).feedback == -1
    student.post(f"/api/v1/messages/{reply_id}/feedback", json={"feedback": "up"})
    assert _row(app, reply_id).feedback == 1
    messages = student.get(f"/api/v1/sessions/{sid}").get_json()["messages"]
    assert messages[1]["feedback"] == "up" and messages[1]["stopped"] is False
    assert student.post(f"/api/v1/messages/{reply_id}/feedback", json={"feedback": None}).get_json()["feedback"] is None
    for bad in ("sideways", 1, ["up"], {"x": 1}):
        assert student.post(f"/api/v1/messages/{reply_id}/feedback", json={"feedback": bad}).status_code == 400
    assert student.post(f"/api/v1/messages/{reply_id - 1}/feedback", json={"feedback": "up"}).status_code == 404


def test_stop_while_queued_ends_the_reply_empty_and_the_job_does_nothing(app, student):
    sid = _session(student)
    reply_id = _say(student, sid, "how do I solve 2x + 3 = 7?")
    response = student.post(f"/api/v1/messages/{reply_id}/stop")
    assert response.status_code == 202 and response.get_json()["status"] == "done"
    run_jobs(app)
    assert tuple(_row(app, reply_id)[:3]) == ("done", "", True)
    with app.app_context():
        from foundation.extensions import redis_ext

        events = [event for _id, event, _data in streams.read_all(redis_ext.conn, reply_id, "0-0")]
    assert events[-1] == streams.DONE  # an open stream ends
    # A finished reply has nothing to stop.
    assert student.post(f"/api/v1/messages/{reply_id}/stop").status_code == 200


def test_stop_while_streaming_keeps_the_partial_reply(app, student):
    sid = _session(student)
    reply_id = _say(student, sid, "how do I solve 2x + 3 = 7?")
    with app.app_context():
        from foundation.extensions import redis_ext

        streams.request_stop(redis_ext.conn, reply_id)  # as if Stop was pressed once it started
    run_jobs(app)
    status, content, stopped, _ = _row(app, reply_id)
    assert status == "done" and stopped is True
    full = _say(student, sid, "how do I solve 2x + 3 = 7?")
    run_jobs(app)
    assert content and len(content) < len(_row(app, full).content)  # the job ended early, text kept
    assert student.get(f"/api/v1/messages/{reply_id}").get_json()["stopped"] is True


def test_rating_and_comment_come_back_after_a_reload(app, student):
    sid = _session(student)
    _say(student, sid, "hi")
    run_jobs(app)
    student.post(f"/api/v1/sessions/{sid}/end")
    student.post(f"/api/v1/sessions/{sid}/rating", json={"rating": 4, "comment": "  The hints helped. "})
    data = student.get(f"/api/v1/sessions/{sid}").get_json()
    assert (data["satisfaction"], data["comment"]) == (4, "The hints helped.")


def test_my_sessions_titles_chips_and_no_empty_sessions(app, student):
    empty = _session(student, "science")
    sid = _session(student)
    _say(student, sid, "What is 3/4 + 1/8?   and how do I   simplify it " + "x" * 100)
    run_jobs(app)
    page = student.get("/sessions").get_data(as_text=True)
    assert f"/sessions/{sid}" in page and f"/sessions/{empty}" not in page
    assert "What is 3/4 + 1/8? and how do I simplify it" in page and "…" in page  # shortened title
    assert re.search(r'<span class="chip">Fractions</span>', page)  # topic names, not ids
    assert re.search(r'<time class="local-time" datetime="[^"]+\+00:00"', page)  # made local in the browser


def test_chat_page_title_is_the_subject_and_favicon_exists(app, student):
    page = student.get("/chat?subject=english").get_data(as_text=True)
    assert "<title>English · AI Tutor</title>" in page and 'id="chat-title"' in page
    assert 'rel="icon"' in page
    icon = student.get("/favicon.ico")
    assert icon.status_code == 301 and icon.headers["Location"].endswith("favicon.svg")
    assert student.get(icon.headers["Location"]).status_code == 200


def test_subjects_offer_three_starters(client):
    for subject in client.get("/api/v1/subjects").get_json():
        assert len(subject["starters"]) == 3


def test_embed_reload_resumes_the_latest_active_session_of_its_subject(app, client):
    def page(subject):
        token = make_token(TEST_CONFIG["EMBED_SECRET"], "lms-7", "Ada", subject=subject)
        html = client.get(f"/embed?token={token}").get_data(as_text=True)
        return token, re.search(r'data-session-id="([^"]*)"', html).group(1)

    token, first = page("science")
    assert first == ""  # nothing to resume: the page starts a session
    headers = {"Authorization": f"Bearer {token}"}
    sid = client.post("/api/v1/sessions", json={"subject": "science"}, headers=headers).get_json()["id"]
    assert page("science")[1] == sid  # reloaded with a fresh token: the same session
    assert page("english")[1] == ""  # another subject: a new one
    client.post(f"/api/v1/sessions/{sid}/end", headers=headers)
    assert page("science")[1] == ""  # an ended session is not resumed
