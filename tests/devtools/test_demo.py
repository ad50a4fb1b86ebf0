"""Demo data: ``devtools.demo.seed_demo`` and ``flask demo seed``."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import func, select, text

from devtools import demo
from devtools.demo import SUBJECT_TOPICS, DemoSeedError, SeedResult, seed_demo
from foundation.extensions import db
from tutor.models import Message, TutoringSession, User

PAST_END = date(2025, 3, 30)  # a Sunday; history in the past is fully deterministic

SCALARS = {
    "users": "SELECT count(*) FROM users",
    "sessions": "SELECT count(*) FROM sessions",
    "messages": "SELECT count(*) FROM messages",
    "topics": "SELECT count(*) FROM session_topics",
}


def q(sql: str, **params):
    return db.session.execute(text(sql), params)


def scalar(sql: str, **params):
    return db.session.execute(text(sql), params).scalar()


def counts() -> dict[str, int]:
    return {name: scalar(sql) for name, sql in SCALARS.items()}


def truncate() -> None:
    db.session.rollback()
    q("TRUNCATE session_topics, messages, session_metrics, sessions, users RESTART IDENTITY CASCADE")
    db.session.commit()


def fingerprint() -> tuple:
    """Everything the seed decides, independent of identity values."""
    return (
        counts(),
        scalar(
            """SELECT md5(string_agg(concat_ws('|', s.id, u.email, u.display_name, u.grade_level, u.created_at,
                                              s.subject, s.created_at, s.ended_at, s.duration_seconds, s.status,
                                              s.satisfaction), ',' ORDER BY s.created_at, s.id))
               FROM sessions s JOIN users u ON u.id = s.student_id"""
        ),
        scalar(
            """SELECT md5(string_agg(concat_ws('|', session_id, role, content, status, created_at, completed_at,
                                              latency_ms, prompt_tokens, completion_tokens, attempts, error),
                                     ',' ORDER BY id))
               FROM messages"""
        ),
        scalar("SELECT md5(string_agg(session_id || topic, ',' ORDER BY session_id, topic)) FROM session_topics"),
    )


@pytest.fixture
def small(app_ctx):
    """20 students, 14 days ending today (default ``end``), right now."""
    before = datetime.now(UTC)
    result = seed_demo(db.engine, students=20, days=14, seed=7, progress=False)
    return result, before, datetime.now(UTC)


def test_counts_match_the_result_and_the_database(small):
    result, _, _ = small
    assert isinstance(result, SeedResult)
    assert result.users == 20
    assert result.sessions == round(20 * 14 * 0.3)
    assert counts() == {
        "users": result.users,
        "sessions": result.sessions,
        "messages": result.messages,
        "topics": result.topics,
    }
    assert result.sessions * 2 <= result.messages <= result.sessions * 12
    assert result.seconds > 0
    assert re.fullmatch(
        r"seeded 20 students, 84 sessions, [\d,]+ messages, [\d,]+ topic rows, [\d,]+ graded attempts in \d+\.\d s \([\d,]+ sessions/s\)",
        result.summary(),
    )


def test_students_look_real(small):
    rows = q("SELECT email, password_hash, role, display_name, grade_level FROM users ORDER BY id").all()
    assert [r.email for r in rows] == [f"student{i:05d}@demo.aitutor.local" for i in range(1, 21)]
    assert {r.role for r in rows} == {"student"}
    assert all(r.password_hash is None for r in rows)
    assert all(re.fullmatch(r"[A-Z][a-z]+ [A-Z][a-z]+", r.display_name) for r in rows)
    assert all(5 <= r.grade_level <= 12 for r in rows)
    assert len({r.grade_level for r in rows}) >= 4
    # nobody has a session before signing up
    assert (
        scalar("SELECT count(*) FROM sessions s JOIN users u ON u.id = s.student_id WHERE s.created_at < u.created_at")
        == 0
    )


def test_every_session_has_one_to_three_clean_topics_of_its_subject(small):
    per_session = q(
        """SELECT s.subject, array_agg(t.topic) AS topics
           FROM sessions s LEFT JOIN session_topics t ON t.session_id = s.id GROUP BY s.id, s.subject"""
    ).all()
    assert len(per_session) == small[0].sessions
    for row in per_session:
        assert 1 <= len(row.topics) <= 3 and None not in row.topics
        for topic in row.topics:
            assert topic == " ".join(topic.split()).lower()
            assert topic in SUBJECT_TOPICS[row.subject]


def test_messages_alternate_and_stay_inside_their_session(small):
    bad_order = scalar(
        """SELECT count(*) FROM (
               SELECT role, created_at, row_number() OVER w AS n, lag(created_at) OVER w AS prev
               FROM messages WINDOW w AS (PARTITION BY session_id ORDER BY id)) m
           WHERE role <> CASE WHEN n % 2 = 1 THEN 'student' ELSE 'tutor' END OR created_at < prev"""
    )
    assert bad_order == 0
    outside = scalar(
        """SELECT count(*) FROM messages m JOIN sessions s ON s.id = m.session_id
           WHERE m.created_at < s.created_at
              OR (s.ended_at IS NOT NULL AND (m.created_at > s.ended_at OR m.completed_at > s.ended_at))"""
    )
    assert outside == 0
    sizes = q("SELECT count(*) AS n FROM messages GROUP BY session_id").scalars().all()
    assert len(sizes) == small[0].sessions  # every session has messages
    assert min(sizes) >= 2 and max(sizes) <= 12


def test_sessions_and_replies_are_consistent(small):
    assert (
        scalar(
            """SELECT count(*) FROM sessions WHERE status IN ('ended', 'abandoned')
             AND (ended_at IS NULL OR ended_at <> created_at + duration_seconds * interval '1 second')"""
        )
        == 0
    )
    assert (
        scalar("SELECT count(*) FROM sessions WHERE satisfaction IS NOT NULL AND satisfaction NOT BETWEEN 1 AND 5") == 0
    )
    assert scalar("SELECT count(*) FROM sessions WHERE status = 'active' AND satisfaction IS NOT NULL") == 0
    done = q(
        """SELECT completed_at, created_at, latency_ms, prompt_tokens, completion_tokens, provider, model, attempts
           FROM messages WHERE role = 'tutor' AND status = 'done'"""
    ).all()
    assert done
    for r in done:
        assert r.completed_at - r.created_at == timedelta(milliseconds=r.latency_ms)
        assert r.prompt_tokens > 0 and r.completion_tokens > 0
        assert (r.provider, r.model, r.attempts) == ("builtin", "builtin-tutor", 1)
    assert (
        scalar("SELECT count(*) FROM messages WHERE role = 'student' AND (status <> 'done' OR provider IS NOT NULL)")
        == 0
    )
    assert scalar("SELECT count(*) FROM messages WHERE content = '' AND status <> 'failed'") == 0


def test_nothing_in_the_future_and_a_few_sessions_still_active(small):
    _, before, after = small
    latest = scalar(
        """SELECT greatest((SELECT max(greatest(created_at, ended_at)) FROM sessions),
                           (SELECT max(greatest(created_at, completed_at)) FROM messages),
                           (SELECT max(created_at) FROM users))"""
    )
    assert latest <= after
    active = q("SELECT created_at, ended_at, duration_seconds FROM sessions WHERE status = 'active'").all()
    assert 1 <= len(active) <= 5
    for row in active:
        assert row.ended_at is None and row.duration_seconds is None
        assert before - timedelta(hours=6) < row.created_at <= after
    # the last reply of an active session came less than 30 minutes ago (not yet idle)
    last_reply = scalar(
        """SELECT min(last) FROM (SELECT max(m.completed_at) AS last FROM messages m
           JOIN sessions s ON s.id = m.session_id WHERE s.status = 'active' GROUP BY s.id) x"""
    )
    assert last_reply > before - timedelta(minutes=30)
    # history covers the requested days: the first sessions are about 14 days back
    first = scalar("SELECT min(created_at) FROM sessions")
    assert before - timedelta(days=14, hours=1) <= first < before - timedelta(days=10)


def test_a_bigger_sample_has_the_intended_shapes(app_ctx):
    result = seed_demo(db.engine, students=300, days=56, sessions=5000, seed=3, end=PAST_END, progress=False)
    assert result.sessions == 5000
    end_of_history = datetime(2025, 3, 31, tzinfo=UTC)
    assert scalar("SELECT max(created_at) FROM sessions") < end_of_history
    assert scalar("SELECT min(created_at) FROM sessions") >= end_of_history - timedelta(days=56)

    # fewer sessions at weekends (56 days: 8 of each weekday)
    by_dow = dict(q("SELECT extract(isodow FROM created_at)::int, count(*) FROM sessions GROUP BY 1").all())
    weekday_mean = sum(by_dow[d] for d in range(1, 6)) / 5
    weekend_mean = (by_dow[6] + by_dow[7]) / 2
    assert weekend_mean < 0.75 * weekday_mean

    # afternoon and evening peaks
    by_hour = dict(q("SELECT extract(hour FROM created_at)::int, count(*) FROM sessions GROUP BY 1").all())
    assert sum(by_hour.get(h, 0) for h in range(15, 21)) > 3 * sum(by_hour.get(h, 0) for h in range(0, 6))

    subjects = dict(q("SELECT subject, count(*) FROM sessions GROUP BY 1").all())
    assert set(subjects) == set(SUBJECT_TOPICS)
    assert max(subjects, key=subjects.get) == "mathematics"

    # a few popular topics and a long tail, per subject
    for subject, topics in SUBJECT_TOPICS.items():
        freq = dict(
            q(
                "SELECT t.topic, count(*) FROM session_topics t JOIN sessions s ON s.id = t.session_id "
                "WHERE s.subject = :s GROUP BY 1",
                s=subject,
            ).all()
        )
        assert freq.get(topics[0], 0) > 3 * freq.get(topics[-1], 0)

    stats = q(
        """SELECT avg((satisfaction IS NULL)::int) AS unrated, avg(satisfaction) AS mean_rating,
                  percentile_cont(0.5) WITHIN GROUP (ORDER BY duration_seconds) AS median_duration,
                  avg((status = 'abandoned')::int) AS abandoned
           FROM sessions"""
    ).one()
    assert 0.3 < stats.unrated < 0.5
    assert stats.mean_rating > 3.7
    assert 5 * 60 < stats.median_duration < 20 * 60
    assert 0.05 < stats.abandoned < 0.2

    replies = q(
        """SELECT count(*) FILTER (WHERE status = 'failed') AS failed, count(*) AS total,
                  percentile_cont(0.5) WITHIN GROUP (ORDER BY latency_ms) AS p50
           FROM messages WHERE role = 'tutor'"""
    ).one()
    assert 0 < replies.failed < 0.015 * replies.total
    assert 1000 < replies.p50 < 2200
    failed = q("SELECT attempts, error, latency_ms, content FROM messages WHERE status = 'failed'").all()
    assert all(r.attempts == 3 and r.error and r.latency_ms is None and r.content == "" for r in failed)

    # the guardrail's verdict: only on finished mathematics replies, seldom "revealed"
    verdicts = dict(
        q(
            """SELECT coalesce(m.answer_revealed::text, 'unchecked'), count(*) FROM messages m
               JOIN sessions s ON s.id = m.session_id
               WHERE m.role = 'tutor' AND m.status = 'done' AND s.subject = 'mathematics' GROUP BY 1"""
        ).all()
    )
    assert 0 < verdicts["true"] < 0.15 * verdicts["false"]
    assert verdicts["unchecked"] > 0
    assert (
        scalar(
            """SELECT count(*) FROM messages m JOIN sessions s ON s.id = m.session_id
               WHERE m.answer_revealed IS NOT NULL
                 AND (m.role <> 'tutor' OR m.status <> 'done' OR s.subject <> 'mathematics')"""
        )
        == 0
    )
    assert 5 <= result.messages / result.sessions <= 7


def test_same_seed_same_rows_other_seed_other_rows(app_ctx):
    kwargs = dict(students=30, days=20, sessions=400, end=PAST_END, progress=False)
    first = seed_demo(db.engine, seed=11, **kwargs)
    a = fingerprint()
    truncate()
    again = seed_demo(db.engine, seed=11, **kwargs)
    b = fingerprint()
    truncate()
    other = seed_demo(db.engine, seed=12, **kwargs)
    c = fingerprint()
    assert (first.messages, first.topics) == (again.messages, again.topics)
    assert a == b
    assert a[1] != c[1] and a[2] != c[2]
    assert other.sessions == first.sessions


def test_identity_sequences_are_usable_after_seeding(app_ctx):
    seed_demo(db.engine, students=10, days=5, seed=5, progress=False)
    max_user = db.session.scalar(select(func.max(User.id)))
    max_message = db.session.scalar(select(func.max(Message.id)))

    user = User(email="late.joiner@example.org", role="student", display_name="Late Joiner")
    db.session.add(user)
    db.session.flush()
    session = TutoringSession(student_id=user.id, subject="science", status="active")
    db.session.add(session)
    db.session.flush()
    message = Message(session_id=session.id, role="student", content="Hi!", status="done")
    db.session.add(message)
    db.session.commit()
    assert user.id > max_user
    assert message.id > max_message


def test_existing_demo_students_are_refused_but_the_demo_admin_is_fine(app_ctx):
    db.session.add(User(email="admin@demo.aitutor.local", role="admin", display_name="Demo admin"))
    db.session.commit()
    seed_demo(db.engine, students=3, days=2, seed=1, progress=False)  # the admin does not count
    before = counts()
    with pytest.raises(DemoSeedError, match="already exist"):
        seed_demo(db.engine, students=3, days=2, seed=1, progress=False)
    assert counts() == before


def test_an_interrupted_seed_leaves_the_database_as_it_was(app_ctx, monkeypatch):
    db.session.add(User(email="someone@example.org", role="student", display_name="Someone"))
    db.session.commit()
    before = counts()
    real_copy = demo._copy
    calls = []

    def interrupting_copy(cursor, table, columns, data):
        calls.append(table)
        if table == "messages" and calls.count("messages") == 2:
            raise KeyboardInterrupt
        real_copy(cursor, table, columns, data)

    monkeypatch.setattr(demo, "_copy", interrupting_copy)
    with pytest.raises(KeyboardInterrupt):
        seed_demo(db.engine, students=10, days=10, sessions=200, batch_size=50, progress=False)
    assert calls.count("sessions") == 2  # it did get part-way
    assert counts() == before
    monkeypatch.undo()
    # the pool is healthy and a new seed works
    result = seed_demo(db.engine, students=10, days=10, sessions=200, batch_size=50, progress=False)
    assert counts()["sessions"] == result.sessions == 200


def test_demo_topics_are_the_curriculum_topics(app_ctx):
    from tutor.curriculum import get_curriculum

    curriculum = get_curriculum()
    for subject, topics in SUBJECT_TOPICS.items():
        assert len(topics) >= 8 and len(set(topics)) == len(topics)
        assert set(topics) == {t.id for t in curriculum.subject(subject).topics}, subject
    for topic in (
        "arithmetic",
        "fractions",
        "percentages",
        "ratios and rates",
        "linear equations",
        "expanding brackets",
        "area and perimeter",
        "pythagorean theorem",
    ):
        assert topic in SUBJECT_TOPICS["mathematics"]
    for subject, pairs in demo.SUBJECT_QA.items():
        assert {t for t, _, _ in pairs} <= set(SUBJECT_TOPICS[subject])


def test_cli_demo_seed(runner):
    result = runner.invoke(args=["demo", "seed", "--students", "5", "--days", "3", "--quiet"])
    assert result.exit_code == 0, result.output
    assert "seeded 5 students" in result.output
    assert "demo seed" not in result.output  # --quiet: no progress bar
    with runner.app.app_context():
        assert scalar("SELECT count(*) FROM users") == 5
        assert scalar("SELECT count(*) FROM sessions") == round(5 * 3 * 0.3)


def test_a_busy_single_day_still_ends_before_now(app_ctx):
    """Sessions that start shortly before 'now' must not end (or reply) after it."""
    now = datetime.now(UTC).replace(microsecond=0)
    result = seed_demo(db.engine, students=50, days=1, sessions=1500, seed=9, now=now, progress=False)
    assert result.sessions == 1500
    assert scalar("SELECT max(ended_at) FROM sessions") <= now
    assert scalar("SELECT max(greatest(created_at, completed_at)) FROM messages") <= now
    assert scalar("SELECT count(*) FROM sessions WHERE created_at > :now", now=now) == 0


def test_seeding_twice_is_a_clear_cli_error(runner, app_ctx):
    first = runner.invoke(args=["demo", "seed", "--students", "3", "--days", "2", "--quiet"])
    assert first.exit_code == 0, first.output
    again = runner.invoke(args=["demo", "seed", "--students", "3", "--days", "2", "--quiet"])
    assert again.exit_code != 0
    assert "already exist" in again.output and "Traceback" not in again.output


def test_graded_attempts_follow_learning_curves_and_give_mastery_a_story(app_ctx):
    from analytics.knowledge import refit

    result = seed_demo(db.engine, students=80, days=60, sessions=4000, seed=4, end=PAST_END, progress=False)
    assert result.attempts == scalar("SELECT count(*) FROM attempts") > result.sessions // 2
    # Each attempt belongs to a session of the same student, subject and topic, during it.
    assert (
        scalar(
            """SELECT count(*) FROM attempts a JOIN sessions s ON s.id = a.session_id
               LEFT JOIN session_topics st ON st.session_id = s.id AND st.topic = a.topic
               WHERE s.student_id <> a.student_id OR s.subject <> a.subject OR st.topic IS NULL
                  OR a.created_at < s.created_at OR a.created_at > COALESCE(s.ended_at, now())"""
        )
        == 0
    )
    # Answers improve with practice: the share right rises from the first attempt on a topic.
    by_k = dict(
        q(
            """WITH a AS (SELECT correct, row_number() OVER (PARTITION BY student_id, subject, topic
                                                              ORDER BY created_at, id) AS k FROM attempts)
               SELECT CASE WHEN k = 1 THEN 'first' WHEN k >= 6 THEN 'later' END, avg(correct::int)
               FROM a WHERE k = 1 OR k >= 6 GROUP BY 1"""
        ).all()
    )
    assert float(by_k["later"]) > float(by_k["first"]) + 0.25
    assert scalar("SELECT count(DISTINCT source) FROM attempts") == 3
    assert scalar("SELECT count(*) FROM attempts WHERE subject <> 'mathematics' AND source = 'problem'") == 0

    summary = refit()
    assert summary["students"] == scalar(
        "SELECT count(*) FROM (SELECT DISTINCT student_id, subject, topic FROM attempts) d"
    )
    assert summary["fitted"] >= 5
    spread = q(
        "SELECT count(*) FILTER (WHERE p_known >= 0.8), count(*) FILTER (WHERE p_known <= 0.4) FROM mastery"
    ).one()
    assert spread[0] > 0 and spread[1] > 0  # some students have mastered topics, some are stuck
