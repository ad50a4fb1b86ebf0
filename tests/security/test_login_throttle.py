"""Security issue, item 2: throttling that an attacker cannot turn into a lockout of others."""

from __future__ import annotations

from foundation.extensions import redis_ext
from tutor.throttle import LOGIN_LIMIT_PAIR


def _user(app, email="target@school.org", password="right-password"):
    from foundation.extensions import db
    from tutor.users import create_user

    with app.app_context():
        create_user(email, password)
        db.session.commit()


def _login(client, email, password, address):
    return client.post(
        "/api/v1/auth/login", json={"email": email, "password": password}, environ_base={"REMOTE_ADDR": address}
    )


def test_an_attacker_elsewhere_cannot_lock_the_owner_out(app, client):
    _user(app)
    codes = [_login(client, "target@school.org", f"guess{i}", "203.0.113.9").status_code for i in range(30)]
    assert 429 in codes  # the attacker is slowed down ...
    owner = _login(app.test_client(), "target@school.org", "right-password", "198.51.100.7")
    assert owner.status_code == 200  # ... the owner, from their own address, is not


def test_a_school_behind_one_address_keeps_logging_in(app):
    """Many pupils behind one NAT address, each mistyping once or twice: nobody is blocked."""
    for i in range(60):
        _user(app, f"pupil{i}@school.org", f"pupil-pass-{i}")
    nat = "192.0.2.1"
    for i in range(60):
        client = app.test_client()
        assert _login(client, f"pupil{i}@school.org", "typo-typo", nat).status_code == 401
        assert _login(client, f"pupil{i}@school.org", "typo-typo-2", nat).status_code == 401
        assert _login(client, f"pupil{i}@school.org", f"pupil-pass-{i}", nat).status_code == 200


def test_the_same_address_guessing_one_account_waits(app, client):
    _user(app)
    for i in range(LOGIN_LIMIT_PAIR.count):
        assert _login(client, "target@school.org", f"guess{i}", "203.0.113.9").status_code == 401
    blocked = _login(client, "target@school.org", "right-password", "203.0.113.9")
    assert blocked.status_code == 429 and int(blocked.headers["Retry-After"]) > 0


def test_forwarded_for_is_ignored_without_trusted_proxies(app, client):
    """Without TRUSTED_PROXIES a client cannot pick its address (and so its counters)."""
    assert not app.config["TRUSTED_PROXIES"]
    _user(app)
    for i in range(LOGIN_LIMIT_PAIR.count):
        client.post("/api/v1/auth/login", json={"email": "target@school.org", "password": f"g{i}"},
                    headers={"X-Forwarded-For": f"10.0.0.{i}"}, environ_base={"REMOTE_ADDR": "203.0.113.9"})  # fmt: skip
    blocked = client.post("/api/v1/auth/login", json={"email": "target@school.org", "password": "right-password"},
                          headers={"X-Forwarded-For": "10.9.9.9"}, environ_base={"REMOTE_ADDR": "203.0.113.9"})  # fmt: skip
    assert blocked.status_code == 429


def test_counters_do_not_hold_email_addresses(app, client):
    _login(client, "someone@school.org", "wrong-one", "203.0.113.9")
    with app.app_context():
        keys = [k.decode() for k in redis_ext.conn.scan_iter("aitutor:rl:login:*")]
    assert keys and not any("someone" in k or "@" in k for k in keys)
