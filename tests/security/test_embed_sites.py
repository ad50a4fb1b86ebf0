"""Security issue, item 10: embed tokens per host site, short-lived, never cached or logged."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

import pytest
from sqlalchemy import text

from foundation.config import ConfigError, load_settings
from foundation.gunicorn_logging import RedactingLogger, redact
from tests.conftest import TEST_CONFIG
from tutor.embed import make_token

PORTAL = "portal-secret-0123456789-0123456789"
LMS = "lms-secret-0123456789-0123456789-xyz"


@pytest.fixture
def sites(app):
    saved = app.config["EMBED_SITES"]
    app.config["EMBED_SITES"] = f"portal={PORTAL},lms={LMS}"
    yield
    app.config["EMBED_SITES"] = saved


def _rows(app):
    from foundation.extensions import db

    with app.app_context():
        return db.session.execute(text(
            "SELECT embed_site, external_id, display_name FROM users WHERE external_id IS NOT NULL ORDER BY 1, 2"
        )).all()  # fmt: skip


def test_the_same_sub_from_two_sites_is_two_students(app, client, sites):  # noqa: ARG001
    for secret, kid, name in (
        (PORTAL, "portal", "Ada"),
        (LMS, "lms", "Bea"),
        (TEST_CONFIG["EMBED_SECRET"], None, "Cy"),
    ):
        token = make_token(secret, "42", name, kid=kid)
        assert app.test_client().get(f"/embed?token={token}").status_code == 200, kid
    assert _rows(app) == [("default", "42", "Cy"), ("lms", "42", "Bea"), ("portal", "42", "Ada")]


def test_a_site_cannot_sign_for_another(app, client, sites):  # noqa: ARG001
    forged = make_token(PORTAL, "42", "Eve", kid="lms")  # the portal's key, claiming to be the LMS
    assert client.get(f"/embed?token={forged}").status_code == 401
    unknown = make_token(PORTAL, "42", "Eve", kid="nowhere")
    page = client.get(f"/embed?token={unknown}")
    assert page.status_code == 401 and b"unknown host site" in page.data
    assert _rows(app) == []


def test_tokens_live_at_most_an_hour(client):
    secret = TEST_CONFIG["EMBED_SECRET"]
    assert client.get(f"/embed?token={make_token(secret, 's1', 'A', ttl=600)}").status_code == 200
    too_long = client.get(f"/embed?token={make_token(secret, 's2', 'B', ttl=6 * 3600)}")
    assert too_long.status_code == 401 and b"too long" in too_long.data


def test_the_embed_page_is_never_cached_and_sends_no_referrer(client):
    page = client.get(f"/embed?token={make_token(TEST_CONFIG['EMBED_SECRET'], 's1', 'A')}")
    assert page.headers["Cache-Control"] == "no-store" and page.headers["Referrer-Policy"] == "no-referrer"
    refused = client.get("/embed?token=garbage")
    assert refused.status_code == 401 and refused.headers["Cache-Control"] == "no-store"


def test_tokens_are_redacted_from_the_access_log():
    from gunicorn.config import Config

    logger = RedactingLogger(Config())
    environ = {"REQUEST_METHOD": "GET", "RAW_URI": "/embed?token=eyJ.secret.sig&x=1", "PATH_INFO": "/embed",
               "QUERY_STRING": "token=eyJ.secret.sig&x=1", "SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": "10.0.0.1"}  # fmt: skip
    resp = SimpleNamespace(status="200 OK", headers=[], response_length=10, sent=10)
    req = SimpleNamespace(headers=[])
    atoms = logger.atoms(resp, req, environ, dt.timedelta(milliseconds=5))
    assert "eyJ.secret.sig" not in atoms["r"] and "token=[redacted]" in atoms["r"] and "x=1" in atoms["r"]
    assert "eyJ" not in atoms["q"]
    assert redact("GET /admin/analytics/?range=week") == "GET /admin/analytics/?range=week"


def test_embed_sites_setting_is_checked():
    assert load_settings({"EMBED_SITES": f"portal={PORTAL}"}).EMBED_SITES
    for bad in ("portal", "portal=short", f"default={PORTAL}", f"bad site={PORTAL}"):
        with pytest.raises(ConfigError, match="EMBED_SITES"):
            load_settings({"EMBED_SITES": bad})


def test_an_embed_student_of_a_site_is_deleted_by_site_and_id(app, runner, sites):  # noqa: ARG001
    assert app.test_client().get(f"/embed?token={make_token(LMS, '7', 'Di', kid='lms')}").status_code == 200
    assert runner.invoke(args=["users", "delete", "--external-id", "7", "--yes"]).exit_code != 0  # not "default"'s
    result = runner.invoke(args=["users", "delete", "--external-id", "7", "--site", "lms", "--yes"])
    assert result.exit_code == 0, result.output
    assert _rows(app) == []
