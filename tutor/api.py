"""The JSON API under ``/api/v1`` (the pages use it too). Described in ``openapi.py``."""

from __future__ import annotations

import hashlib
import re
import time
import uuid
from typing import Any

from flask import Blueprint, Response, current_app, g, jsonify, request, session, url_for
from flask_login import current_user, login_user
from redis.exceptions import RedisError
from sqlalchemy import func, select, text
from werkzeug.exceptions import HTTPException

from foundation.errors import json_error
from foundation.extensions import db, redis_ext
from foundation.queue import enqueue

from . import streams
from .auth import csrf_ok, csrf_token, log_out
from .curriculum import get_curriculum, match_topics, subjects_payload
from .mastery import progress
from .models import Message, SessionTopic, TutoringSession
from .quiz import QuizError, mark_quiz, start_quiz
from .relay import relay_for
from .rendering import render_markdown
from .replies import enqueue_reply
from .throttle import limit_wait, login_throttled, record_failed_login, registration_wait
from .users import UserError, authenticate, create_user

bp = Blueprint("api", __name__, url_prefix="/api/v1")

STREAM_KEEPALIVE_S = 15  # a comment line this often: proxies keep the connection, dead clients are noticed
STREAM_LEASE_S = 3 * STREAM_KEEPALIVE_S  # a stream's slot is renewed at each keep-alive
CSRF_EXEMPT = {"api.login", "api.register"}
SSE_MAX_SECONDS = 600  # a stream connection is recycled after this; the client resumes


class ApiError(Exception):
    def __init__(self, status: int, error: str, detail: str = "", **extra: Any) -> None:
        super().__init__(error)
        self.status, self.error, self.detail, self.extra = status, error, detail, extra


@bp.errorhandler(ApiError)
def _api_error(exc: ApiError):
    response = json_error(exc.status, exc.error, exc.detail, **exc.extra)
    if exc.status == 429 and "retry_after" in exc.extra:
        response.headers["Retry-After"] = str(exc.extra["retry_after"])
    return response


@bp.errorhandler(HTTPException)
def _http_error(exc: HTTPException):
    return json_error(exc.code or 500, exc.name.lower().replace(" ", "_"), exc.description or "")


@bp.before_request
def _throttle_stream_opens():
    """Opening a reply stream is counted per student before anything else is done for it.

    A finished reply's stream answers at once, so a client in a loop could open hundreds a
    second; past ``STREAM_OPEN_RATE_LIMIT`` it gets a 429 that costs a signed-cookie check and
    one Redis round trip, no database work, so the rest of the site keeps its pace.
    """
    if request.endpoint != "api.reply_stream":
        return None
    who = session.get("_user_id")
    if who is None:
        bearer = request.headers.get("Authorization", "")
        who = "b:" + hashlib.sha256(bearer.encode()).hexdigest()[:32] if bearer else f"a:{request.remote_addr}"
    wait = limit_wait(f"stream-open:{who}", "STREAM_OPEN_RATE_LIMIT")
    if wait:
        raise ApiError(
            429, "stream_rate_limited", f"Too many reply streams opened; try again in {wait} s.", retry_after=wait
        )
    return None


@bp.before_request
def _guard():
    # Only calls the session cookie authenticates need the token; logging in does not,
    # and a JSON body cannot be sent cross-site without a CORS preflight anyway.
    if request.endpoint in CSRF_EXEMPT or not current_user.is_authenticated:
        return
    if not csrf_ok():
        raise ApiError(
            403, "csrf_failed", f"Send the CSRF token from the login response in the {'X-CSRF-Token'} header."
        )


# ----------------------------------------------------------------------------- helpers

MAX_PAGE = 1_000_000
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def clean_text(value: Any, depth: int = 0) -> bool:
    """False if any string in ``value`` (keys included) holds a NUL or a lone surrogate, which
    PostgreSQL cannot store (the request would end in a 500)."""
    if isinstance(value, str):
        return _UNSTORABLE.search(value) is None
    if depth > 50:
        return True
    if isinstance(value, dict):
        return all(clean_text(k, depth + 1) and clean_text(v, depth + 1) for k, v in value.items())
    if isinstance(value, list):
        return all(clean_text(v, depth + 1) for v in value)
    return True


def body(*required: str) -> dict[str, Any]:
    try:
        data = request.get_json(silent=True)
    except RecursionError:  # nested thousands deep: json gives up before our checks would
        raise ApiError(400, "bad_request", "The JSON body is nested too deeply.") from None
    if not isinstance(data, dict):
        raise ApiError(400, "bad_request", "The body must be a JSON object (Content-Type: application/json).")
    if not clean_text(data):
        raise ApiError(400, "bad_request", "Text must not contain NUL characters or invalid Unicode (lone surrogates).")
    missing = [name for name in required if name not in data]
    if missing:
        raise ApiError(400, "bad_request", f"Missing field(s): {', '.join(missing)}.")
    return data


def require_student():
    if not current_user.is_authenticated:
        detail = g.get("bearer_error") or "Log in first (POST /api/v1/auth/login)."
        raise ApiError(401, "unauthorized", detail)
    if current_user.role != "student":
        raise ApiError(403, "forbidden", "Only students have tutoring sessions.")
    return current_user


def own_session(session_id: str) -> TutoringSession:
    user = require_student()
    try:
        sid = uuid.UUID(session_id)
    except ValueError:
        raise ApiError(404, "not_found", "No such session.") from None
    session = db.session.get(TutoringSession, sid)
    if session is None or session.student_id != user.id:
        raise ApiError(404, "not_found", "No such session.")
    return session


def own_reply(reply_id: int) -> Message:
    user = require_student()
    row = db.session.execute(
        select(Message, TutoringSession.student_id)
        .join(TutoringSession, TutoringSession.id == Message.session_id)
        .where(Message.id == reply_id)
    ).one_or_none()
    if row is None or row[1] != user.id or row[0].role != "tutor":
        raise ApiError(404, "not_found", "No such reply.")
    return row[0]


def iso(value) -> str | None:
    return value.isoformat() if value is not None else None


def session_json(s: TutoringSession, topics: list[str] | None = None) -> dict[str, Any]:
    data = {
        "id": str(s.id),
        "subject": s.subject,
        "status": s.status,
        "created_at": iso(s.created_at),
        "ended_at": iso(s.ended_at),
        "duration_seconds": s.duration_seconds,
        "satisfaction": s.satisfaction,
        "comment": s.rating_comment,
    }
    if topics is not None:
        data["topics"] = topics
    return data


def message_json(m: Message) -> dict[str, Any]:
    data = {"id": m.id, "role": m.role, "status": m.status, "content": m.content, "created_at": iso(m.created_at)}
    if m.role == "tutor":
        data["content_html"] = render_markdown(m.content) if m.status == "done" else ""
        data["error"] = m.error if m.status == "failed" else None
        data["feedback"] = FEEDBACK_NAMES.get(m.feedback)
        data["stopped"] = m.stopped
    return data


FEEDBACK_NAMES = {1: "up", -1: "down"}
FEEDBACK_VALUES = {"up": 1, "down": -1, None: None}


def stream_url(reply_id: int) -> str:
    return url_for("api.reply_stream", reply_id=reply_id)


# ----------------------------------------------------------------------------- auth


@bp.post("/auth/login")
def login():
    data = body("email", "password")
    email, password = data["email"], data["password"]
    if not isinstance(email, str) or not isinstance(password, str):
        raise ApiError(400, "bad_request", "email and password must be strings.")
    wait = login_throttled(email)
    if wait:
        raise ApiError(429, "too_many_attempts", f"Too many failed logins; try again in {wait} s.", retry_after=wait)
    user = authenticate(email, password)
    if user is None:
        record_failed_login(email)
        raise ApiError(401, "invalid_credentials", "Wrong e-mail or password.")
    login_user(user)
    return jsonify(user=_user_json(user), csrf_token=csrf_token())


@bp.post("/auth/register")
def register():
    data = body("email", "password")
    wait = registration_wait()
    if wait:
        raise ApiError(429, "rate_limited", f"Too many registrations from your network; try again in {wait} s.",
                       retry_after=wait)  # fmt: skip
    try:
        grade = data.get("grade_level")
        user = create_user(
            str(data["email"]),
            str(data["password"]),
            role="student",
            display_name=str(data.get("display_name") or "") or None,
            grade_level=int(grade) if grade not in (None, "") else None,
        )
        db.session.commit()
    except (UserError, ValueError, TypeError) as exc:
        db.session.rollback()
        raise ApiError(400, "bad_request", str(exc)) from None
    login_user(user)
    return jsonify(user=_user_json(user), csrf_token=csrf_token()), 201


@bp.post("/auth/logout")
def logout():
    log_out()
    return jsonify(status="logged_out")


def _user_json(user) -> dict[str, Any]:
    return {"id": user.id, "role": user.role, "display_name": user.display_name}


# ----------------------------------------------------------------------------- curriculum and sessions


@bp.get("/subjects")
def subjects():
    return jsonify(subjects_payload())


@bp.post("/sessions")
def create_session():
    user = require_student()
    data = body("subject")
    curriculum = get_curriculum()
    subject = curriculum.subjects.get(data["subject"]) if isinstance(data["subject"], str) else None
    if subject is None:
        raise ApiError(400, "unknown_subject", f"Choose one of: {', '.join(sorted(curriculum.subjects))}.",
                       subjects=sorted(curriculum.subjects))  # fmt: skip
    topic = data.get("topic")
    if topic is not None and (not isinstance(topic, str) or subject.topic(SessionTopic.clean(topic)) is None):
        raise ApiError(
            400, "unknown_topic", f"{subject.name} has the topics: {', '.join(t.id for t in subject.topics)}."
        )
    session = TutoringSession(id=uuid.uuid4(), student_id=user.id, subject=subject.id, status="active")
    db.session.add(session)
    if topic:
        db.session.add(SessionTopic(session_id=session.id, topic=SessionTopic.clean(topic)))
    db.session.commit()
    return jsonify(
        id=str(session.id), subject=session.subject, status=session.status, created_at=iso(session.created_at)
    ), 201


@bp.get("/sessions")
def list_sessions():
    user = require_student()
    try:
        page = max(1, int(request.args.get("page", 1)))
        if page > MAX_PAGE:
            raise ValueError("page too large")
        per_page = min(100, max(1, int(request.args.get("per_page", 20))))
    except ValueError:
        raise ApiError(
            400, "bad_request", f"page and per_page must be whole numbers (page at most {MAX_PAGE:,})."
        ) from None
    total = db.session.scalar(select(func.count()).where(TutoringSession.student_id == user.id))
    rows = db.session.scalars(
        select(TutoringSession)
        .where(TutoringSession.student_id == user.id)
        .order_by(TutoringSession.created_at.desc(), TutoringSession.id)
        .limit(per_page)
        .offset((page - 1) * per_page)
    ).all()
    topics = _topics_of([s.id for s in rows])
    return jsonify(
        items=[session_json(s, topics.get(s.id, [])) for s in rows], page=page, per_page=per_page, total=total
    )


def _topics_of(ids: list[uuid.UUID]) -> dict[uuid.UUID, list[str]]:
    out: dict[uuid.UUID, list[str]] = {}
    if ids:
        for sid, topic in db.session.execute(
            select(SessionTopic.session_id, SessionTopic.topic)
            .where(SessionTopic.session_id.in_(ids))
            .order_by(SessionTopic.topic)
        ):
            out.setdefault(sid, []).append(topic)
    return out


@bp.get("/sessions/<session_id>")
def get_session(session_id: str):
    session = own_session(session_id)
    messages = db.session.scalars(select(Message).where(Message.session_id == session.id).order_by(Message.id)).all()
    data = session_json(session, _topics_of([session.id]).get(session.id, []))
    data["messages"] = [message_json(m) for m in messages]
    return jsonify(data)


@bp.post("/sessions/<session_id>/messages")
def post_message(session_id: str):
    session = own_session(session_id)
    data = body("content")
    content = data["content"]
    if not isinstance(content, str) or not content.strip():
        raise ApiError(400, "bad_request", "content must be a non-empty string.")
    limit = current_app.config["MESSAGE_MAX_CHARS"]
    if len(content) > limit:
        raise ApiError(422, "content_too_long", f"A message can have at most {limit} characters.", max_chars=limit)
    if session.status != "active":
        raise ApiError(409, "session_ended", "This session has ended; start a new one.")
    _rate_limit(session.student_id)

    student_msg = Message(session_id=session.id, role="student", content=content.strip(), status="done")
    reply = Message(session_id=session.id, role="tutor", content="", status="queued", attempts=0)
    db.session.add_all([student_msg, reply])
    for topic in match_topics(content, session.subject):
        db.session.execute(
            text("INSERT INTO session_topics (session_id, topic) VALUES (:s, :t) ON CONFLICT DO NOTHING"),
            {"s": session.id, "t": SessionTopic.clean(topic)},
        )
    db.session.flush()
    message_id, reply_id = student_msg.id, reply.id  # read now: a commit expires them (two more queries)
    db.session.commit()  # the message and its queued reply are safe before any Redis work

    try:
        enqueue_reply(reply_id)
    except Exception:  # noqa: BLE001 - Redis down: the outbox sweep enqueues it later
        current_app.logger.exception("could not enqueue reply %s; it stays queued for the sweep", reply_id)
    return jsonify(message_id=message_id, reply_id=reply_id, status="queued", stream_url=stream_url(reply_id)), 202


def _rate_limit(student_id: int) -> None:
    wait = limit_wait(f"msg:{student_id}", "MESSAGE_RATE_LIMIT")
    if wait:
        raise ApiError(429, "rate_limited", f"Too many messages; try again in {wait} s.", retry_after=wait)


@bp.post("/sessions/<session_id>/end")
def end_session(session_id: str):
    session = own_session(session_id)
    if session.status == "active":
        db.session.execute(
            text(
                """
                UPDATE sessions SET status = 'ended', ended_at = now(),
                    duration_seconds = GREATEST(0, EXTRACT(EPOCH FROM now() - created_at))::int
                WHERE id = :id AND status = 'active'
                """
            ),
            {"id": session.id},
        )
        db.session.commit()
        db.session.refresh(session)
        _enqueue_metrics(session.id)
    return jsonify(id=str(session.id), status=session.status, duration_seconds=session.duration_seconds)


def _enqueue_metrics(session_id: uuid.UUID) -> None:
    try:
        enqueue("jobs.analytics.compute_session_metrics", str(session_id), job_id=f"metrics-{session_id}")
    except Exception:  # noqa: BLE001 - metrics are recomputed by the nightly rollup anyway
        current_app.logger.warning("could not enqueue metrics for session %s", session_id)


@bp.post("/sessions/<session_id>/rating")
def rate_session(session_id: str):
    session = own_session(session_id)
    data = body("rating")
    rating, comment = data["rating"], data.get("comment")
    if isinstance(rating, bool) or not isinstance(rating, int) or not 1 <= rating <= 5:
        raise ApiError(400, "bad_request", "rating must be a whole number from 1 to 5.")
    if comment is not None and (not isinstance(comment, str) or len(comment) > 2000):
        raise ApiError(400, "bad_request", "comment must be a string of at most 2000 characters.")
    session.satisfaction = rating
    session.rating_comment = comment.strip() if comment else None
    db.session.commit()
    if session.status != "active":
        _enqueue_metrics(session.id)
    return jsonify(id=str(session.id), satisfaction=session.satisfaction, comment=session.rating_comment)


# ----------------------------------------------------------------------------- progress


@bp.get("/progress")
def get_progress():
    """Mastery per topic (BKT over graded attempts) for the topics the student has attempted."""
    user = require_student()
    return jsonify(topics=progress(user.id))


@bp.post("/quiz")
def create_quiz():
    """ "Quiz me" on a topic: up to five questions, and the token to send the answers with."""
    user = require_student()
    data = body("subject", "topic")
    try:
        quiz = start_quiz(user.id, data["subject"], data["topic"])
    except QuizError as exc:
        raise ApiError(exc.status, exc.code, str(exc)) from None
    return jsonify(quiz.json()), 201


@bp.post("/quiz/answers")
def answer_quiz():
    """Grade a quiz's answers; each becomes an attempt and moves the topic's mastery."""
    user = require_student()
    data = body("quiz", "answers")
    try:
        return jsonify(mark_quiz(user.id, data["quiz"], data["answers"]))
    except QuizError as exc:
        raise ApiError(exc.status, exc.code, str(exc)) from None


# ----------------------------------------------------------------------------- replies


@bp.get("/messages/<int:reply_id>")
def get_reply(reply_id: int):
    reply = own_reply(reply_id)
    return jsonify(
        id=reply.id,
        status=reply.status,
        content=reply.content,
        content_html=render_markdown(reply.content) if reply.status == "done" else "",
        error=reply.error if reply.status == "failed" else None,
        attempts=reply.attempts,
        feedback=FEEDBACK_NAMES.get(reply.feedback),
        stopped=reply.stopped,
    )


@bp.post("/messages/<int:reply_id>/stop")
def stop_reply(reply_id: int):
    """The Stop button: the reply being written ends where it is and keeps what it has.

    A reply still queued ends here, empty; one being written is stopped by its worker, which
    looks for the request every ``jobs.ai.STOP_CHECK_S`` and saves the text so far (either way
    ``stopped`` is true and the stream ends with ``done``). A finished reply is left as it is.
    """
    reply = own_reply(reply_id)
    if reply.status in ("done", "failed"):
        return jsonify(id=reply.id, status=reply.status, stopped=reply.stopped)
    ended = db.session.execute(
        text(
            "UPDATE messages SET status = 'done', stopped = true, completed_at = now() "
            "WHERE id = :id AND status = 'queued' RETURNING content"
        ),
        {"id": reply.id},
    ).scalar_one_or_none()
    db.session.commit()
    try:
        streams.request_stop(redis_ext.conn, reply.id)
        if ended is not None:
            streams.append(redis_ext.conn, reply.id, streams.DONE, {"id": reply.id, "content": ended})
    except RedisError:
        raise ApiError(503, "unavailable", "Could not reach the tutor to stop it; try again.") from None
    return jsonify(id=reply.id, status="done" if ended is not None else "stopping", stopped=True), 202


@bp.post("/messages/<int:reply_id>/feedback")
def reply_feedback(reply_id: int):
    """Thumbs up or down on a finished tutor reply (``{"feedback": "up" | "down" | null}``)."""
    reply = own_reply(reply_id)
    data = body("feedback")
    if not (data["feedback"] is None or isinstance(data["feedback"], str)) or data["feedback"] not in FEEDBACK_VALUES:
        raise ApiError(400, "bad_request", 'feedback must be "up", "down" or null.')
    if reply.status != "done":
        raise ApiError(409, "not_done", "Only a finished reply can be rated.")
    reply.feedback = FEEDBACK_VALUES[data["feedback"]]
    db.session.commit()
    return jsonify(id=reply.id, feedback=FEEDBACK_NAMES.get(reply.feedback))


@bp.post("/messages/<int:reply_id>/retry")
def retry_reply(reply_id: int):
    reply = own_reply(reply_id)
    if reply.status != "failed":
        raise ApiError(409, "not_failed", f"Only a failed reply can be retried; this one is {reply.status}.")
    reply.status, reply.error = "queued", None
    db.session.commit()
    try:
        redis_ext.conn.delete(streams.stream_key(reply.id))  # the old stream ends in 'error'
        enqueue_reply(reply.id)
    except Exception:  # noqa: BLE001
        current_app.logger.exception("could not enqueue retry of reply %s; the sweep will", reply.id)
    return jsonify(id=reply.id, status="queued", stream_url=stream_url(reply.id)), 202


@bp.get("/messages/<int:reply_id>/stream")
def reply_stream(reply_id: int):
    """The reply as server-sent events, resumable with ``Last-Event-ID``.

    A finished reply answers at once and closes: the events after ``Last-Event-ID`` when its
    stream still holds them, else the whole reply from the database (whatever id was sent).
    An unfinished one streams until its final event; an id that is malformed or past the end
    of the stream counts as "from the start". While it waits, a stream holds no thread, no
    database connection and no Redis connection (``tutor.relay``), and it takes one of the
    student's ``STREAMS_PER_STUDENT`` slots (more get 429).
    """
    reply = own_reply(reply_id)
    student_id = current_user.id
    after = request.headers.get("Last-Event-ID") or request.args.get("last_event_id") or "0-0"
    if streams.parse_id(after) is None:
        after = "0-0"
    finished = _final_events(reply)
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    db.session.remove()  # do not hold a database connection for the life of the stream
    redis = redis_ext.conn
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    try:
        newest = streams.last_id(redis, reply_id)
        if newest is None or streams.parse_id(after) > streams.parse_id(newest):
            after = "0-0"  # nothing to resume from (or an id from the future): from the start
        if finished is not None:
            rest = streams.read_all(redis, reply_id, after) if newest is not None else []
            if rest and rest[-1][1] in streams.FINAL_EVENTS:
                body = [streams.format_sse(event, data, entry_id) for entry_id, event, data in rest]
            else:
                body = finished
            return Response(body, mimetype="text/event-stream", headers=headers)
        token = uuid.uuid4().hex
        limit = current_app.config["STREAMS_PER_STUDENT"]
        if not streams.take_lease(redis, student_id, token, limit, STREAM_LEASE_S):
            raise ApiError(
                429,
                "too_many_streams",
                f"You already have {limit} reply streams open; close one (or wait a minute) and try again.",
                retry_after=STREAM_KEEPALIVE_S,
            )
    except RedisError:
        current_app.logger.warning("reply stream %s: Redis unavailable", reply_id)
        response = json_error(503, "unavailable", "Live replies are unavailable for a moment; try again shortly.")
        response.headers["Retry-After"] = "5"
        return response
    relay = relay_for(current_app.config["REDIS_URL"])

    def generate():
        last = after
        started = time.monotonic()
        try:
            yield "retry: 2000\n\n"
            with relay.watch(reply_id) as woken:
                while time.monotonic() - started < SSE_MAX_SECONDS:
                    woken.clear()  # before reading: a chunk published after the read wakes us
                    got = False
                    for entry_id, event, data in streams.read(redis, reply_id, last):
                        got = True
                        last = entry_id
                        yield streams.format_sse(event, data, entry_id)
                        if event in streams.FINAL_EVENTS:
                            return
                    if got or woken.wait(STREAM_KEEPALIVE_S):
                        continue
                    yield ": keep-alive\n\n"
                    streams.renew_lease(redis, student_id, token, STREAM_LEASE_S)
                    with app.app_context():  # the reply may have ended while its stream expired
                        current = db.session.get(Message, reply_id)
                        final = _final_events(current) if current is not None else None
                        db.session.remove()
                    if final is not None and not streams.has_events(redis, reply_id):
                        yield from final
                        return
        except RedisError:
            app.logger.warning("reply stream %s: lost Redis; the browser reconnects", reply_id)

    def release() -> None:  # the server closes every response, even one never iterated
        try:
            streams.drop_lease(redis, student_id, token)
        except RedisError:
            pass  # the lease runs out by itself

    response = Response(generate(), mimetype="text/event-stream", headers=headers)
    response.call_on_close(release)
    return response


def _final_events(reply: Message) -> list[str] | None:
    if reply.status == "done":
        return [
            streams.format_sse(streams.TOKEN, {"text": reply.content}, "final-1"),
            streams.format_sse(streams.DONE, {"id": reply.id, "content": reply.content}, "final-2"),
        ]
    if reply.status == "failed":
        return [streams.format_sse(streams.ERROR, {"error": reply.error or "The tutor could not answer."}, "final-1")]
    return None
