"""Security issue, item 5: a login starts a new CSRF token."""

from __future__ import annotations

import re

from tests.conftest import make_student


def _csrf(client, path="/login") -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', client.get(path).get_data(as_text=True)).group(1)


def test_two_accounts_in_one_browser_get_different_tokens(app):
    make_student(app, "a@school.org", "learning123")
    make_student(app, "b@school.org", "learning123")
    browser = app.test_client()
    first = browser.post("/api/v1/auth/login", json={"email": "a@school.org", "password": "learning123"})
    browser.post("/api/v1/auth/logout", headers={"X-CSRF-Token": first.get_json()["csrf_token"]})
    second = browser.post("/api/v1/auth/login", json={"email": "b@school.org", "password": "learning123"})
    assert first.get_json()["csrf_token"] != second.get_json()["csrf_token"]


def test_a_token_seen_before_the_form_login_is_replaced(app):
    make_student(app)
    browser = app.test_client()
    before = _csrf(browser)  # e.g. planted by an attacker who knows the login page's token
    response = browser.post(
        "/login", data={"csrf_token": before, "email": "pupil@school.org", "password": "learning123"}
    )
    assert response.status_code == 302
    after = _csrf(browser, "/sessions")
    assert after != before
    sid = browser.post("/api/v1/sessions", json={"subject": "mathematics"}, headers={"X-CSRF-Token": before})
    assert sid.status_code == 403  # the old token no longer writes
