"""Who is asking: cookie sessions (Flask-Login) for the tutor's pages, bearer embed tokens
for pages embedded in other sites, and CSRF protection for cookie-authenticated writes."""

from __future__ import annotations

import hmac
import secrets
from functools import wraps

from flask import Flask, current_app, g, request, session
from flask_login import LoginManager, current_user
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from foundation.extensions import db

from .embed import EmbedTokenError, site_keys, verify_token
from .models import User

login_manager = LoginManager()
login_manager.login_view = "tutor.login"
login_manager.session_protection = "basic"

CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


def safe_next(target: str | None, default: str) -> str:
    """``target`` if it is a path on this site, else ``default``: the ``next`` of a login.

    Browsers drop tabs and newlines from URLs and read ``\\`` as ``/``, so ``/\t/evil.example``
    and ``/\\evil.example`` lead off-site although they start with one slash; anything with a
    control character, a backslash, a scheme or a host is refused.
    """
    from urllib.parse import urlsplit

    if not target or any(ord(ch) < 32 or ch in "\\\x7f" for ch in target):
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return default
    return target


@login_manager.user_loader
def load_user(user_id: str) -> User | None:
    """The user of a login ("id:login_version"), if that login has not been ended since."""
    uid, _, version = user_id.partition(":")
    try:
        user = db.session.get(User, int(uid))
        return user if user is not None and user.login_version == int(version) else None
    except ValueError:
        return None


def end_all_logins(user: User) -> None:
    """Every session and remember cookie of ``user`` stops working (the caller commits)."""
    db.session.execute(text("UPDATE users SET login_version = login_version + 1 WHERE id = :id"), {"id": user.id})


def log_out() -> None:
    """Log the current user out of this browser and, with it, of every device and copied cookie."""
    from flask_login import logout_user

    if current_user.is_authenticated:
        end_all_logins(current_user)
        db.session.commit()
    logout_user()


@login_manager.request_loader
def load_user_from_bearer(req) -> User | None:
    """``Authorization: Bearer <embed token>``: the API without a cookie (and without CSRF)."""
    header = req.headers.get("Authorization", "")
    if not header.lower().startswith("bearer "):
        return None
    try:
        claims = verify_token(site_keys(current_app.config), header[7:].strip())
    except EmbedTokenError as exc:
        g.bearer_error = str(exc)
        return None
    g.bearer_auth = True
    return user_for_embed(claims.site, claims.external_id, claims.display_name)


def embed_user(site: str, external_id: str) -> User | None:
    from sqlalchemy import select

    return db.session.scalar(select(User).where(User.embed_site == site, User.external_id == external_id))


def user_for_embed(site: str, external_id: str, display_name: str) -> User:
    """The student behind an embed token (host site and its id for them), created on first use."""
    user = embed_user(site, external_id)
    if user is not None:
        return user
    user = User(
        email=f"embed-{secrets.token_hex(8)}@embed.invalid",
        embed_site=site,
        external_id=external_id,
        display_name=display_name,
        role="student",
    )
    db.session.add(user)
    try:
        db.session.commit()
    except IntegrityError:  # two first requests raced; the other one created it
        db.session.rollback()
        user = embed_user(site, external_id)
        assert user is not None
    return user


def csrf_token() -> str:
    token = session.get("csrf_token")
    if not token:
        token = session["csrf_token"] = secrets.token_urlsafe(32)
    return token


def csrf_ok() -> bool:
    """A state-changing call made with the session cookie must echo the CSRF token."""
    if request.method in SAFE_METHODS or g.get("bearer_auth"):
        return True
    expected = session.get("csrf_token")
    sent = request.headers.get(CSRF_HEADER) or request.form.get("csrf_token")
    return bool(expected and sent and hmac.compare_digest(expected, sent))


def is_admin() -> bool:
    return bool(current_user.is_authenticated and current_user.role == "admin")


def role_required(role: str):
    """For pages: send anonymous users to log in, refuse others with 403."""

    def decorator(view):
        @wraps(view)
        def wrapped(*args, **kwargs):
            from flask import abort

            if not current_user.is_authenticated:
                return login_manager.unauthorized()
            if current_user.role != role:
                abort(403)
            return view(*args, **kwargs)

        return wrapped

    return decorator


def _new_csrf_token(sender, user, **extra) -> None:  # noqa: ARG001 - Flask-Login's signal
    """A login starts a new CSRF token: one planted or seen before it is worth nothing after."""
    session["csrf_token"] = secrets.token_urlsafe(32)


def init_app(app: Flask) -> None:
    from flask_login import user_logged_in

    login_manager.init_app(app)
    app.jinja_env.globals["csrf_token"] = csrf_token
    user_logged_in.connect(_new_csrf_token, app)


ADMIN_PREFIX = "/admin/"
#: Teachers may open the analytics too: the dashboard shows them only their classes' students
#: (``dashboard.callbacks.viewer_scope``).
TEACHER_PREFIX = "/admin/analytics/"


def admin_guard():
    """Everything under ``/admin/`` (Dash, rq-dashboard) is for admins only, except the analytics
    (``TEACHER_PREFIX``), which teachers open too, scoped to their own classes' students.

    Anonymous page requests are sent to log in; anonymous JSON/XHR requests get 401 and
    students get 403, never data. Writes must come from this site (Origin/Referer check):
    the third-party scripts of Dash and rq-dashboard cannot send our CSRF token.
    """
    from flask import redirect, url_for

    from foundation.errors import json_error

    if not request.path.startswith(ADMIN_PREFIX) and request.path.rstrip("/") != ADMIN_PREFIX.rstrip("/"):
        return None
    wants_page = (
        request.method == "GET"
        and "/_dash-" not in request.path
        and not request.path.endswith(".json")
        and request.accept_mimetypes.accept_html
    )
    if not current_user.is_authenticated:
        if wants_page:
            return redirect(url_for("tutor.login", next=request.full_path.rstrip("?")))
        return json_error(401, "unauthorized", "Log in as an admin.")
    teacher_may = current_user.role == "teacher" and (request.path + "/").startswith(TEACHER_PREFIX)
    if current_user.role != "admin" and not teacher_may:
        if wants_page:
            from flask import abort

            abort(403, "This page is for admins.")
        return json_error(403, "forbidden", "Admins only.")
    if (request.method not in SAFE_METHODS or _writes_on_get()) and not same_origin():
        return json_error(403, "csrf_failed", "Cross-site request refused.")
    return None


def _writes_on_get() -> bool:
    """An endpoint that also takes POST changes state even when reached by GET (rq-dashboard's
    "requeue all" does): such a GET must come from this site too."""
    rule = request.url_rule
    return rule is not None and bool((rule.methods or set()) - SAFE_METHODS)


def same_origin() -> bool:
    from urllib.parse import urlsplit

    if request.headers.get("Sec-Fetch-Site", "same-origin") not in ("same-origin", "none"):
        return False  # the browser says where the request comes from
    source = request.headers.get("Origin") or request.headers.get("Referer")
    if not source:
        return False
    return urlsplit(source).netloc == request.host
