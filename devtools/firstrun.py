"""The first embedded run of ``python app.py``: migrations, demo data, the demo admin.

The supervisor (:mod:`foundation.devserver`) calls :func:`prepare_database` through the
callable ``app.py`` hands it, so the platform never imports the rooms above it.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from pathlib import Path

from flask import Flask

from foundation.config import Settings
from foundation.devserver import say

DEMO_ADMIN_EMAIL = "admin@demo.aitutor.local"
DEMO_MARKER = "demo-loaded"


def demo_admin_password(instance: Path) -> str:
    path = instance / "demo_admin.json"
    if path.exists():
        return json.loads(path.read_text())["password"]
    password = secrets.token_urlsafe(12)
    path.write_text(json.dumps({"email": DEMO_ADMIN_EMAIL, "password": password}))
    path.chmod(0o600)
    return password


def prepare_database(create_app: Callable[[], Flask], settings: Settings, instance: Path) -> str | None:
    """Migrate; on the embedded default's first run load demo data. Returns the demo admin's
    login line for the supervisor to print (None when not on the embedded default).

    ``create_app`` is the application factory, handed over by ``app.py`` (nothing imports it).
    """
    from flask_migrate import upgrade

    app = create_app()
    with app.app_context():
        say("applying database migrations")
        upgrade(x_arg="quiet=1")  # one line here, not one per migration
        if not settings.embedded:
            return None
        marker = instance / DEMO_MARKER
        password = demo_admin_password(instance)
        if not marker.exists():
            from foundation.extensions import db
            from tutor.users import create_user, find_user_by_email

            from .demo import seed_demo

            if _demo_students_exist(db):  # seeded, but stopped before the marker was written
                say("demo data already loaded")
            else:
                say(f"first run: loading demo data ({settings.DEMO_STUDENTS} students, {settings.DEMO_DAYS} days)")
                result = seed_demo(db.engine, students=settings.DEMO_STUDENTS, days=settings.DEMO_DAYS, progress=True)
                say(result.summary())
            if find_user_by_email(DEMO_ADMIN_EMAIL) is None:
                create_user(DEMO_ADMIN_EMAIL, password, role="admin", display_name="Demo admin")
                db.session.commit()
            from analytics.rollup import rollup_pending

            # What the nightly job would have done, so the dashboard reads rollups from the start.
            say(f"rolled up {len(rollup_pending())} days of demo history for the dashboard")
            from analytics.knowledge import refit

            say(f"mastery of {refit()['students']:,} student-topic pairs from the demo attempts")
            marker.write_text("1\n")
        return f"demo admin: {DEMO_ADMIN_EMAIL}  password: {password}"


def _demo_students_exist(db) -> bool:
    from sqlalchemy import text

    from .demo import DEMO_STUDENT_EMAIL_RE

    query = text("SELECT EXISTS (SELECT 1 FROM users WHERE lower(email) ~ :pattern)")
    return bool(db.session.scalar(query, {"pattern": DEMO_STUDENT_EMAIL_RE}))
