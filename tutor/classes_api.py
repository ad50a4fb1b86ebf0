"""``/api/v1/classes``: classes, rosters and conversation review (see ``tutor.classes``).

Routes on the API blueprint, described in ``openapi.py`` like the others.
"""

from __future__ import annotations

from flask import g, jsonify
from flask_login import current_user

from foundation.extensions import db

from . import classes
from .api import ApiError, body, bp, message_json, session_json
from .classes import ClassError


def _user():
    if not current_user.is_authenticated:
        raise ApiError(401, "unauthorized", g.get("bearer_error") or "Log in first (POST /api/v1/auth/login).")
    return current_user


def _teacher_class(class_id: int):
    try:
        return classes.class_for_teacher(_user(), class_id)
    except ClassError as exc:
        raise ApiError(exc.status, exc.code, str(exc)) from None


def _fail(exc: ClassError) -> ApiError:
    db.session.rollback()
    extra = {"retry_after": 60} if exc.status == 429 else {}
    return ApiError(exc.status, exc.code, str(exc), **extra)


@bp.get("/classes")
def list_classes():
    user = _user()
    found = classes.visible_classes(user)
    counts = classes.member_counts([c.id for c in found]) if classes.is_teacher(user) else {}
    return jsonify(items=[classes.class_json(c, user, counts.get(c.id, 0)) for c in found])


@bp.post("/classes")
def create_class():
    user = _user()
    if not classes.is_teacher(user):
        raise ApiError(403, "forbidden", "Only teachers and admins create classes.")
    data = body("name")
    try:
        klass = classes.create_class(user, data["name"], data.get("subject"))
        db.session.commit()
    except ClassError as exc:
        raise _fail(exc) from None
    return jsonify(classes.class_json(klass, user, 0)), 201


@bp.post("/classes/join")
def join_class():
    user = _user()
    data = body("join_code")
    try:
        klass = classes.join_by_code(user, data["join_code"])
        db.session.commit()
    except ClassError as exc:
        raise _fail(exc) from None
    return jsonify(classes.class_json(klass, user))


@bp.post("/classes/<int:class_id>/join_code")
def regenerate_join_code(class_id: int):
    klass = _teacher_class(class_id)
    classes.regenerate_code(klass)
    db.session.commit()
    return jsonify(classes.class_json(klass, current_user))


@bp.get("/classes/<int:class_id>/students")
def class_students(class_id: int):
    return jsonify(classes.roster(_teacher_class(class_id)))


@bp.post("/classes/<int:class_id>/students")
def import_class_students(class_id: int):
    klass = _teacher_class(class_id)
    data = body("csv")
    if not isinstance(data["csv"], str):
        raise ApiError(400, "bad_request", "csv must be the file's text: one student per line, as e-mail,name,grade.")
    result = classes.import_students(klass, data["csv"])
    if result.errors:
        db.session.rollback()
        raise ApiError(422, "bad_rows", "Nothing was imported: fix these rows and send the file again.",
                       rows=result.errors)  # fmt: skip
    return jsonify(result.json())


@bp.delete("/classes/<int:class_id>/students/<int:student_id>")
def remove_class_student(class_id: int, student_id: int):
    klass = _teacher_class(class_id)
    try:
        classes.remove_member(klass, student_id)
    except ClassError as exc:
        raise _fail(exc) from None
    db.session.commit()
    return jsonify(status="removed", class_id=klass.id, student_id=student_id)


@bp.get("/classes/<int:class_id>/students/<int:student_id>/sessions")
def class_student_sessions(class_id: int, student_id: int):
    klass = _teacher_class(class_id)
    try:
        student = classes.member_of(klass, student_id)
    except ClassError as exc:
        raise _fail(exc) from None
    from .api import _topics_of

    rows = classes.student_sessions(student.id)
    topics = _topics_of([s.id for s in rows])
    return jsonify(items=[session_json(s, topics.get(s.id, [])) for s in rows])


@bp.get("/classes/<int:class_id>/students/<int:student_id>/sessions/<session_id>/messages")
def class_student_transcript(class_id: int, student_id: int, session_id: str):
    """The transcript; the read is recorded in the audit log before it is sent."""
    klass = _teacher_class(class_id)
    try:
        student = classes.member_of(klass, student_id)
        session, _ = classes.reviewable_session(current_user, session_id)
    except ClassError as exc:
        raise _fail(exc) from None
    if session.student_id != student.id:
        raise ApiError(404, "not_found", "No such session.")
    messages = classes.transcript(current_user, session, via="api", class_id=klass.id)
    return jsonify(session=session_json(session), items=[message_json(m) for m in messages])
