"""Classes and teachers: join codes, CSV import, rosters, and conversation review with its audit log."""

from __future__ import annotations

import re
import uuid

import pytest
from sqlalchemy import select, text

from foundation.extensions import db
from tests.conftest import Student, make_student
from tutor import classes
from tutor.embed import make_token
from tutor.models import ClassMember, Mastery, Message, TranscriptRead, TutoringSession, User


def make_user(app, email: str, role: str) -> Student:
    return make_student(app, email, role=role)


def new_class(teacher: Student, name: str = "7B maths", **extra) -> dict:
    response = teacher.post("/api/v1/classes", json={"name": name, **extra})
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def add_session(app, student_id: int, subject: str = "mathematics", **columns) -> str:
    with app.app_context():
        session = TutoringSession(id=uuid.uuid4(), student_id=student_id, subject=subject, status="ended", **columns)
        db.session.add(session)
        db.session.add(Message(session_id=session.id, role="student", content="what is 3/4 + 1/8?"))
        db.session.add(Message(session_id=session.id, role="tutor", content="Try a common denominator."))
        db.session.commit()
        return str(session.id)


@pytest.fixture
def school(app):
    """Two teachers with a class each, a student in each class, and an admin."""
    t1, t2 = make_user(app, "mrs.a@school.org", "teacher"), make_user(app, "mr.b@school.org", "teacher")
    admin = make_user(app, "head@school.org", "admin")
    c1, c2 = new_class(t1, "7A"), new_class(t2, "7B")
    s1, s2 = make_student(app, "ann@school.org"), make_student(app, "bob@school.org")
    assert s1.post("/api/v1/classes/join", json={"join_code": c1["join_code"]}).status_code == 200
    assert s2.post("/api/v1/classes/join", json={"join_code": c2["join_code"]}).status_code == 200
    return {"t1": t1, "t2": t2, "admin": admin, "c1": c1, "c2": c2, "s1": s1, "s2": s2}


def test_teachers_are_created_from_the_command_line(app, runner):
    result = runner.invoke(args=["users", "create", "--email", "t@school.org", "--password", "teaching-123", "--role", "teacher"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "created teacher t@school.org" in result.output
    with app.app_context():
        assert db.session.scalar(select(User.role).where(User.email == "t@school.org")) == "teacher"


def test_join_codes_are_short_unambiguous_and_forgiving(app_ctx):
    codes = {classes.new_join_code() for _ in range(200)}
    assert len(codes) == 200
    assert all(len(c) == 6 and set(c) <= set(classes.CODE_ALPHABET) for c in codes)
    assert not set("01OIL") & set(classes.CODE_ALPHABET)
    assert classes.normalize_code(" abc-23k ") == "ABC23K" and classes.format_code("ABC23K") == "ABC-23K"


def test_creating_joining_and_listing_classes(app, school):
    t1, s1, admin, c1 = school["t1"], school["s1"], school["admin"], school["c1"]
    assert set(c1) >= {"id", "name", "join_code"} and re.fullmatch(r"[A-Z2-9]{3}-[A-Z2-9]{3}", c1["join_code"])
    # a student cannot create one; a subject must be the curriculum's
    assert s1.post("/api/v1/classes", json={"name": "mine"}).status_code == 403
    assert t1.post("/api/v1/classes", json={"name": " "}).status_code == 400
    bad = t1.post("/api/v1/classes", json={"name": "x", "subject": "alchemy"})
    assert bad.status_code == 400 and bad.get_json()["error"] == "unknown_subject"
    # each sees what is theirs
    assert [c["name"] for c in t1.get("/api/v1/classes").get_json()["items"]] == ["7A"]
    assert t1.get("/api/v1/classes").get_json()["items"][0]["students"] == 1
    assert [c["name"] for c in admin.get("/api/v1/classes").get_json()["items"]] == ["7A", "7B"]
    joined = s1.get("/api/v1/classes").get_json()["items"]
    assert joined == [{"id": c1["id"], "name": "7A", "subject": None, "teacher": "mrs.a"}]  # no join code
    # a student can be in several classes; joining twice is harmless; codes are typed loosely
    code2 = school["c2"]["join_code"].lower().replace("-", " ")
    assert s1.post("/api/v1/classes/join", json={"join_code": code2}).status_code == 200
    assert s1.post("/api/v1/classes/join", json={"join_code": code2}).status_code == 200
    assert len(s1.get("/api/v1/classes").get_json()["items"]) == 2
    # teachers do not join
    assert t1.post("/api/v1/classes/join", json={"join_code": code2}).status_code == 403


def test_a_wrong_code_is_404_and_guessing_is_slowed_down(app, school):
    s1 = school["s1"]
    wrong = s1.post("/api/v1/classes/join", json={"join_code": "ZZZ-ZZZ"})
    assert wrong.status_code == 404 and "teacher" in wrong.get_json()["detail"]
    assert s1.post("/api/v1/classes/join", json={"join_code": 7}).status_code == 400
    for _ in range(classes.JOIN_ATTEMPTS[0] - 1):
        s1.post("/api/v1/classes/join", json={"join_code": "ZZZ-ZZZ"})
    limited = s1.post("/api/v1/classes/join", json={"join_code": school["c2"]["join_code"]})
    assert limited.status_code == 429 and "Retry-After" in limited.headers


def test_a_new_code_replaces_the_old_one(app, school):
    t1, c1 = school["t1"], school["c1"]
    renewed = t1.post(f"/api/v1/classes/{c1['id']}/join_code").get_json()
    assert renewed["join_code"] != c1["join_code"]
    late = make_student(app, "late@school.org")
    assert late.post("/api/v1/classes/join", json={"join_code": c1["join_code"]}).status_code == 404
    assert late.post("/api/v1/classes/join", json={"join_code": renewed["join_code"]}).status_code == 200
    assert school["t2"].post(f"/api/v1/classes/{c1['id']}/join_code").status_code == 404


def test_rosters_are_for_their_teacher_and_admins_only(app, school):
    t1, t2, admin, s1, c1 = school["t1"], school["t2"], school["admin"], school["s1"], school["c1"]
    add_session(app, s1.id)
    with app.app_context():
        db.session.add_all(
            [
                Mastery(student_id=s1.id, subject="mathematics", topic="fractions", p_known=0.9, attempts=4, correct=4),
                Mastery(student_id=s1.id, subject="mathematics", topic="ratios", p_known=0.5, attempts=2, correct=1),
            ]
        )
        db.session.commit()
    roster = t1.get(f"/api/v1/classes/{c1['id']}/students")
    assert roster.status_code == 200
    (row,) = roster.get_json()
    assert {k: row[k] for k in ("id", "display_name", "grade_level", "sessions", "mastery")} == {
        "id": s1.id, "display_name": "ann", "grade_level": 7, "sessions": 1, "mastery": 0.7,
    }  # fmt: skip
    assert row["last_active"] and row["topics_mastered"] == 1
    assert admin.get(f"/api/v1/classes/{c1['id']}/students").status_code == 200
    # another teacher's class does not exist for them; students are refused; unknown ids are 404
    assert t2.get(f"/api/v1/classes/{c1['id']}/students").status_code == 404
    assert s1.get(f"/api/v1/classes/{c1['id']}/students").status_code == 403
    assert t1.get("/api/v1/classes/999999/students").status_code == 404
    assert app.test_client().get(f"/api/v1/classes/{c1['id']}/students").status_code == 401


def test_removing_a_student(app, school):
    t1, t2, s1, c1 = school["t1"], school["t2"], school["s1"], school["c1"]
    refused = t2.client.delete(f"/api/v1/classes/{c1['id']}/students/{s1.id}", headers={"X-CSRF-Token": t2.csrf})
    assert refused.status_code == 404
    gone = t1.client.delete(f"/api/v1/classes/{c1['id']}/students/{s1.id}", headers={"X-CSRF-Token": t1.csrf})
    assert gone.status_code == 200
    assert t1.get(f"/api/v1/classes/{c1['id']}/students").get_json() == []
    again = t1.client.delete(f"/api/v1/classes/{c1['id']}/students/{s1.id}", headers={"X-CSRF-Token": t1.csrf})
    assert again.status_code == 404
    with app.app_context():
        assert db.session.get(User, s1.id) is not None  # the account stays


def test_csv_import_adds_existing_students_and_creates_the_others(app, school):
    t1, c1 = school["t1"], school["c1"]
    csv_text = "E-mail;Name;Grade\nbob@school.org;Bob;8\nNEW.kid@school.org;New Kid;6\nann@school.org;Ann;\n"
    response = t1.post(f"/api/v1/classes/{c1['id']}/students", json={"csv": csv_text})
    assert response.status_code == 200, response.get_json()
    result = response.get_json()
    assert [r["email"] for r in result["added"]] == ["bob@school.org"]
    assert [r["email"] for r in result["already_in_class"]] == ["ann@school.org"]
    (created,) = result["created"]
    assert created["email"] == "new.kid@school.org" and created["line"] == 3 and len(created["password"]) >= 8
    names = {r["display_name"]: r["grade_level"] for r in t1.get(f"/api/v1/classes/{c1['id']}/students").get_json()}
    assert names["New Kid"] == 6 and len(names) == 3
    # the new student logs in with the first password and sees the class
    kid = app.test_client()
    assert kid.post("/api/v1/auth/login", json={"email": "new.kid@school.org", "password": created["password"]}).status_code == 200  # fmt: skip
    assert [c["name"] for c in kid.get("/api/v1/classes").get_json()["items"]] == ["7A"]
    # importing the same file again changes nothing
    again = t1.post(f"/api/v1/classes/{c1['id']}/students", json={"csv": csv_text}).get_json()
    assert not again["created"] and not again["added"] and len(again["already_in_class"]) == 3


def test_csv_import_reports_every_bad_row_and_imports_nothing(app, school):
    t1, c1 = school["t1"], school["c1"]
    csv_text = "\n".join(
        [
            "good@school.org,Good,7",
            "not-an-email,Nobody,7",
            "grade@school.org,Grade,14",
            "mr.b@school.org,Teacher,",  # a teacher's account
            "good@school.org,Twice,7",
            ",Missing,5",
            "extra@school.org,Extra,5,oops",
        ]
    )
    response = t1.post(f"/api/v1/classes/{c1['id']}/students", json={"csv": csv_text})
    assert response.status_code == 422
    body = response.get_json()
    assert body["error"] == "bad_rows" and "Nothing was imported" in body["detail"]
    errors = {e["line"]: e["error"] for e in body["rows"]}
    assert sorted(errors) == [2, 3, 4, 5, 6, 7]
    assert "not an e-mail" in errors[2] and "1 to 13" in errors[3] and "teacher" in errors[4]
    assert "line 1" in errors[5] and "missing" in errors[6] and "columns" in errors[7]
    with app.app_context():
        assert db.session.scalar(select(User).where(User.email == "good@school.org")) is None
    empty = t1.post(f"/api/v1/classes/{c1['id']}/students", json={"csv": "  \n"})
    assert empty.status_code == 422 and "empty" in empty.get_json()["rows"][0]["error"]
    assert t1.post(f"/api/v1/classes/{c1['id']}/students", json={"csv": 5}).status_code == 400
    assert school["t2"].post(f"/api/v1/classes/{c1['id']}/students", json={"csv": csv_text}).status_code == 404


def test_embed_students_are_placed_in_a_class_by_their_token(app, client, school):
    c1 = school["c1"]
    secret = app.config["EMBED_SECRET"]
    page = client.get(f"/embed?token={make_token(secret, 'lms-77', 'Lin', class_code=c1['join_code'])}")
    assert page.status_code == 200
    assert b"can read your tutoring sessions" in page.data  # the notice, on the embedded page too
    with app.app_context():
        lin = db.session.scalar(select(User).where(User.external_id == "lms-77"))
        assert db.session.get(ClassMember, (c1["id"], lin.id)) is not None
    # an unknown code places nobody but the page opens; a malformed claim is refused
    assert client.get(f"/embed?token={make_token(secret, 'lms-78', 'Max', class_code='NOPE12')}").status_code == 200
    import time

    import jwt

    bad = jwt.encode({"sub": "x", "class": 5, "exp": int(time.time()) + 60}, secret, algorithm="HS256")
    assert client.get(f"/embed?token={bad}").status_code == 401


def test_transcripts_are_for_the_teacher_and_every_read_is_recorded(app, school):
    t1, t2, admin, s1, s2, c1 = (school[k] for k in ("t1", "t2", "admin", "s1", "s2", "c1"))
    sid = add_session(app, s1.id, satisfaction=1)
    other = add_session(app, s2.id)
    base = f"/api/v1/classes/{c1['id']}/students/{s1.id}/sessions"
    listing = t1.get(base)
    assert listing.status_code == 200 and [s["id"] for s in listing.get_json()["items"]] == [sid]
    read = t1.get(f"{base}/{sid}/messages")
    assert read.status_code == 200
    assert [m["role"] for m in read.get_json()["items"]] == ["student", "tutor"]
    # nobody else, and no other student's session through this class
    assert t2.get(f"{base}/{sid}/messages").status_code == 404
    assert t2.get(base).status_code == 404
    assert s1.get(f"{base}/{sid}/messages").status_code == 403
    assert t1.get(f"{base}/{other}/messages").status_code == 404
    assert t1.get(f"/api/v1/classes/{c1['id']}/students/{s2.id}/sessions").status_code == 404
    assert t1.get(f"{base}/not-a-uuid/messages").status_code == 404
    # pages: the teacher reads it, another teacher gets 404, admins read any
    assert t1.get(f"/review/{sid}").status_code == 200
    assert t2.get(f"/review/{sid}").status_code == 404
    assert s1.get(f"/review/{sid}").status_code == 403
    assert admin.get(f"/review/{other}").status_code == 200
    with app.app_context():
        reads = db.session.scalars(select(TranscriptRead).order_by(TranscriptRead.id)).all()
        assert [(r.reader_email, r.student_email, str(r.session_id), r.via) for r in reads] == [
            ("mrs.a@school.org", "ann@school.org", sid, "api"),
            ("mrs.a@school.org", "ann@school.org", sid, "page"),
            ("head@school.org", "bob@school.org", other, "page"),
        ]
        assert all(r.read_at is not None and r.class_id for r in reads)
    # the audit log is for admins
    log = admin.get("/admin/audit")
    assert log.status_code == 200 and b"mrs.a@school.org" in log.data and sid.encode() in log.data
    assert t1.get("/admin/audit").status_code == 403
    assert s1.get("/admin/audit").status_code == 403
    # the log survives a deleted account
    with app.app_context():
        from tutor.users import delete_user

        delete_user(db.session.get(User, s2.id))
        assert db.session.execute(text("SELECT count(*) FROM transcript_reads WHERE student_email = 'bob@school.org'")).scalar() == 1  # fmt: skip


def test_class_pages(app, school):
    t1, s1, c1 = school["t1"], school["s1"], school["c1"]
    add_session(app, s1.id, satisfaction=2)
    disliked = add_session(app, s1.id)
    with app.app_context():
        db.session.execute(
            text("UPDATE messages SET feedback = -1 WHERE session_id = :s AND role = 'tutor'"), {"s": disliked}
        )
        db.session.commit()
    listing = t1.get("/classes")
    assert listing.status_code == 200 and b"7A" in listing.data and b"7B" not in listing.data
    page = t1.get(f"/classes/{c1['id']}")
    assert page.status_code == 200 and c1["join_code"].encode() in page.data
    assert b"rated 2/5" in page.data and b"/review/" in page.data  # sessions worth a look
    assert b"thumbs down" in page.data and disliked.encode() in page.data
    assert school["t2"].get(f"/classes/{c1['id']}").status_code == 404
    assert s1.get(f"/classes/{c1['id']}").status_code == 403
    created = t1.client.post("/classes", data={"name": "Science club", "subject": "science", "csrf_token": t1.csrf})
    assert created.status_code == 302
    # an import with a bad row shows the row and imports nothing
    bad = t1.client.post(
        f"/classes/{c1['id']}/import", data={"csv": "x@school.org,X,7\nnope,Y,7", "csrf_token": t1.csrf}
    )
    assert bad.status_code == 400 and b"Line 2" in bad.data and b"Nothing was imported" in bad.data
    good = t1.client.post(f"/classes/{c1['id']}/import", data={"csv": "x@school.org,X,7", "csrf_token": t1.csrf})
    assert good.status_code == 200 and b"First password" in good.data
    student_page = t1.get(f"/classes/{c1['id']}/students/{s1.id}")
    assert student_page.status_code == 200 and b"/review/" in student_page.data


def test_students_are_told_their_teacher_can_read_their_sessions(app, school):
    s1 = school["s1"]
    notice = b"can read your tutoring sessions"
    assert notice in s1.get("/sessions").data and b"mrs.a" in s1.get("/sessions").data
    assert notice in s1.get("/chat").data
    loner = make_student(app, "loner@school.org")
    assert notice not in loner.get("/sessions").data
    joined = loner.client.post("/classes/join", data={"join_code": school["c2"]["join_code"], "csrf_token": loner.csrf})
    assert joined.status_code == 303
    assert notice in loner.get("/sessions").data and b"mr.b" in loner.get("/sessions").data
