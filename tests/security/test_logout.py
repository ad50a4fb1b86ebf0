"""Security issue, item 1: logging out (or a new password) ends every login of the user,
including copies of its cookies made before."""

from __future__ import annotations

import re

from tests.conftest import make_student


def _cookie(client, name: str) -> str | None:
    cookie = client.get_cookie(name)
    return cookie.value if cookie else None


def _form_login(app, remember: bool = False):
    client = app.test_client()
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").get_data(as_text=True)).group(1)
    form = {"csrf_token": csrf, "email": "pupil@school.org", "password": "learning123"}
    if remember:
        form["remember"] = "1"
    assert client.post("/login", data=form).status_code == 302
    return client


def test_a_session_cookie_saved_before_logout_is_dead_after_it(app):
    student = make_student(app)
    saved = _cookie(student.client, "session")
    assert student.get("/api/v1/sessions").status_code == 200
    assert student.post("/api/v1/auth/logout").status_code in (200, 204)

    thief = app.test_client()
    thief.set_cookie("session", saved)
    assert thief.get("/api/v1/sessions").status_code == 401
    created = thief.post("/api/v1/sessions", json={"subject": "mathematics"}, headers={"X-CSRF-Token": student.csrf})
    assert created.status_code in (401, 403)


def test_a_remember_cookie_saved_before_logout_is_dead_after_it(app):
    make_student(app)
    browser = _form_login(app, remember=True)
    remember = _cookie(browser, "remember_token")
    assert remember
    other_device = app.test_client()
    other_device.set_cookie("remember_token", remember)
    assert other_device.get("/api/v1/sessions").status_code == 200  # remembered: logged in

    csrf = re.search(r'name="csrf_token" value="([^"]+)"', browser.get("/sessions").get_data(as_text=True)).group(1)
    assert browser.post("/logout", data={"csrf_token": csrf}).status_code == 302
    replay = app.test_client()
    replay.set_cookie("remember_token", remember)
    assert replay.get("/api/v1/sessions").status_code == 401
    assert other_device.get("/api/v1/sessions").status_code == 401  # the other device is logged out too


def test_a_new_password_ends_every_login(app, runner):
    student = make_student(app)
    result = runner.invoke(
        args=["users", "set-password", "--email", "pupil@school.org", "--password", "new-learning-42"]
    )
    assert result.exit_code == 0, result.output
    assert student.get("/api/v1/sessions").status_code == 401
    fresh = app.test_client()
    login = fresh.post("/api/v1/auth/login", json={"email": "pupil@school.org", "password": "new-learning-42"})
    assert login.status_code == 200


def test_a_deleted_user_is_logged_out_everywhere(app, runner):
    student = make_student(app)
    assert runner.invoke(args=["users", "delete", "--email", "pupil@school.org", "--yes"]).exit_code == 0
    assert student.get("/api/v1/sessions").status_code == 401


def test_remember_me_lasts_a_term_not_a_year(app):
    assert app.config["REMEMBER_COOKIE_DURATION"].days <= 31
