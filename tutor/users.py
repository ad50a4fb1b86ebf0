"""Creating and checking accounts."""

from __future__ import annotations

import re
import secrets
from functools import cache

from sqlalchemy import func, select
from werkzeug.security import check_password_hash, generate_password_hash

from foundation.cooperative import offload
from foundation.extensions import db

from .models import USER_ROLES, User

MAX_EMAIL_LENGTH = 320  # the users.email column (RFC 5321's limit)
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
MIN_PASSWORD_LENGTH = 8


class UserError(ValueError):
    """Bad input for an account; the message is safe to show to the person who typed it."""


def normalize_email(email: str) -> str:
    return email.strip().lower()


MAX_PASSWORD_LENGTH = 256


@cache
def _common_passwords() -> frozenset[str]:
    """The 30,000 most common passwords of real leaks (zxcvbn's list, MIT), lower-cased."""
    from zxcvbn.frequency_lists import FREQUENCY_LISTS

    return frozenset(p.lower() for p in FREQUENCY_LISTS["passwords"] if len(p) >= MIN_PASSWORD_LENGTH)


def password_problem(password: str, email: str = "") -> str | None:
    """Why ``password`` may not be used, or None. NIST SP 800-63B: a length range and a
    blocklist (common passwords, one character repeated, the account's own name), no
    composition rules; any characters, spaces included, are allowed."""
    if len(password) < MIN_PASSWORD_LENGTH:
        return f"the password must have at least {MIN_PASSWORD_LENGTH} characters"
    if len(password) > MAX_PASSWORD_LENGTH:
        return f"the password can have at most {MAX_PASSWORD_LENGTH} characters"
    folded = password.strip().lower()
    local = email.split("@")[0].lower()
    if len(set(folded)) <= 1 or folded in _common_passwords() or (len(local) >= 4 and local in folded):
        return "that password is too easy to guess (a common password, or your e-mail); choose another"
    return None


def hash_password(password: str) -> str:
    # werkzeug's default is scrypt, a memory-hard KDF: tens of milliseconds of CPU, run off the
    # web process's event loop so that other requests go on meanwhile.
    return offload(generate_password_hash, password)


def verify_password(user: User, password: str) -> bool:
    return bool(user.password_hash) and offload(check_password_hash, user.password_hash, password)


@cache
def _dummy_hash() -> str:
    """A valid scrypt hash of a random password: unknown e-mails are checked against it so
    that a login takes as long whether or not the account exists."""
    return hash_password(secrets.token_urlsafe(16))


def authenticate(email: str, password: str) -> User | None:
    """The user with this e-mail and password, or None.

    The database connection goes back to the pool before the password is hashed (a login
    holds none during the slow part), and the user comes back detached with its columns
    loaded, ready for ``login_user``.
    """
    user = find_user_by_email(email)
    if user is not None:
        db.session.expunge(user)
    db.session.rollback()  # ends the read-only transaction: the connection returns to the pool
    stored = user.password_hash if user is not None and user.password_hash else _dummy_hash()
    ok = offload(check_password_hash, stored, password)
    return user if ok and user is not None and user.password_hash else None


def find_user_by_email(email: str) -> User | None:
    return db.session.scalar(select(User).where(func.lower(User.email) == normalize_email(email)))


def create_user(
    email: str,
    password: str,
    *,
    role: str = "student",
    display_name: str | None = None,
    grade_level: int | None = None,
) -> User:
    """Validate and add a user to the session (the caller commits)."""
    email = normalize_email(email)
    if len(email) > MAX_EMAIL_LENGTH:
        raise UserError(f"an e-mail address has at most {MAX_EMAIL_LENGTH} characters")
    if not EMAIL_RE.match(email):
        raise UserError(f"'{email}' is not an e-mail address")
    if role not in USER_ROLES:
        raise UserError(f"role must be one of {', '.join(USER_ROLES)}")
    problem = password_problem(password, email)
    if problem:
        raise UserError(problem)
    if grade_level is not None and not 1 <= grade_level <= 13:
        raise UserError("the grade level must be between 1 and 13")
    password_hash = hash_password(password)  # before any query of ours: no connection held meanwhile
    if find_user_by_email(email) is not None:
        raise UserError(f"a user with the e-mail {email} already exists")
    user = User(
        email=email,
        password_hash=password_hash,
        role=role,
        display_name=(display_name or email.split("@")[0]).strip()[:120],
        grade_level=grade_level,
    )
    db.session.add(user)
    return user


def delete_user(user: User) -> dict[str, int]:
    """Delete an account and all its tutoring data (sessions, messages, topics, metrics:
    the foreign keys cascade), and the transient copies of its replies in Redis."""
    from sqlalchemy import text

    from foundation.extensions import redis_ext

    reply_ids = (
        db.session.execute(
            text(
                "SELECT m.id FROM messages m JOIN sessions s ON s.id = m.session_id WHERE s.student_id = :u AND m.role = 'tutor'"
            ),
            {"u": user.id},
        )
        .scalars()
        .all()
    )
    sessions = db.session.execute(
        text("SELECT count(*) FROM sessions WHERE student_id = :u"), {"u": user.id}
    ).scalar_one()
    email, user_id = user.email, user.id
    db.session.delete(user)
    db.session.commit()
    try:
        _forget_in_redis(redis_ext.conn, email, user_id, reply_ids)
    except Exception:  # noqa: BLE001 - streams, jobs and counters all expire on their own
        pass
    return {"sessions": sessions, "replies": len(reply_ids)}


def _forget_in_redis(redis, email: str, user_id: int, reply_ids: list[int]) -> None:  # type: ignore[no-untyped-def]
    """Reply streams, reply jobs (with their arguments and results) and the account's rate
    counters: nothing of a deleted user stays behind in Redis."""
    from rq.exceptions import NoSuchJobError
    from rq.job import Job

    from foundation.ratelimit import forget

    from . import streams
    from .replies import reply_job_id
    from .throttle import forget_account

    keys = [k for rid in reply_ids for k in (streams.stream_key(rid), streams.owner_key(rid))]
    for start in range(0, len(keys), 500):
        redis.delete(*keys[start : start + 500])
    for rid in reply_ids:
        try:
            Job.fetch(reply_job_id(rid), connection=redis).delete()  # its hash, queues and registries
        except NoSuchJobError:
            pass
    forget_account(email)
    forget(redis, f"msg:{user_id}")
    forget(redis, f"stream-open:{user_id}")
