"""Server-rendered pages of the tutor: log in, register, my sessions, chat, and the embed."""

from __future__ import annotations

import uuid

from flask import abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required, login_user

from foundation.errors import json_error, wants_json
from foundation.extensions import db

from . import bp
from .auth import csrf_ok, log_out, role_required, safe_next, user_for_embed
from .classes import join_for_embed
from .curriculum import get_curriculum
from .embed import EmbedTokenError, site_keys, verify_token
from .mastery import MASTERED, practise_next, progress
from .models import TutoringSession
from .quiz import QuizError, mark_quiz, start_quiz
from .sessions import latest_active_session, past_sessions
from .throttle import login_throttled, record_failed_login, registration_wait
from .users import UserError, authenticate, create_user


@bp.before_request
def _csrf_for_forms():
    if not csrf_ok():
        abort(403, "The form expired; reload the page and try again.")


@bp.get("/")
def index():
    if current_user.is_authenticated:
        if current_user.role == "teacher":
            return redirect(url_for("tutor.class_list"))
        return redirect(url_for("tutor.sessions") if current_user.role == "student" else "/admin/analytics/")
    return render_template("index.html")


@bp.route("/login", methods=["GET", "POST"])
def login():
    if request.method == "POST":
        email = request.form.get("email", "")
        wait = login_throttled(email)
        if wait:
            flash(f"Too many failed logins; try again in {wait // 60 + 1} minutes.", "error")
            return render_template("login.html", email=email), 429
        user = authenticate(email, request.form.get("password", ""))
        if user is not None:
            login_user(user, remember=bool(request.form.get("remember")))
            return redirect(safe_next(request.args.get("next"), url_for("tutor.index")))
        record_failed_login(email)
        flash("Wrong e-mail or password.", "error")
        return render_template("login.html", email=request.form.get("email", "")), 401
    return render_template("login.html")


@bp.route("/register", methods=["GET", "POST"])
def register():
    form = request.form
    if request.method == "POST":
        wait = registration_wait()
        if wait:
            flash(f"Too many registrations from your network; try again in {wait // 60 + 1} minutes.", "error")
            return render_template("register.html", form=form), 429, {"Retry-After": str(wait)}
        try:
            grade = form.get("grade_level", "").strip()
            user = create_user(
                form.get("email", ""),
                form.get("password", ""),
                display_name=form.get("display_name") or None,
                grade_level=int(grade) if grade else None,
            )
            db.session.commit()
        except (UserError, ValueError) as exc:
            db.session.rollback()
            flash(str(exc) if isinstance(exc, UserError) else "The grade must be a number.", "error")
            return render_template("register.html", form=form), 400
        login_user(user)
        return redirect(url_for("tutor.sessions"))
    return render_template("register.html", form={})


@bp.post("/logout")
def logout():
    log_out()
    return redirect(url_for("tutor.login"))


@bp.get("/sessions")
@login_required
@role_required("student")
def sessions():
    """Past sessions with something in them: first question as the title, topics as chips."""
    return render_template("sessions.html", sessions=past_sessions(current_user.id), subjects=get_curriculum().subjects)


@bp.get("/progress")
@login_required
@role_required("student")
def my_progress():
    """Mastery per topic as bars, what to practise next, and "Quiz me" on any topic."""
    topics = progress(current_user.id)
    return render_template(
        "progress.html",
        topics=topics,
        next_up=practise_next(topics),
        subjects=get_curriculum().subjects,
        mastered=MASTERED,
    )


@bp.get("/quiz")
@login_required
@role_required("student")
def quiz():
    subject, topic = request.args.get("subject", ""), request.args.get("topic", "")
    if "/" in request.args.get("choice", ""):
        subject, topic = request.args["choice"].split("/", 1)
    try:
        started = start_quiz(current_user.id, subject, topic)
    except QuizError as exc:
        flash(str(exc), "error")
        return redirect(url_for("tutor.my_progress"))
    return render_template("quiz.html", quiz=started)


@bp.post("/quiz")
@login_required
@role_required("student")
def quiz_answers():
    try:
        result = mark_quiz(current_user.id, request.form.get("quiz", ""), request.form.getlist("answer"))
    except QuizError as exc:
        flash(str(exc), "error")
        return redirect(url_for("tutor.my_progress"))
    return render_template("quiz_result.html", result=result, mastered=MASTERED)


@bp.get("/sessions/<session_id>")
@login_required
@role_required("student")
def chat(session_id: str):
    try:
        sid = uuid.UUID(session_id)
    except ValueError:
        abort(404)
    session = db.session.get(TutoringSession, sid)
    if session is None or session.student_id != current_user.id:
        abort(404)
    return _chat_page(str(session.id), session.subject)


@bp.get("/chat")
@login_required
@role_required("student")
def new_chat():
    return _chat_page("", request.args.get("subject", ""))


def _chat_page(session_id: str, subject_id: str, embed_token: str = "", notice_student=None):  # type: ignore[no-untyped-def]
    subject = get_curriculum().subjects.get(subject_id)
    return render_template(
        "chat.html",
        notice_student=notice_student,
        session_id=session_id,
        subject=subject.id if subject else "",
        subject_name=subject.name if subject else "",
        embed_token=embed_token,
        embed=bool(embed_token),
    )


@bp.get("/embed")
def embed():
    token = request.args.get("token", "")
    try:
        claims = verify_token(site_keys(current_app.config), token)
    except EmbedTokenError as exc:
        return render_template("embed_error.html", reason=str(exc)), 401, NO_STORE
    user = user_for_embed(claims.site, claims.external_id, claims.display_name)
    join_for_embed(user, claims.class_code)
    subject = claims.subject if claims.subject in get_curriculum().subjects else ""
    # A host reloads the embed with a fresh token when the old one expires (docs/EMBEDDING.md):
    # the student carries on with their latest active session of that subject.
    resume = latest_active_session(user.id, subject) if subject else None
    page = _chat_page(str(resume) if resume else "", subject, embed_token=token, notice_student=user)
    return page, 200, NO_STORE


@bp.get("/favicon.ico")
def favicon():
    """Browsers ask for /favicon.ico on every site (the Dash and rq-dashboard pages too): the SVG icon."""
    return redirect(url_for("tutor.static", filename="favicon.svg"), code=301)


# The embed page holds its token: no cache may keep it, and no Referer may carry it on.
NO_STORE = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}


@bp.get("/admin/schedule")
@role_required("admin")
def schedule():
    """The periodic jobs rq-scheduler holds, with their next run (rq-dashboard does not show them)."""
    from zoneinfo import ZoneInfo

    from foundation.extensions import redis_ext
    from foundation.queue import scheduled_jobs

    tz = current_app.config["ANALYTICS_TZ"]
    rows = scheduled_jobs(redis_ext.conn)
    for row in rows:
        row["next_local"] = row["next_run"].astimezone(ZoneInfo(tz))
    return render_template("schedule.html", rows=rows, tz=tz)


_BACK_LINKS = (
    b'<nav style="padding:6px 12px;background:#1f2937;font:14px sans-serif">'
    b'<a style="color:#fff;margin-right:16px" href="/admin/analytics/">&larr; AI Tutor analytics</a>'
    b'<a style="color:#fff" href="/admin/schedule">Scheduled jobs</a></nav>'
)


@bp.after_app_request
def _rq_dashboard_back_links(response):  # type: ignore[no-untyped-def]
    """rq-dashboard's pages have no way back to the app: add a bar at the top of its HTML."""
    if (
        request.path.startswith("/admin/rq/")
        and response.mimetype == "text/html"
        and response.status_code == 200
        and not response.direct_passthrough
    ):
        body = response.get_data()
        at = body.find(b"<body")
        end = body.find(b">", at) + 1 if at >= 0 else 0
        if end:
            response.set_data(body[:end] + _BACK_LINKS + body[end:])
    return response


@bp.app_errorhandler(404)
def not_found(exc):
    if wants_json():
        return json_error(404, "not_found", "No such resource.")
    return render_template("error.html", title="Not found", message="There is nothing at this address."), 404


@bp.app_errorhandler(403)
def forbidden(exc):
    if wants_json():
        return json_error(403, "forbidden", getattr(exc, "description", ""))
    return render_template("error.html", title="Not allowed", message=getattr(exc, "description", "")), 403
