"""Security issue, items 6-8: odd or hostile input gets a 4xx with the usual error, never a 500,
and a login never redirects off-site."""

from __future__ import annotations

import json
import re
import time

import jwt
import pytest

from tests.conftest import TEST_CONFIG, make_student


def _form_login(app, next_: str):
    make_student(app)
    client = app.test_client()
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").get_data(as_text=True)).group(1)
    form = {"csrf_token": csrf, "email": "pupil@school.org", "password": "learning123"}
    return client.post(f"/login?next={next_}", data=form)


def _admin(app):
    from foundation.extensions import db
    from tutor.users import create_user

    with app.app_context():
        create_user("boss@school.org", "admin-password", role="admin")
        db.session.commit()
    client = app.test_client()
    login = client.post("/api/v1/auth/login", json={"email": "boss@school.org", "password": "admin-password"})
    return client, login.get_json()["csrf_token"]


def _session(student) -> str:
    return student.post("/api/v1/sessions", json={"subject": "mathematics"}).get_json()["id"]


def _is_json_4xx(response, status: int = 400) -> bool:
    return response.status_code == status and response.is_json and "error" in response.get_json()


# -- 6. request size -----------------------------------------------------------------------


def test_a_huge_body_is_refused_before_it_is_read(client):
    big = b'{"email": "' + b"a" * (2 * 1024 * 1024) + b'"}'
    response = client.post("/api/v1/auth/register", data=big, content_type="application/json")
    assert _is_json_4xx(response, 413)


def test_a_body_within_the_limit_is_read(app, student):
    message = "x" * app.config["MESSAGE_MAX_CHARS"]
    assert student.post(f"/api/v1/sessions/{_session(student)}/messages", json={"content": message}).status_code == 202


# -- 7. odd input ------------------------------------------------------------------------------


def test_deeply_nested_json_is_a_400(app, student):
    deep = "[" * 100_000 + "]" * 100_000
    response = student.post(
        f"/api/v1/sessions/{_session(student)}/messages", data=json.dumps({"content": "x"})[:-1] + f', "x": {deep}}}',
        content_type="application/json", headers={"X-CSRF-Token": student.csrf},
    )  # fmt: skip
    assert _is_json_4xx(response)


@pytest.mark.parametrize("text", ["bad \x00 byte", "lone \ud800 surrogate"])
def test_unstorable_text_in_a_message_or_rating_is_a_400(app, student, text):
    sid = _session(student)
    raw = json.dumps({"content": text}).encode()  # json.dumps writes \\ud800 as an escape, as a client would
    response = student.client.post(f"/api/v1/sessions/{sid}/messages", data=raw, content_type="application/json",
                                   headers={"X-CSRF-Token": student.csrf})  # fmt: skip
    assert _is_json_4xx(response)
    assert _is_json_4xx(student.post(f"/api/v1/sessions/{sid}/rating", json={"rating": 4, "comment": text}))


def test_unstorable_text_in_an_email_is_a_400(client):
    for email in ("pupil\x00@school.org", "pupil\ud800@school.org"):
        raw = json.dumps({"email": email, "password": "learning123"}).encode()
        assert _is_json_4xx(client.post("/api/v1/auth/register", data=raw, content_type="application/json"))
        assert _is_json_4xx(client.post("/api/v1/auth/login", data=raw, content_type="application/json"))
    page = client.post("/login", data={"email": "a\x00@b.org", "password": "x"})
    assert page.status_code == 400


def test_an_email_longer_than_the_column_is_a_400(client):
    email = "a" * 330 + "@school.org"
    response = client.post("/api/v1/auth/register", json={"email": email, "password": "learning123"})
    assert _is_json_4xx(response) and "320" in response.get_json()["detail"]


def test_a_page_number_past_any_offset_is_a_400(student):
    response = student.get("/api/v1/sessions?page=99999999999999999999")
    assert _is_json_4xx(response)
    assert student.get("/api/v1/sessions?page=2").status_code == 200


def test_an_embed_token_with_a_string_exp_is_refused(app, client):
    secret = TEST_CONFIG["EMBED_SECRET"]
    token = jwt.encode({"sub": "42", "name": "Ada", "exp": str(int(time.time()) + 600)}, secret, algorithm="HS256")
    page = client.get(f"/embed?token={token}")
    assert page.status_code in (400, 401, 403) and b"exp" in page.data
    api = client.get("/api/v1/sessions", headers={"Authorization": f"Bearer {token}"})
    assert api.status_code in (400, 401) and api.is_json


def test_a_malformed_dash_callback_body_is_a_400(app):
    admin, _ = _admin(app)
    for payload in ({}, {"output": 5}, [], {"output": "x.children", "inputs": "nope"}):
        response = admin.post("/admin/analytics/_dash-update-component", json=payload,
                              headers={"Accept": "application/json", "Origin": "http://localhost"})  # fmt: skip
        assert response.status_code == 400, (payload, response.status_code)


# -- 8. where a login leads ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "target", ["/%09/evil.example/", "//evil.example/", "/%5Cevil.example", "https://evil.example/",
               "/%0d%0aSet-Cookie:%20x=1", "/\\evil.example"],
)  # fmt: skip
def test_login_never_redirects_off_site(app, target):
    response = _form_login(app, target)
    assert response.status_code == 302
    location = response.headers["Location"]
    assert location == "/" or location.startswith("/") and not location.startswith(("//", "/\\"))
    assert "evil" not in location and "\n" not in location and "\t" not in location


def test_login_goes_on_to_a_page_of_this_site(app):
    response = _form_login(app, "/sessions")
    assert response.status_code == 302 and response.headers["Location"] == "/sessions"
