"""Pages: log in, register, sessions, chat, embed; framing rules."""

import re

from sqlalchemy import func, select

from foundation.extensions import db
from tutor.embed import make_token
from tutor.models import User


def _csrf(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def test_register_login_logout_flow(app, client):
    page = client.get("/register").get_data(as_text=True)
    response = client.post(
        "/register",
        data={"csrf_token": _csrf(page), "email": "new@school.org", "password": "learning123", "display_name": "Noor"},
    )
    assert response.status_code == 302 and response.headers["Location"].endswith("/sessions")
    sessions = client.get("/sessions").get_data(as_text=True)
    assert "Start a session" in sessions and "Mathematics" in sessions
    logout_csrf = _csrf(sessions)
    assert client.post("/logout", data={"csrf_token": logout_csrf}).status_code == 302
    assert client.get("/sessions").status_code == 302  # back to log in

    login_page = client.get("/login").get_data(as_text=True)
    bad = client.post("/login", data={"csrf_token": _csrf(login_page), "email": "new@school.org", "password": "nope"})
    assert bad.status_code == 401 and "Wrong e-mail or password" in bad.get_data(as_text=True)
    good = client.post(
        "/login", data={"csrf_token": _csrf(login_page), "email": "new@school.org", "password": "learning123"}
    )
    assert good.status_code == 302


def test_forms_without_csrf_are_refused(client):
    assert client.post("/login", data={"email": "a@b.org", "password": "x"}).status_code == 403
    assert client.post("/register", data={"email": "a@b.org", "password": "learning123"}).status_code == 403


def test_pages_may_not_be_framed(client):
    csp = client.get("/login").headers["Content-Security-Policy"]
    assert csp.endswith("frame-ancestors 'none'")
    assert "script-src 'self';" in csp and "unsafe-inline" not in csp.split("style-src")[0]


def test_embed_with_valid_token_creates_student_once(app, client):
    token = make_token(app.config["EMBED_SECRET"], "lms-42", "Ada L.", subject="mathematics")
    for _ in range(2):
        response = client.get(f"/embed?token={token}")
        assert response.status_code == 200
        assert response.headers["Content-Security-Policy"].endswith("frame-ancestors https://school.example")
    with app.app_context():
        users = db.session.scalars(select(User).where(User.external_id == "lms-42")).all()
        assert len(users) == 1 and users[0].display_name == "Ada L." and users[0].role == "student"


def test_embed_token_works_as_bearer_without_csrf(app, client):
    token = make_token(app.config["EMBED_SECRET"], "lms-7", "Sam")
    auth = {"Authorization": f"Bearer {token}"}
    created = client.post("/api/v1/sessions", json={"subject": "science"}, headers=auth)
    assert created.status_code == 201
    sid = created.get_json()["id"]
    assert (
        client.post(
            f"/api/v1/sessions/{sid}/messages", json={"content": "how do plants make food?"}, headers=auth
        ).status_code
        == 202
    )


def test_tampered_or_expired_embed_token_is_401_and_creates_nobody(app, client):
    secret = app.config["EMBED_SECRET"]
    good = make_token(secret, "lms-9", "Eve")
    tampered = good[:-2] + ("A" if good[-2] != "A" else "B") + good[-1]
    expired = make_token(secret, "lms-10", "Old", ttl=-120)
    forged = make_token("another-secret-also-32-bytes-long!!", "lms-11", "Mallory")
    for token in (tampered, expired, forged, "garbage"):
        assert client.get(f"/embed?token={token}").status_code == 401
        assert client.get("/api/v1/sessions", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(User)) == 0
    assert "expired" in client.get(f"/embed?token={expired}").get_data(as_text=True)


def test_admin_pages_send_students_away(app, student):
    response = student.client.get("/sessions")
    assert response.status_code == 200


def test_security_headers_and_cookie_flags(app, student):
    response = student.client.get("/sessions")
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "strict-origin-when-cross-origin"
    assert "Strict-Transport-Security" not in response.headers  # plain HTTP here
    https = student.client.get("/sessions", base_url="https://localhost")
    assert https.headers["Strict-Transport-Security"].startswith("max-age=")
    login = app.test_client().post("/api/v1/auth/login", json={"email": "pupil@school.org", "password": "learning123"})
    cookie = login.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_login_is_throttled_per_account_and_address(app, client):
    from foundation.extensions import db
    from tutor.users import create_user

    with app.app_context():
        create_user("target@school.org", "right-password")
        db.session.commit()
    codes = [
        client.post("/api/v1/auth/login", json={"email": "target@school.org", "password": f"wrong{i}"}).status_code
        for i in range(6)
    ]
    assert codes[:5] == [401] * 5 and codes[5] == 429
    # even the right password waits now, from this address (tests/security: others do not)
    blocked = client.post("/api/v1/auth/login", json={"email": "target@school.org", "password": "right-password"})
    assert blocked.status_code == 429 and int(blocked.headers["Retry-After"]) > 0
