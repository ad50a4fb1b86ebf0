"""Mastery for the dashboard: what an admin reads about learning, as DataFrames.

Every read takes the dashboard's :class:`analytics.reads.Filters` (days, subjects, grades)
and costs a few index lookups whatever the history: the heatmap and the at-risk list read
the ``mastery`` table (one row per student and topic, kept current after every attempt), the
weekly chart reads the nightly snapshot ``mastery_daily`` (one row per day, subject, topic
and grade), and a student's curve replays that one student's attempts. Nothing is written.
Definitions: ``docs/ANALYTICS.md`` (Attempts and mastery).
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pandas as pd

from tutor.curriculum import get_curriculum
from tutor.mastery import params_for

from .reads import Filters, _frame, _raw_filters, _reader, analytics_tz
from .tables import UNKNOWN_GRADE

INACTIVE_DAYS = 7
HEATMAP_STUDENTS = 60


def topic_names() -> dict[tuple[str, str], str]:
    return {(s.id, t.id): t.name for s in get_curriculum().subjects.values() for t in s.topics}


def _bounds(f: Filters) -> tuple[Any, Any]:
    from .rollup import local_day_bounds

    tz = analytics_tz()
    return local_day_bounds(f.start, tz)[0], local_day_bounds(f.end, tz)[1]


def heatmap(f: Filters, limit: int = HEATMAP_STUDENTS) -> pd.DataFrame:
    """Students x topics: the current mastery of the students who answered something in the
    range (lowest average mastery first, at most ``limit``), as a tidy frame: student_id,
    student, subject, topic, name, mastery, attempts. The students are picked from the nightly
    per-student snapshot (``mastery_students``), their topics read live from ``mastery``."""
    start, end = _bounds(f)
    params: dict[str, Any] = {"start": start, "end": end, "limit": limit}
    where, live = _snapshot_filters(f, params), _raw_filters(f, params, session="m")
    with _reader() as cur:
        frame = _frame(
            cur,
            f"""
            WITH weakest AS (
                SELECT student_id, sum(mastery_avg * topics) / sum(topics) AS average FROM mastery_students ms
                WHERE last_attempt >= %(start)s AND last_attempt < %(end)s {where}
                GROUP BY student_id ORDER BY average, student_id LIMIT %(limit)s
            )
            SELECT m.student_id, COALESCE(NULLIF(u.display_name, ''), u.email) AS student, m.subject, m.topic,
                   m.p_known AS mastery, m.attempts
            FROM weakest w JOIN mastery m ON m.student_id = w.student_id JOIN users u ON u.id = m.student_id
            WHERE m.attempts > 0 {live}
            ORDER BY w.average, m.student_id, m.subject, m.topic
            """,
            params,
        )
    columns = ["student_id", "student", "subject", "topic", "name", "mastery", "attempts"]
    if frame.empty:
        return pd.DataFrame(columns=columns)
    names = topic_names()
    frame["name"] = [names.get((s, t), t) for s, t in zip(frame["subject"], frame["topic"], strict=True)]
    return frame[columns]


def _snapshot_filters(f: Filters, params: dict[str, Any]) -> str:
    params.update(subjects=list(f.subjects), grades=list(f.grades), unknown=UNKNOWN_GRADE)
    conds = []
    if f.subjects:
        conds.append("ms.subject = ANY(%(subjects)s)")
    if f.grades:
        conds.append("ms.grade_level = ANY(%(grades)s)")
    if f.students is not None:  # a teacher's classes (or the class filter)
        params["students"] = list(f.students)
        conds.append("ms.student_id = ANY(%(students)s::int[])")
    return "".join(f" AND {c}" for c in conds)


def mastery_over_time(f: Filters) -> pd.DataFrame:
    """Average mastery per topic per week (the week's last day in the range, from the nightly
    snapshot): week (Monday), subject, topic, name, students, mastery, mastered_share."""
    columns = ["week", "subject", "topic", "name", "students", "mastery", "mastered_share"]
    if f.students is not None:
        # The nightly snapshot is per grade, subject and topic, not per student: a view of some
        # students (a teacher's classes) has no history to show, and must not show everyone's.
        return pd.DataFrame(columns=columns)
    last_days = sorted({min(d + timedelta(days=6 - d.weekday()), f.end) for d in f.days()})
    params: dict[str, Any] = {"days": last_days}
    where = ""
    conds = []
    if f.subjects:
        params["subjects"] = list(f.subjects)
        conds.append("subject = ANY(%(subjects)s)")
    if f.grades:
        params["grades"] = list(f.grades)
        conds.append("grade_level = ANY(%(grades)s)")
    where = "".join(f" AND {c}" for c in conds)
    with _reader() as cur:
        frame = _frame(
            cur,
            f"""
            SELECT date, subject, topic, sum(students)::int AS students, sum(mastery_sum) AS mastery_sum,
                   sum(mastered)::int AS mastered
            FROM mastery_daily WHERE date = ANY(%(days)s::date[]) {where}
            GROUP BY date, subject, topic ORDER BY date, subject, topic
            """,
            params,
        )
    if frame.empty:
        return pd.DataFrame(columns=columns)
    frame["week"] = [d - timedelta(days=d.weekday()) for d in frame["date"]]
    frame["mastery"] = frame["mastery_sum"] / frame["students"].where(frame["students"] > 0)
    frame["mastered_share"] = frame["mastered"] / frame["students"].where(frame["students"] > 0)
    names = topic_names()
    frame["name"] = [names.get((s, t), t) for s, t in zip(frame["subject"], frame["topic"], strict=True)]
    return frame[columns]


def students_at_risk(f: Filters, today: date | None = None) -> pd.DataFrame:
    """Students who have answered something and either have had no session for
    ``INACTIVE_DAYS`` days, or have a topic "not rising" (``STUCK_ATTEMPTS``+ attempts and mastery
    still under ``STUCK_BELOW``, as of the nightly refit): student_id, student, email,
    grade_level, last_session, days_inactive, stuck_topics (names), reason; most inactive first.
    From the nightly per-student snapshot; a session since the snapshot counts (one index probe
    per listed student). Ready for ``to_csv``."""
    from .reads import analytics_today
    from .rollup import local_day_bounds

    today = today or analytics_today()
    params: dict[str, Any] = {
        "active_since": local_day_bounds(today - timedelta(days=INACTIVE_DAYS - 1), analytics_tz())[0]
    }
    where = _snapshot_filters(f, params)
    with _reader() as cur:
        frame = _frame(
            cur,
            f"""
            WITH snap AS (
                SELECT student_id, max(last_session) AS last_session, max(snapshot_at) AS snapshot_at,
                       array_agg(subject || '/' || topic ORDER BY subject, topic)
                           FILTER (WHERE topic IS NOT NULL) AS stuck
                FROM mastery_students ms LEFT JOIN LATERAL unnest(ms.stuck) AS topic ON true
                WHERE true {where}
                GROUP BY student_id
                HAVING max(last_session) IS NULL OR max(last_session) < %(active_since)s
                    OR count(topic) > 0
            )
            SELECT s.student_id, COALESCE(NULLIF(u.display_name, ''), u.email) AS student, u.email, u.grade_level,
                   GREATEST(s.last_session, (SELECT max(x.created_at) FROM sessions x
                                             WHERE x.student_id = s.student_id AND x.created_at > s.snapshot_at))
                       AS last_session,
                   COALESCE(s.stuck, '{{}}') AS stuck
            FROM snap s JOIN users u ON u.id = s.student_id
            """,
            params,
        )
    columns = [
        "student_id",
        "student",
        "email",
        "grade_level",
        "last_session",
        "days_inactive",
        "stuck_topics",
        "reason",
    ]
    if frame.empty:
        return pd.DataFrame(columns=columns)
    tz = analytics_tz()
    last = pd.to_datetime(frame["last_session"], utc=True).dt.tz_convert(tz).dt.date
    frame["days_inactive"] = [(today - d).days if isinstance(d, date) else None for d in last]
    names = {f"{s}/{t}": n for (s, t), n in topic_names().items()}
    frame["stuck_topics"] = ["; ".join(names.get(k, k) for k in keys) for keys in frame["stuck"]]
    inactive = frame["days_inactive"].isna() | (frame["days_inactive"].fillna(0) >= INACTIVE_DAYS)
    stuck = frame["stuck_topics"] != ""
    frame = frame[inactive | stuck].copy()
    frame["reason"] = [
        " and ".join(r for r, on in ((f"no session for {INACTIVE_DAYS}+ days", a), ("mastery not rising", b)) if on)
        for a, b in zip(inactive[frame.index], stuck[frame.index], strict=True)
    ]
    return frame.sort_values(["days_inactive", "student_id"], ascending=[False, True], na_position="first")[columns]


def mastery_curve(student_id: int) -> pd.DataFrame:
    """One student's mastery after each attempt, per topic (their timeline's curve): created_at,
    subject, topic, name, correct, mastery. Replays the student's attempts with each topic's
    current parameters, so it ends where the progress page stands."""
    with _reader() as cur:
        frame = _frame(
            cur,
            "SELECT created_at, subject, topic, correct FROM attempts WHERE student_id = %(s)s "
            "ORDER BY subject, topic, created_at, id",
            {"s": student_id},
        )
    columns = ["created_at", "subject", "topic", "name", "correct", "mastery"]
    if frame.empty:
        return pd.DataFrame(columns=columns)
    values = []
    for (subject, topic), part in frame.groupby(["subject", "topic"], sort=False):
        bkt = params_for(subject, topic)
        p = bkt.p_init
        for correct in part["correct"]:
            p = bkt.update(p, bool(correct))
            values.append(p)
    frame["mastery"] = values
    names = topic_names()
    frame["name"] = [names.get((s, t), t) for s, t in zip(frame["subject"], frame["topic"], strict=True)]
    return frame.sort_values("created_at", kind="stable")[columns].reset_index(drop=True)
