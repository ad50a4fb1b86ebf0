"""Classes, teachers and conversation review.

A teacher owns classes; students join one with its join code, are imported by the teacher from
a CSV file, or are placed in one by an embed token's ``class`` claim. Who may see what is
decided here, once, for the API, the pages and the dashboard:

- a teacher sees the classes they own and the students in them; another teacher's class is
  "not found" (its existence is not disclosed);
- an admin sees every class and can do everything a teacher can;
- a student sees the classes they joined (name, subject, teacher), never a roster.

Every transcript a teacher or admin opens is recorded in ``transcript_reads`` (who, whose,
which session, when, through the page or the API) before it is shown.
"""

from __future__ import annotations

import csv
import io
import re
import secrets
import uuid
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, func, select, text
from sqlalchemy.dialects.postgresql import insert

from foundation.extensions import db

from .models import ClassMember, Message, SchoolClass, TranscriptRead, TutoringSession, User

#: Join-code characters: capital letters and digits without the look-alikes 0/O, 1/I/L.
CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
CODE_LENGTH = 6  # 31**6: about 890 million codes
MAX_NAME = 120
MAX_IMPORT_ROWS = 1000
#: Wrong join codes a student may try before waiting (guessing codes would find classes).
JOIN_ATTEMPTS = (10, 600)
#: Ratings from which a session is "worth a look" (1 or 2 of 5).
LOW_RATING = 2


class ClassError(ValueError):
    """A request about classes that cannot be done; ``status`` and ``code`` for the API."""

    def __init__(self, message: str, status: int = 400, code: str = "bad_request") -> None:
        super().__init__(message)
        self.status, self.code = status, code


def is_teacher(user: Any) -> bool:
    return bool(getattr(user, "is_authenticated", False) and user.role in ("teacher", "admin"))


# ------------------------------------------------------------------------------------ join codes


def normalize_code(code: str) -> str:
    """A typed code as stored: upper case, spaces and dashes dropped (``abc-23k`` → ``ABC23K``)."""
    return re.sub(r"[\s\-_.]", "", str(code)).upper()


def new_join_code() -> str:
    """A fresh random code not used by another class."""
    for _ in range(20):
        code = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
        if db.session.scalar(select(SchoolClass.id).where(SchoolClass.join_code == code)) is None:
            return code
    raise RuntimeError("could not find an unused join code")  # pragma: no cover - 890 million codes


def format_code(code: str) -> str:
    """How a code is shown: ``ABC-23K`` (easier to read out in a classroom)."""
    return f"{code[:3]}-{code[3:]}" if len(code) == CODE_LENGTH else code


# ------------------------------------------------------------------------------------ classes


def create_class(teacher: User, name: Any, subject: Any = None) -> SchoolClass:
    """Validate and add a class (the caller commits)."""
    if not isinstance(name, str) or not name.strip():
        raise ClassError("name must be a non-empty string.")
    if len(name.strip()) > MAX_NAME:
        raise ClassError(f"name can have at most {MAX_NAME} characters.")
    if subject not in (None, ""):
        from .curriculum import get_curriculum

        subjects = get_curriculum().subjects
        if not isinstance(subject, str) or subject not in subjects:
            raise ClassError(f"subject must be one of: {', '.join(sorted(subjects))} (or left out).",
                             code="unknown_subject")  # fmt: skip
    klass = SchoolClass(
        name=" ".join(name.split()), subject=subject or None, teacher_id=teacher.id, join_code=new_join_code()
    )
    db.session.add(klass)
    db.session.flush()
    return klass


def visible_classes(user: User) -> list[SchoolClass]:
    """A teacher's own classes, every class for an admin, the joined ones for a student."""
    query = select(SchoolClass).order_by(SchoolClass.name, SchoolClass.id)
    if user.role == "teacher":
        query = query.where(SchoolClass.teacher_id == user.id)
    elif user.role != "admin":
        query = query.join(ClassMember, ClassMember.class_id == SchoolClass.id).where(ClassMember.student_id == user.id)
    return list(db.session.scalars(query))


def class_for_teacher(user: User, class_id: Any) -> SchoolClass:
    """The class ``class_id`` if ``user`` teaches it (or is an admin); students get 403, other
    teachers 404 (as if it did not exist)."""
    if not is_teacher(user):
        raise ClassError("Only teachers and admins see class rosters.", 403, "forbidden")
    try:
        klass = db.session.get(SchoolClass, int(class_id))
    except (TypeError, ValueError, OverflowError):
        klass = None
    if klass is None or (user.role != "admin" and klass.teacher_id != user.id):
        raise ClassError("No such class.", 404, "not_found")
    return klass


def regenerate_code(klass: SchoolClass) -> str:
    """A new join code; the old one stops working at once (the caller commits)."""
    klass.join_code = new_join_code()
    return klass.join_code


def add_member(class_id: int, student_id: int) -> bool:
    """Put a student in a class; False if they were in it already (the caller commits)."""
    result = db.session.execute(
        insert(ClassMember).values(class_id=class_id, student_id=student_id).on_conflict_do_nothing()
    )
    return bool(result.rowcount)


def join_by_code(student: User, code: Any) -> SchoolClass:
    """The student joins the class with this code (joining twice is harmless; the caller commits)."""
    if student.role != "student":
        raise ClassError("Only students join classes.", 403, "forbidden")
    if not isinstance(code, str) or not normalize_code(code):
        raise ClassError("join_code must be the code your teacher gave you, e.g. ABC-23K.")
    wait = _join_throttled(student.id)
    if wait:
        raise ClassError(f"Too many wrong codes; try again in {wait} s.", 429, "rate_limited")
    klass = db.session.scalar(select(SchoolClass).where(SchoolClass.join_code == normalize_code(code)))
    if klass is None:
        _count_wrong_code(student.id)
        raise ClassError(
            "No class has this code. Check it with your teacher (codes have letters and digits; "
            "a regenerated code replaces the old one).",
            404,
            "not_found",
        )
    add_member(klass.id, student.id)
    return klass


def _join_throttled(student_id: int) -> int:
    from foundation.extensions import redis_ext
    from foundation.ratelimit import Limit, peek

    try:
        return peek(redis_ext.conn, f"join:{student_id}", Limit(*JOIN_ATTEMPTS))
    except Exception:  # noqa: BLE001 - Redis down: joining still works
        return 0


def _count_wrong_code(student_id: int) -> None:
    from foundation.extensions import redis_ext
    from foundation.ratelimit import Limit, hit

    try:
        hit(redis_ext.conn, f"join:{student_id}", Limit(*JOIN_ATTEMPTS))
    except Exception:  # noqa: BLE001
        pass


def join_for_embed(student: User, code: str | None) -> SchoolClass | None:
    """An embed token's ``class`` claim (a join code): the student is placed in that class.

    An unknown code places nobody and is logged (the host site should send the current code);
    the student's page still opens.
    """
    if not code or student.role != "student":
        return None
    klass = db.session.scalar(select(SchoolClass).where(SchoolClass.join_code == normalize_code(code)))
    if klass is None:
        from flask import current_app

        current_app.logger.warning("embed token names an unknown class code %r; the student joins no class", code)
        return None
    if add_member(klass.id, student.id):
        db.session.commit()
    return klass


def remove_member(klass: SchoolClass, student_id: Any) -> None:
    try:
        sid = int(student_id)
    except (TypeError, ValueError):
        sid = -1
    gone = db.session.execute(
        delete(ClassMember).where(ClassMember.class_id == klass.id, ClassMember.student_id == sid)
    ).rowcount
    if not gone:
        raise ClassError("This student is not in the class.", 404, "not_found")


def class_json(klass: SchoolClass, user: User, students: int | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {"id": klass.id, "name": klass.name, "subject": klass.subject}
    if is_teacher(user):
        data["join_code"] = format_code(klass.join_code)
        data["students"] = students if students is not None else member_count(klass.id)
    else:
        teacher = db.session.get(User, klass.teacher_id)
        data["teacher"] = teacher.display_name if teacher else ""
    return data


def member_count(class_id: int) -> int:
    return db.session.scalar(select(func.count()).where(ClassMember.class_id == class_id)) or 0


def member_counts(class_ids: list[int]) -> dict[int, int]:
    rows = db.session.execute(
        select(ClassMember.class_id, func.count())
        .where(ClassMember.class_id.in_(class_ids))
        .group_by(ClassMember.class_id)
    )
    return {cid: n for cid, n in rows}


# ------------------------------------------------------------------------------------ rosters


def roster(klass: SchoolClass) -> list[dict[str, Any]]:
    """The class's students: sessions, last active, mastery (mean P(known) over the topics they
    have been graded on, None before any graded answer) and topics mastered."""
    from .mastery import MASTERED

    rows = db.session.execute(
        text(
            """
            SELECT u.id, COALESCE(NULLIF(u.display_name, ''), u.email) AS name, u.email, u.grade_level,
                   (SELECT count(*) FROM sessions s WHERE s.student_id = u.id) AS sessions,
                   (SELECT max(s.created_at) FROM sessions s WHERE s.student_id = u.id) AS last_active,
                   (SELECT avg(m.p_known) FROM mastery m WHERE m.student_id = u.id) AS mastery,
                   (SELECT count(*) FROM mastery m WHERE m.student_id = u.id AND m.p_known >= :mastered)
                       AS topics_mastered
            FROM class_members c JOIN users u ON u.id = c.student_id
            WHERE c.class_id = :class_id
            ORDER BY lower(COALESCE(NULLIF(u.display_name, ''), u.email)), u.id
            """
        ),
        {"class_id": klass.id, "mastered": MASTERED},
    ).all()
    return [
        {
            "id": r.id,
            "display_name": r.name,
            "email": r.email,
            "grade_level": r.grade_level,
            "sessions": int(r.sessions),
            "last_active": r.last_active.isoformat() if r.last_active else None,
            "mastery": round(float(r.mastery), 3) if r.mastery is not None else None,
            "topics_mastered": int(r.topics_mastered),
        }
        for r in rows
    ]


def member_of(klass: SchoolClass, student_id: Any) -> User:
    """The student ``student_id`` of this class (404 otherwise)."""
    try:
        sid = int(student_id)
    except (TypeError, ValueError, OverflowError):
        sid = -1
    student = db.session.scalar(
        select(User)
        .join(ClassMember, ClassMember.student_id == User.id)
        .where(ClassMember.class_id == klass.id, User.id == sid)
    )
    if student is None:
        raise ClassError("No such student in this class.", 404, "not_found")
    return student


def student_sessions(student_id: int, limit: int = 200) -> list[TutoringSession]:
    return list(
        db.session.scalars(
            select(TutoringSession)
            .where(TutoringSession.student_id == student_id)
            .order_by(TutoringSession.created_at.desc())
            .limit(limit)
        )
    )


def teaches_student(user: User, student_id: int) -> SchoolClass | None:
    """A class of ``user`` (any class for an admin) that the student is in, else None."""
    query = (
        select(SchoolClass)
        .join(ClassMember, ClassMember.class_id == SchoolClass.id)
        .where(ClassMember.student_id == student_id)
        .order_by(SchoolClass.id)
    )
    if user.role != "admin":
        query = query.where(SchoolClass.teacher_id == user.id)
    return db.session.scalars(query.limit(1)).first()


def students_in_scope(user: Any, class_ids: list[int] | tuple[int, ...] = ()) -> tuple[int, ...] | None:
    """The student ids ``user`` may see in analytics, narrowed to ``class_ids`` when given.

    None means everyone (an admin with no class chosen). A teacher always gets a tuple, empty
    when they have no students; classes that are not theirs are ignored. Anyone else gets ().
    """
    role = getattr(user, "role", None) if getattr(user, "is_authenticated", False) else None
    if role not in ("teacher", "admin"):
        return ()
    if role == "admin" and not class_ids:
        return None
    query = select(ClassMember.student_id).join(SchoolClass, SchoolClass.id == ClassMember.class_id).distinct()
    if role == "teacher":
        query = query.where(SchoolClass.teacher_id == user.id)
    if class_ids:
        query = query.where(SchoolClass.id.in_([int(c) for c in class_ids]))
    return tuple(sorted(db.session.scalars(query)))


def students_of_classes(class_ids: list[int] | tuple[int, ...]) -> tuple[int, ...]:
    """The students of these classes, whoever teaches them (for callers with no viewer)."""
    rows = db.session.scalars(select(ClassMember.student_id).where(ClassMember.class_id.in_(list(class_ids))))
    return tuple(sorted(set(rows)))


# ------------------------------------------------------------------------------------ transcripts


def transcript(reader: User, session: TutoringSession, via: str, class_id: int | None = None) -> list[Message]:
    """A session's messages for a teacher or admin; the read is recorded first (same commit)."""
    student = db.session.get(User, session.student_id)
    db.session.add(
        TranscriptRead(
            reader_id=reader.id,
            reader_email=reader.email,
            student_id=session.student_id,
            student_email=student.email if student else "",
            session_id=session.id,
            class_id=class_id,
            via=via,
        )
    )
    db.session.commit()
    return list(db.session.scalars(select(Message).where(Message.session_id == session.id).order_by(Message.id)))


def reviewable_session(reader: User, session_id: Any) -> tuple[TutoringSession, SchoolClass | None]:
    """A session that ``reader`` may review (its student is in one of their classes; any session
    for an admin, with the class None when the student is in none), else 404."""
    try:
        sid = uuid.UUID(str(session_id))
    except ValueError:
        raise ClassError("No such session.", 404, "not_found") from None
    if not is_teacher(reader):
        raise ClassError("Only teachers and admins review conversations.", 403, "forbidden")
    session = db.session.get(TutoringSession, sid)
    klass = teaches_student(reader, session.student_id) if session is not None else None
    if session is None or (klass is None and reader.role != "admin"):
        raise ClassError("No such session.", 404, "not_found")
    return session, klass


def audit_log(limit: int = 200, offset: int = 0) -> list[TranscriptRead]:
    return list(
        db.session.scalars(
            select(TranscriptRead)
            .order_by(TranscriptRead.read_at.desc(), TranscriptRead.id.desc())
            .limit(limit)
            .offset(offset)
        )
    )


def teachers_of(student_id: int) -> list[str]:
    """The names of the teachers who can read this student's sessions (for the student's notice)."""
    rows = db.session.execute(
        select(User.display_name, User.email)
        .join(SchoolClass, SchoolClass.teacher_id == User.id)
        .join(ClassMember, ClassMember.class_id == SchoolClass.id)
        .where(ClassMember.student_id == student_id)
        .distinct()
    ).all()
    return sorted({name or email for name, email in rows})


# ------------------------------------------------------------------------------------ CSV import


@dataclass
class ImportResult:
    """What an import did, or why it did nothing (``errors``: line number and message)."""

    created: list[dict[str, Any]] = field(default_factory=list)  # new accounts, with a first password
    added: list[dict[str, Any]] = field(default_factory=list)  # existing students put in the class
    already: list[dict[str, Any]] = field(default_factory=list)  # in the class before
    errors: list[dict[str, Any]] = field(default_factory=list)

    def json(self) -> dict[str, Any]:
        return {"created": self.created, "added": self.added, "already_in_class": self.already, "errors": self.errors}


_HEADERS = {"email": "email", "e-mail": "email", "mail": "email", "name": "name", "display_name": "name",
            "grade": "grade", "grade_level": "grade"}  # fmt: skip


def parse_roster_csv(content: str) -> tuple[list[tuple[int, str, str, str]], list[dict[str, Any]]]:
    """Rows ``(line, email, name, grade)`` of a roster file, and the errors of unreadable lines.

    Columns: e-mail, name, grade (1-13 or empty), in that order, or in any order under a
    header row naming them (``email``/``e-mail``, ``name``, ``grade``). Commas or semicolons.
    """
    content = content.lstrip("\ufeff")
    if not content.strip():
        return [], [{"line": 0, "error": "The file is empty: one student per line, as e-mail,name,grade."}]
    try:
        dialect = csv.Sniffer().sniff(content[:2048], delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    rows = [
        (i, row) for i, row in enumerate(csv.reader(io.StringIO(content), dialect), 1) if any(c.strip() for c in row)
    ]
    order = ["email", "name", "grade"]
    if rows and "@" not in ",".join(rows[0][1]):
        header = [_HEADERS.get(c.strip().lower().replace(" ", "_")) for c in rows[0][1]]
        if "email" not in header:
            return [], [{"line": rows[0][0], "error": "The header row has no 'email' column."}]
        order = header  # type: ignore[assignment]
        rows = rows[1:]
    if len(rows) > MAX_IMPORT_ROWS:
        return [], [{"line": 0, "error": f"At most {MAX_IMPORT_ROWS} students per file."}]
    out, errors = [], []
    for line, row in rows:
        values = {key: row[i].strip() for i, key in enumerate(order) if key and i < len(row)}
        if len(row) > len(order) and any(c.strip() for c in row[len(order) :]):
            errors.append({"line": line, "error": f"More than {len(order)} columns (e-mail, name, grade)."})
            continue
        out.append((line, values.get("email", ""), values.get("name", ""), values.get("grade", "")))
    return out, errors


def import_students(klass: SchoolClass, content: str) -> ImportResult:
    """Add the students of a roster file to the class, all or nothing.

    Students with an account are added as they are; e-mails without one get a student account
    with the name and grade given and a random first password, returned once so the teacher
    can hand it out (the student changes it later). If any row is wrong nothing is imported
    and every wrong row is reported with its line number.
    """
    from .users import EMAIL_RE, MAX_EMAIL_LENGTH, create_user, normalize_email

    rows, errors = parse_roster_csv(content)
    result = ImportResult(errors=errors)
    seen: dict[str, int] = {}
    checked = []
    for line, email_raw, name, grade_raw in rows:
        email = normalize_email(email_raw)
        problem = None
        grade: int | None = None
        if not email:
            problem = "The e-mail is missing."
        elif len(email) > MAX_EMAIL_LENGTH or not EMAIL_RE.match(email):
            problem = f"'{email_raw}' is not an e-mail address."
        elif email in seen:
            problem = f"{email} is also on line {seen[email]}."
        elif len(name) > MAX_NAME:
            problem = f"The name has more than {MAX_NAME} characters."
        elif grade_raw:
            try:
                grade = int(grade_raw)
            except ValueError:
                grade = None
            if grade is None or not 1 <= grade <= 13:
                problem = f"The grade '{grade_raw}' is not a whole number from 1 to 13 (or empty)."
        if problem is None:
            existing = db.session.scalar(select(User).where(func.lower(User.email) == email))
            if existing is not None and existing.role != "student":
                problem = f"{email} is a {existing.role}'s account, not a student's."
            checked.append((line, email, name, grade, existing))
        if problem:
            result.errors.append({"line": line, "email": email_raw, "error": problem})
        seen.setdefault(email, line)
    if not checked and not result.errors:
        result.errors.append({"line": 0, "error": "No students in the file."})
    if result.errors:
        return result
    for line, email, name, grade, existing in checked:
        if existing is None:
            password = "-".join(secrets.token_hex(2) for _ in range(4))
            user = create_user(email, password, display_name=name or None, grade_level=grade)
            db.session.flush()
            add_member(klass.id, user.id)
            result.created.append({"line": line, "id": user.id, "email": email, "password": password})
        elif add_member(klass.id, existing.id):
            result.added.append({"line": line, "id": existing.id, "email": email})
        else:
            result.already.append({"line": line, "id": existing.id, "email": email})
    db.session.commit()
    return result


# ------------------------------------------------------------------------------------ worth a look


def sessions_worth_a_look(
    student_ids: tuple[int, ...] | None, since: Any = None, until: Any = None, limit: int = 20
) -> list[dict[str, Any]]:
    """Recent sessions of these students (None: everyone) that a teacher may want to read: a reply
    judged to give the answer away, a failed reply, a rating of ``LOW_RATING`` or less, or a
    thumbs down on a reply (``messages.feedback`` -1). Newest first, with the reasons;
    sessions started in ``[since, until)`` when given.

    Sessions are walked newest first (an index scan) and each one's replies looked up by index,
    stopping at ``limit`` flagged sessions, so the cost is that of the recent sessions read."""
    if student_ids is not None and not student_ids:
        return []
    who = "s.student_id = ANY(:ids) AND " if student_ids is not None else ""
    who += "s.created_at >= :since AND " if since is not None else ""
    who += "s.created_at < :until AND " if until is not None else ""
    rows = db.session.execute(
        text(
            f"""
            SELECT s.id, s.student_id, COALESCE(NULLIF(u.display_name, ''), u.email) AS student, s.subject,
                   s.created_at, s.satisfaction, flags.revealed, flags.failed, flags.thumbs_down
            FROM sessions s JOIN users u ON u.id = s.student_id
            CROSS JOIN LATERAL (
                SELECT COALESCE(bool_or(m.answer_revealed), false) AS revealed,
                       COALESCE(bool_or(m.status = 'failed'), false) AS failed,
                       COALESCE(bool_or(m.feedback = -1), false) AS thumbs_down
                FROM messages m WHERE m.session_id = s.id AND m.role = 'tutor'
            ) flags
            WHERE {who}(flags.revealed OR flags.failed OR flags.thumbs_down OR s.satisfaction <= :low)
            ORDER BY s.created_at DESC
            LIMIT :limit
            """
        ),
        {"ids": list(student_ids or ()), "low": LOW_RATING, "limit": limit, "since": since, "until": until},
    ).all()
    out = []
    for r in rows:
        reasons = [
            label
            for flag, label in (
                (r.revealed, "answer revealed"),
                (r.thumbs_down, "thumbs down"),
                (r.failed, "failed reply"),
                (r.satisfaction is not None and r.satisfaction <= LOW_RATING, f"rated {r.satisfaction}/5"),
            )
            if flag
        ]
        out.append(
            {
                "session_id": str(r.id),
                "student_id": r.student_id,
                "student": r.student,
                "subject": r.subject,
                "started": r.created_at,
                "reasons": reasons,
            }  # fmt: skip
        )
    return out
