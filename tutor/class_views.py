"""Pages for classes: a teacher's classes and rosters, joining with a code, transcripts (every
read recorded) and, for admins, the audit log of transcript reads."""

from __future__ import annotations

from functools import wraps

from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from foundation.extensions import db

from . import bp, classes
from .classes import ClassError
from .curriculum import get_curriculum


def teacher_required(view):
    @wraps(view)
    def wrapped(*args, **kwargs):
        if not classes.is_teacher(current_user):
            abort(403, "This page is for teachers and admins.")
        return view(*args, **kwargs)

    return login_required(wrapped)


def _class_or_404(class_id: int):
    try:
        return classes.class_for_teacher(current_user, class_id)
    except ClassError as exc:
        abort(exc.status, str(exc))


@bp.get("/classes")
@login_required
def class_list():
    found = classes.visible_classes(current_user)
    counts = classes.member_counts([c.id for c in found]) if classes.is_teacher(current_user) else {}
    return render_template(
        "classes.html", classes=found, counts=counts, subjects=get_curriculum().subjects, fmt=classes.format_code,
        teachers=classes.teachers_of(current_user.id) if current_user.role == "student" else [],
    )  # fmt: skip


@bp.post("/classes")
@teacher_required
def class_create():
    try:
        klass = classes.create_class(current_user, request.form.get("name", ""), request.form.get("subject") or None)
        db.session.commit()
    except ClassError as exc:
        db.session.rollback()
        flash(str(exc), "error")
        return redirect(url_for("tutor.class_list"))
    flash(f"Class created. Students join it with the code {classes.format_code(klass.join_code)}.", "info")
    return redirect(url_for("tutor.class_page", class_id=klass.id))


@bp.post("/classes/join")
@login_required
def class_join():
    try:
        klass = classes.join_by_code(current_user, request.form.get("join_code", ""))
        db.session.commit()
    except ClassError as exc:
        db.session.rollback()
        flash(str(exc), "error")
        return redirect(url_for("tutor.class_list"), 303)
    flash(f"You joined {klass.name}. Your teacher can now read your tutoring sessions.", "info")
    return redirect(url_for("tutor.class_list"), 303)


@bp.get("/classes/<int:class_id>")
@teacher_required
def class_page(class_id: int):
    klass = _class_or_404(class_id)
    students = classes.roster(klass)
    look = classes.sessions_worth_a_look(tuple(s["id"] for s in students), limit=20)
    return render_template(
        "class.html", klass=klass, students=students, worth_a_look=look, code=classes.format_code(klass.join_code),
        import_result=None, subjects=get_curriculum().subjects,
    )  # fmt: skip


@bp.post("/classes/<int:class_id>/code")
@teacher_required
def class_new_code(class_id: int):
    klass = _class_or_404(class_id)
    classes.regenerate_code(klass)
    db.session.commit()
    flash(f"New join code: {classes.format_code(klass.join_code)}. The old code no longer works.", "info")
    return redirect(url_for("tutor.class_page", class_id=klass.id), 303)


@bp.post("/classes/<int:class_id>/import")
@teacher_required
def class_import(class_id: int):
    klass = _class_or_404(class_id)
    upload = request.files.get("file")
    content = request.form.get("csv", "")
    if upload is not None and upload.filename:
        try:
            content = upload.read().decode("utf-8-sig")
        except UnicodeDecodeError:
            flash("The file is not UTF-8 text; save it as 'CSV UTF-8' and try again.", "error")
            return redirect(url_for("tutor.class_page", class_id=klass.id), 303)
    result = classes.import_students(klass, content)
    if result.errors:
        db.session.rollback()
    students = classes.roster(klass)
    return render_template(
        "class.html", klass=klass, students=students, code=classes.format_code(klass.join_code), import_result=result,
        worth_a_look=classes.sessions_worth_a_look(tuple(s["id"] for s in students), limit=20),
        subjects=get_curriculum().subjects,
    ), (400 if result.errors else 200)  # fmt: skip


@bp.post("/classes/<int:class_id>/students/<int:student_id>/remove")
@teacher_required
def class_remove(class_id: int, student_id: int):
    klass = _class_or_404(class_id)
    try:
        classes.remove_member(klass, student_id)
        db.session.commit()
        flash("Removed from the class (their account and sessions stay).", "info")
    except ClassError as exc:
        db.session.rollback()
        flash(str(exc), "error")
    return redirect(url_for("tutor.class_page", class_id=klass.id), 303)


@bp.get("/classes/<int:class_id>/students/<int:student_id>")
@teacher_required
def class_student(class_id: int, student_id: int):
    klass = _class_or_404(class_id)
    try:
        student = classes.member_of(klass, student_id)
    except ClassError as exc:
        abort(exc.status, str(exc))
    return render_template(
        "class_student.html", klass=klass, student=student, sessions=classes.student_sessions(student.id),
        subjects=get_curriculum().subjects,
    )  # fmt: skip


@bp.get("/review/<session_id>")
@teacher_required
def review(session_id: str):
    """A student's transcript for their teacher (or an admin); the read is recorded first."""
    try:
        session, klass = classes.reviewable_session(current_user, session_id)
    except ClassError as exc:
        abort(exc.status, str(exc))
    messages = classes.transcript(current_user, session, via="page", class_id=klass.id if klass else None)
    from .api import message_json
    from .models import User

    return render_template(
        "transcript.html", session=session, klass=klass, student=db.session.get(User, session.student_id),
        messages=[message_json(m) for m in messages], subjects=get_curriculum().subjects,
    )  # fmt: skip


@bp.get("/admin/audit")
@login_required
def audit():
    """Who read whose transcripts, newest first (admins only: the admin guard covers /admin/)."""
    try:
        page = max(1, min(100_000, int(request.args.get("page", 1))))
    except ValueError:
        page = 1
    per_page = 100
    rows = classes.audit_log(limit=per_page + 1, offset=(page - 1) * per_page)
    return render_template("audit.html", rows=rows[:per_page], page=page, more=len(rows) > per_page)


@bp.app_context_processor
def _review_notice():
    """``review_notice(user)``: the teachers who can read this student's sessions (for the notice
    on the student's pages); empty for anyone else. Asked only by the pages that show it."""

    def review_notice(user=None) -> list[str]:
        user = user if user is not None else current_user
        if not getattr(user, "is_authenticated", False) or getattr(user, "role", None) != "student":
            return []
        return classes.teachers_of(user.id)

    return {"review_notice": review_notice}
