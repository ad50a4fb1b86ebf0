"""Security issue, item 3: login does not tell accounts apart by timing; registration, which
honestly says an address is taken, is limited per client address."""

from __future__ import annotations

import pytest


@pytest.fixture
def few_registrations(app):
    saved = app.config["REGISTER_RATE_LIMIT"]
    app.config["REGISTER_RATE_LIMIT"] = "3/hour"
    yield
    app.config["REGISTER_RATE_LIMIT"] = saved


def test_registrations_per_address_are_limited(app, client, few_registrations):  # noqa: ARG001
    codes = [client.post("/api/v1/auth/register", json={"email": f"s{i}@school.org", "password": "learning123"},
                         environ_base={"REMOTE_ADDR": "203.0.113.5"}).status_code for i in range(4)]  # fmt: skip
    assert codes == [201, 201, 201, 429]
    other = app.test_client().post("/api/v1/auth/register", json={"email": "t@school.org", "password": "learning123"},
                                   environ_base={"REMOTE_ADDR": "198.51.100.9"})  # fmt: skip
    assert other.status_code == 201  # another network is not affected


def test_the_register_page_is_limited_too(app, few_registrations):  # noqa: ARG001
    import re

    codes = []
    for i in range(4):
        client = app.test_client()
        html = client.get("/register").get_data(as_text=True)
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)
        form = {"csrf_token": csrf, "email": f"p{i}@school.org", "password": "learning123"}
        codes.append(client.post("/register", data=form, environ_base={"REMOTE_ADDR": "203.0.113.6"}).status_code)
    assert codes == [302, 302, 302, 429]


def test_login_hashes_a_password_for_an_unknown_account_too(app, client, monkeypatch):
    """The same slow scrypt check runs whether or not the account exists (before, an unknown
    account answered in ~65 ms against ~289 ms for a wrong password)."""
    from foundation.extensions import db
    from tutor import users
    from tutor.users import create_user

    with app.app_context():
        create_user("known@school.org", "learning123")
        db.session.commit()
    checked: list[str] = []
    real = users.check_password_hash
    monkeypatch.setattr(users, "check_password_hash", lambda stored, pw: checked.append(stored) or real(stored, pw))
    for email in ("known@school.org", "nobody@school.org"):
        assert client.post("/api/v1/auth/login", json={"email": email, "password": "wrong-password"}).status_code == 401
    assert len(checked) == 2 and all(h.startswith("scrypt:") for h in checked)
