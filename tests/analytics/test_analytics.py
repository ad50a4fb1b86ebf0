"""The nightly rollup: daily_stats definitions, the rollup tables, catch-up, time zones and the CLI."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime, time, timedelta
from functools import partial
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import text

from analytics.cli import analytics_cli
from analytics.rollup import (
    local_day_bounds,
    local_today,
    popular_topics_sorted,
    rollup_range,
)
from analytics.tables import (
    LATENCY_BUCKETS,
    LATENCY_EDGES_MS,
    ROLLUP_TABLES,
    UNKNOWN_GRADE,
    latency_histogram,
    latency_percentiles,
)
from foundation.extensions import db
from jobs.analytics import aggregate_daily_stats
from tests.rows import Rows

D = date(2024, 3, 5)  # a Tuesday


def utc(day: date, hour: int, minute: int = 0, second: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, second, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _empty_rollups(app):
    """The shared fixture truncates the core tables; the rollup tables are emptied here."""
    with app.app_context(), db.engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {', '.join(ROLLUP_TABLES)}"))
    yield


@pytest.fixture
def zone(app):
    """Set ANALYTICS_TZ for one test: ``zone("Asia/Kolkata")``; restored afterwards."""
    saved = app.config["ANALYTICS_TZ"]

    def set_zone(name: str) -> str:
        app.config["ANALYTICS_TZ"] = name
        return name

    yield set_zone
    app.config["ANALYTICS_TZ"] = saved


Data = partial(Rows, default_duration=None)  # sessions without a duration stay active


def daily(day: date):
    return db.session.execute(text("SELECT * FROM daily_stats WHERE date = :d"), {"d": day}).one()


def rows(sql: str, **params):
    return db.session.execute(text(sql), params).all()


def snapshot():
    out = {"daily_stats": rows("SELECT * FROM daily_stats ORDER BY date")}
    for table in ROLLUP_TABLES:
        out[table] = rows(f"SELECT * FROM {table} ORDER BY 1, 2, 3, 4")
    return out


# -- definitions ----------------------------------------------------------------------------------


def build_two_days(data: Data) -> dict[str, int]:
    """Day D: three sessions (one unrated, one without a duration, one across midnight); D + 1: one."""
    a, b = data.user(grade=7), data.user(grade=None)
    s1 = data.session(a, utc(D, 10), duration=600, rating=4, topics=("fractions", "percentages"), first_message=False)
    s2 = data.session(
        a, utc(D, 12, 30), subject="science", topics=("cells",), first_message=False
    )  # active: no duration, unrated
    s3 = data.session(b, utc(D, 23, 50), duration=1200, rating=2, topics=("fractions",), first_message=False)
    data.message(s1, utc(D, 10, 1))
    data.message(s1, utc(D, 10, 2), role="tutor", latency=2000, revealed=False)
    data.message(s1, utc(D, 10, 5))
    data.message(s1, utc(D, 10, 6), role="tutor", status="failed")
    data.message(s2, utc(D, 12, 31))
    data.message(s2, utc(D, 12, 32), role="tutor", latency=3000, revealed=True)
    data.message(s2, utc(D, 12, 40))
    data.message(s2, utc(D, 12, 41), role="tutor", status="streaming")
    data.message(s3, utc(D, 23, 55))
    data.message(s3, utc(D, 23, 56), role="tutor", latency=1000)
    # after midnight: these belong to D + 1 although their session started on D
    data.message(s3, utc(D + timedelta(days=1), 0, 5))
    data.message(s3, utc(D + timedelta(days=1), 0, 6), role="tutor", latency=900)
    s4 = data.session(
        a, utc(D + timedelta(days=1), 9), duration=300, rating=5, topics=("fractions",), first_message=False
    )
    data.message(s4, utc(D + timedelta(days=1), 9, 1))
    return {"a": a, "b": b}


def test_daily_stats_definitions(app_ctx):
    build_two_days(Data())
    assert rollup_range(D, D + timedelta(days=2)) == [D + timedelta(days=i) for i in range(3)]

    day = daily(D)
    assert day.total_sessions == 3
    assert day.avg_duration == 900.0  # the active session has no duration
    assert day.total_users == 2
    assert day.popular_topics == {"fractions": 2, "percentages": 1, "cells": 1}
    assert popular_topics_sorted(day.popular_topics) == [("fractions", 2), ("cells", 1), ("percentages", 1)]
    assert day.total_messages == 5  # student messages created on D
    assert day.avg_satisfaction == 3.0  # the unrated session is left out
    assert day.ai_latency_p50_ms == float(np.percentile([2000, 3000, 1000], 50)) == 2000.0
    assert day.ai_latency_p95_ms == float(np.percentile([2000, 3000, 1000], 95)) == 2900.0
    assert day.ai_failures == 1

    after = daily(D + timedelta(days=1))
    assert (after.total_sessions, after.total_users, after.total_messages) == (1, 1, 2)
    assert after.ai_latency_p50_ms == after.ai_latency_p95_ms == 900.0
    assert after.avg_duration == 300.0 and after.avg_satisfaction == 5.0
    assert after.popular_topics == {"fractions": 1}

    empty = daily(D + timedelta(days=2))  # a day without sessions still gets a row
    assert (empty.total_sessions, empty.total_users, empty.total_messages, empty.ai_failures) == (0, 0, 0, 0)
    assert empty.avg_duration is None and empty.avg_satisfaction is None
    assert empty.ai_latency_p50_ms is None and empty.ai_latency_p95_ms is None
    assert empty.popular_topics == {}


def test_rollup_tables_on_hand_built_days(app_ctx):
    ids = build_two_days(Data())
    rollup_range(D, D + timedelta(days=2))

    got = {
        (r.date, r.subject, r.grade_level): r
        for r in rows("SELECT * FROM rollup_daily ORDER BY date, subject, grade_level")
    }
    assert set(got) == {
        (D, "mathematics", 7),
        (D, "mathematics", UNKNOWN_GRADE),
        (D, "science", 7),
        (D + timedelta(days=1), "mathematics", 7),
        (D + timedelta(days=1), "mathematics", UNKNOWN_GRADE),  # only messages of a session from D
    }
    m7 = got[(D, "mathematics", 7)]
    assert (m7.sessions, m7.duration_sum, m7.duration_count, m7.rating_sum, m7.rating_count) == (1, 600, 1, 4, 1)
    assert (m7.student_messages, m7.tutor_replies_done, m7.tutor_replies_failed) == (2, 1, 1)
    assert (m7.answer_revealed_count, m7.answer_checked_count) == (0, 1)
    assert (m7.latency_count, m7.latency_sum_ms) == (1, 2000)
    assert len(m7.latency_hist) == LATENCY_BUCKETS and sum(m7.latency_hist) == 1
    sci = got[(D, "science", 7)]
    assert (sci.sessions, sci.duration_count, sci.rating_count) == (1, 0, 0)
    assert (sci.answer_revealed_count, sci.answer_checked_count, sci.tutor_replies_done) == (1, 1, 1)
    late = got[(D + timedelta(days=1), "mathematics", UNKNOWN_GRADE)]
    assert (late.sessions, late.student_messages, late.tutor_replies_done, late.latency_sum_ms) == (0, 1, 1, 900)

    students = rows("SELECT date, student_id, subject, sessions, duration_sum FROM rollup_student_day ORDER BY 1, 2, 3")
    a, b = ids["a"], ids["b"]
    assert [tuple(r) for r in students] == [
        (D, a, "mathematics", 1, 600),
        (D, a, "science", 1, 0),
        (D, b, "mathematics", 1, 1200),
        (D + timedelta(days=1), a, "mathematics", 1, 300),
    ]
    # distinct students are exact over a range: a was active on both days
    distinct = rows(
        "SELECT count(DISTINCT student_id) FROM rollup_student_day WHERE date BETWEEN :a AND :b",
        a=D,
        b=D + timedelta(days=1),
    )[0][0]
    summed = rows(
        "SELECT sum(total_users) FROM daily_stats WHERE date BETWEEN :a AND :b", a=D, b=D + timedelta(days=1)
    )[0][0]
    assert (distinct, summed) == (2, 3)

    topics = rows(
        "SELECT subject, grade_level, topic, sessions FROM rollup_topic_day WHERE date = :d ORDER BY 1, 2, 3", d=D
    )
    assert [tuple(r) for r in topics] == [
        ("mathematics", UNKNOWN_GRADE, "fractions", 1),
        ("mathematics", 7, "fractions", 1),
        ("mathematics", 7, "percentages", 1),
        ("science", 7, "cells", 1),
    ]
    hours = rows("SELECT date, subject, grade_level, hour, weekday, sessions FROM rollup_hour ORDER BY 1, 4")
    assert [tuple(r) for r in hours] == [
        (D, "mathematics", 7, 10, 1, 1),
        (D, "science", 7, 12, 1, 1),
        (D, "mathematics", UNKNOWN_GRADE, 23, 1, 1),
        (D + timedelta(days=1), "mathematics", 7, 9, 2, 1),
    ]


def test_rollups_add_up_to_daily_stats(app_ctx):
    from devtools.demo import seed_demo

    seed_demo(db.engine, students=40, days=4, seed=7, end=D, progress=False, now=utc(D, 23, 59))
    first = D - timedelta(days=3)
    rollup_range(first, D)
    for day in (first + timedelta(days=i) for i in range(4)):
        stats = daily(day)
        assert stats.total_sessions > 0
        totals = rows(
            """SELECT sum(sessions), sum(student_messages), sum(tutor_replies_failed), sum(duration_sum),
                      sum(duration_count), sum(rating_sum), sum(rating_count), sum(latency_count),
                      sum(tutor_replies_done) FROM rollup_daily WHERE date = :d""",
            d=day,
        )[0]
        assert totals[0] == stats.total_sessions
        assert totals[1] == stats.total_messages
        assert totals[2] == stats.ai_failures
        assert float(totals[3]) / float(totals[4]) == pytest.approx(stats.avg_duration)
        assert float(totals[5]) / float(totals[6]) == pytest.approx(stats.avg_satisfaction)
        assert totals[7] == totals[8]  # every done demo reply has a latency
        hists = [r[0] for r in rows("SELECT latency_hist FROM rollup_daily WHERE date = :d", d=day)]
        hist = np.sum(hists, axis=0)
        assert hist.sum() == totals[7]
        p50, p95 = latency_percentiles(hist, (0.5, 0.95))
        assert p50 == pytest.approx(stats.ai_latency_p50_ms, rel=0.02)
        assert p95 == pytest.approx(stats.ai_latency_p95_ms, rel=0.02)
        users = rows("SELECT count(DISTINCT student_id), sum(sessions) FROM rollup_student_day WHERE date = :d", d=day)
        assert tuple(users[0]) == (stats.total_users, stats.total_sessions)
        assert rows("SELECT sum(sessions) FROM rollup_hour WHERE date = :d", d=day)[0][0] == stats.total_sessions
        topics = rows(
            "SELECT topic, sum(sessions)::int AS n FROM rollup_topic_day WHERE date = :d GROUP BY topic "
            'ORDER BY n DESC, topic COLLATE "C" LIMIT 10',
            d=day,
        )
        assert [tuple(r) for r in topics] == popular_topics_sorted(stats.popular_topics)


# -- re-runs and catch-up -------------------------------------------------------------------------


def test_rerun_is_idempotent(app_ctx):
    build_two_days(Data())
    rollup_range(D, D + timedelta(days=2))
    before = snapshot()
    assert before["rollup_daily"] and len(before["daily_stats"]) == 3
    rollup_range(D, D + timedelta(days=2), chunk_days=1)
    assert aggregate_daily_stats(D.isoformat()) == [D]
    assert snapshot() == before  # same rows, same daily_stats ids

    # a reply arriving late is picked up by the rerun, and nothing is counted twice
    sid = rows("SELECT id FROM sessions WHERE created_at = :t", t=utc(D, 10))[0][0]
    Data().message(sid, utc(D, 10, 30), role="tutor", status="failed")
    aggregate_daily_stats(D)
    assert daily(D).ai_failures == 2
    assert rows("SELECT sum(tutor_replies_failed) FROM rollup_daily WHERE date = :d", d=D)[0][0] == 2


def test_catch_up_after_missed_nights(app_ctx):
    today = local_today()
    ago = [today - timedelta(days=i) for i in range(11)]  # ago[1] is yesterday
    data = Data()
    a = data.user()
    tz = ZoneInfo(app_ctx.config["ANALYTICS_TZ"])
    for i in (9, 6, 4, 3, 2, 1, 0):
        data.session(a, datetime.combine(ago[i], time(12), tzinfo=tz))

    # first run ever: from the first session's day through yesterday
    assert aggregate_daily_stats() == [ago[i] for i in range(9, 0, -1)]
    assert rows("SELECT max(date) FROM daily_stats")[0][0] == ago[1]  # today is not rolled up
    assert daily(ago[9]).total_sessions == 1 and daily(ago[8]).total_sessions == 0

    # the job missed some nights: rows from ago[5] on are gone
    with db.engine.begin() as conn:
        conn.execute(text("DELETE FROM daily_stats WHERE date >= :d"), {"d": ago[5]})
        conn.execute(text("DELETE FROM rollup_daily WHERE date >= :d"), {"d": ago[5]})
    assert aggregate_daily_stats() == [ago[i] for i in range(5, 0, -1)]
    assert [daily(ago[i]).total_sessions for i in range(5, 0, -1)] == [0, 1, 1, 1, 1]
    assert rows("SELECT sum(sessions) FROM rollup_daily WHERE date >= :d", d=ago[5])[0][0] == 4

    # nothing missed: yesterday and the day before are recomputed, older days are left alone
    with db.engine.begin() as conn:
        conn.execute(text("UPDATE daily_stats SET total_sessions = 99 WHERE date >= :d"), {"d": ago[3]})
    assert aggregate_daily_stats() == [ago[2], ago[1]]
    assert [daily(ago[i]).total_sessions for i in (3, 2, 1)] == [99, 1, 1]


def test_nothing_yet_still_writes_the_last_two_days(app_ctx):
    yesterday = local_today() - timedelta(days=1)
    assert aggregate_daily_stats() == [yesterday - timedelta(days=1), yesterday]
    assert daily(yesterday).total_sessions == 0 and daily(yesterday).popular_topics == {}


# -- time zones -----------------------------------------------------------------------------------

UTC_INSTANTS = [
    datetime(2024, 3, 5, 4, 59, tzinfo=UTC),  # New York: 23:59 on the 4th
    datetime(2024, 3, 5, 5, 0, tzinfo=UTC),  # New York: midnight of the 5th
    datetime(2024, 3, 5, 18, 29, tzinfo=UTC),  # Kolkata: 23:59 on the 5th
    datetime(2024, 3, 5, 18, 30, tzinfo=UTC),  # Kolkata: midnight of the 6th
    datetime(2024, 3, 6, 3, 30, tzinfo=UTC),
    datetime(2024, 3, 10, 6, 30, tzinfo=UTC),  # New York: 01:30 EST, just before the clocks go forward
    datetime(2024, 3, 11, 3, 30, tzinfo=UTC),  # New York: 23:30 EDT on the 10th (a 23-hour day)
    datetime(2024, 3, 11, 4, 0, tzinfo=UTC),  # New York: midnight of the 11th
]


@pytest.mark.parametrize("tz", ["America/New_York", "Asia/Kolkata"])
def test_local_days_and_hours(app_ctx, zone, tz):
    zone(tz)
    data = Data()
    a = data.user()
    for t in UTC_INSTANTS:
        sid = data.session(a, t, duration=60, first_message=False)
        data.message(sid, t + timedelta(minutes=1))
    local = [t.astimezone(ZoneInfo(tz)) for t in UTC_INSTANTS]
    first, last = date(2024, 3, 4), date(2024, 3, 11)
    rollup_range(first, last)

    expected_sessions = {d: sum(lt.date() == d for lt in local) for d in (first + timedelta(n) for n in range(8))}
    expected_messages = {
        d: sum((t + timedelta(minutes=1)).astimezone(ZoneInfo(tz)).date() == d for t in UTC_INSTANTS)
        for d in expected_sessions
    }
    got = {r.date: r for r in rows("SELECT * FROM daily_stats")}
    assert {d: got[d].total_sessions for d in expected_sessions} == expected_sessions
    assert {d: got[d].total_messages for d in expected_sessions} == expected_messages
    hours = sorted((r.date, r.hour, r.weekday) for r in rows("SELECT * FROM rollup_hour") for _ in range(r.sessions))
    assert hours == sorted((lt.date(), lt.hour, lt.weekday()) for lt in local)

    # one day alone gives the same figures as the range
    before = daily(date(2024, 3, 5))
    aggregate_daily_stats(date(2024, 3, 5))
    assert daily(date(2024, 3, 5)) == before


def test_local_day_bounds():
    assert local_day_bounds(date(2024, 3, 10), "America/New_York") == (
        datetime(2024, 3, 10, 5, tzinfo=UTC),
        datetime(2024, 3, 11, 4, tzinfo=UTC),  # 23 hours: the clocks go forward
    )
    assert local_day_bounds(date(2024, 3, 5), "Asia/Kolkata") == (
        datetime(2024, 3, 4, 18, 30, tzinfo=UTC),
        datetime(2024, 3, 5, 18, 30, tzinfo=UTC),
    )
    assert local_day_bounds(date(2024, 3, 5), "UTC") == (utc(D, 0), utc(D + timedelta(days=1), 0))


def test_skipped_midnight(app_ctx, zone):
    """Santiago skips 00:00-01:00 on 2024-09-08: an instant just before belongs to the 7th."""
    zone("America/Santiago")
    data = Data()
    a = data.user()
    late = data.session(a, datetime(2024, 9, 8, 3, 30, tzinfo=UTC), first_message=False)  # 23:30 -04 on the 7th
    data.message(late, datetime(2024, 9, 8, 3, 45, tzinfo=UTC))  # 23:45 -04 on the 7th
    data.message(late, datetime(2024, 9, 8, 4, 5, tzinfo=UTC))  # 01:05 -03 on the 8th
    data.session(a, datetime(2024, 9, 8, 4, 0, tzinfo=UTC))  # 01:00 -03 on the 8th, with its first message
    aggregate_daily_stats(date(2024, 9, 8))
    assert (daily(date(2024, 9, 8)).total_sessions, daily(date(2024, 9, 8)).total_messages) == (1, 2)
    rollup_range(date(2024, 9, 7), date(2024, 9, 8))
    assert (daily(date(2024, 9, 7)).total_sessions, daily(date(2024, 9, 8)).total_sessions) == (1, 1)
    assert (daily(date(2024, 9, 7)).total_messages, daily(date(2024, 9, 8)).total_messages) == (1, 2)
    assert rows("SELECT hour FROM rollup_hour WHERE date = '2024-09-08'")[0][0] == 1


# -- percentiles and topics -----------------------------------------------------------------------


def test_latency_percentiles_interpolate_linearly(app_ctx):
    data = Data()
    a = data.user()
    sid = data.session(a, utc(D, 8))
    for i, latency in enumerate([100, 400, 200, 1000]):
        data.message(sid, utc(D, 9, i), role="tutor", latency=latency)
    data.message(sid, utc(D, 9, 10), role="tutor", status="failed", latency=50)  # not a done reply
    data.message(sid, utc(D, 9, 11), role="student", latency=1)  # not a reply
    data.message(sid, utc(D + timedelta(days=1), 0, 1), role="tutor", latency=99_999)  # the next day
    aggregate_daily_stats(D)
    day = daily(D)
    assert day.ai_latency_p50_ms == float(np.percentile([100, 400, 200, 1000], 50)) == 300.0  # 200 + 0.5 * 200
    assert day.ai_latency_p95_ms == float(np.percentile([100, 400, 200, 1000], 95))
    assert day.ai_latency_p95_ms == pytest.approx(910.0, rel=1e-12)  # 400 + 0.85 * 600


def test_latency_percentiles_match_numpy_on_many_replies(app_ctx):
    rng = np.random.default_rng(3)
    latencies = rng.lognormal(np.log(1500), 0.6, 301).astype(int)
    data = Data()
    sid = data.session(data.user(), utc(D, 1))
    with db.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO messages (session_id, role, status, created_at, latency_ms) VALUES (:s, 'tutor', 'done', :c, :l)"
            ),
            [{"s": sid, "c": utc(D, 2) + timedelta(seconds=i), "l": int(v)} for i, v in enumerate(latencies)],
        )
    aggregate_daily_stats(D)
    day = daily(D)
    assert day.ai_latency_p50_ms == float(np.percentile(latencies, 50))
    assert day.ai_latency_p95_ms == float(np.percentile(latencies, 95))
    hist = rows("SELECT latency_hist FROM rollup_daily WHERE date = :d", d=D)[0][0]
    assert hist == latency_histogram(latencies).tolist()
    for q, estimate in zip((0.05, 0.5, 0.95, 0.99), latency_percentiles(hist, (0.05, 0.5, 0.95, 0.99)), strict=True):
        assert estimate == pytest.approx(np.percentile(latencies, q * 100), rel=0.02)


def test_latency_histogram_helpers():
    assert len(LATENCY_EDGES_MS) + 1 == LATENCY_BUCKETS
    assert np.allclose(LATENCY_EDGES_MS[1:] / LATENCY_EDGES_MS[:-1], 1.02)
    assert LATENCY_EDGES_MS[0] == 10 and LATENCY_EDGES_MS[-1] > 600_000
    assert latency_percentiles([], (0.5,)) == [None]
    hist = latency_histogram([5, 7_000_000])  # below the first edge, above the last
    assert (hist[0], hist[-1]) == (1, 1)
    low, high = latency_percentiles(hist, (0, 1))
    assert 0 <= low < 10 and high == LATENCY_EDGES_MS[-1]
    assert latency_percentiles(latency_histogram([1234]), (0.5,))[0] == pytest.approx(1234, rel=0.02)
    with pytest.raises(ValueError):
        latency_percentiles(hist, (95,))
    # the bound holds for every quantile of awkward samples
    rng = np.random.default_rng(11)
    for sample in (rng.integers(10, 600_000, 50), rng.lognormal(7, 1.5, 999).clip(10, 600_000), np.full(7, 321)):
        qs = np.linspace(0, 1, 41)
        for q, est in zip(qs, latency_percentiles(latency_histogram(sample), qs), strict=True):
            assert est == pytest.approx(np.percentile(sample, q * 100), rel=0.02)


def test_popular_topics_top_ten_with_ties(app_ctx):
    data = Data()
    a = data.user()
    # counts: zeta 4; alpha and beta 3 (tie: by name); then eight topics with 1 session each
    topics = ["zeta"] * 4 + ["beta"] * 3 + ["alpha"] * 3 + [f"t{i}" for i in (7, 3, 5, 1, 8, 2, 6, 4)]
    for i, topic in enumerate(topics):
        data.session(a, utc(D, 1) + timedelta(minutes=i), topics=(topic,))
    aggregate_daily_stats(D)
    popular = daily(D).popular_topics
    assert popular_topics_sorted(popular) == [
        ("zeta", 4), ("alpha", 3), ("beta", 3), ("t1", 1), ("t2", 1), ("t3", 1), ("t4", 1), ("t5", 1), ("t6", 1), ("t7", 1),
    ]  # fmt: skip
    assert popular_topics_sorted({"b": 2, "a": 2, "c": 5}) == [("c", 5), ("a", 2), ("b", 2)]
    # all topics, not just the top ten, are in rollup_topic_day
    assert rows("SELECT count(*) FROM rollup_topic_day WHERE date = :d", d=D)[0][0] == 11


# -- CLI ------------------------------------------------------------------------------------------


def invoke(app, *args: str):
    return app.test_cli_runner().invoke(analytics_cli, ["rollup", *args, "--quiet"])


def test_cli_rollup(app):
    with app.app_context():
        data = Data()
        a = data.user()
        data.session(a, utc(D, 10))
    result = invoke(app, "--date", D.isoformat())
    assert result.exit_code == 0, result.output
    assert f"rolled up 1 day(s), {D}" in result.output
    result = invoke(app, "--since", "2024-03-01", "--until", "2024-03-07")
    assert result.exit_code == 0, result.output
    with app.app_context():
        assert rows("SELECT count(*), sum(total_sessions) FROM daily_stats")[0] == (7, 1)
        assert rows("SELECT min(date), max(date) FROM daily_stats")[0] == (date(2024, 3, 1), date(2024, 3, 7))
        today = local_today()
    result = invoke(app, "--since", (today - timedelta(days=1)).isoformat(), "--until", "2999-01-01")
    assert result.exit_code == 0, result.output
    assert f"note: --until 2999-01-01 is in the future; rolling up through today ({today}" in result.output
    with app.app_context():
        assert rows("SELECT max(date) FROM daily_stats")[0][0] == today


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "give exactly one of --since"),
        (("--since", "2024-03-01", "--date", "2024-03-02"), "give exactly one of --since"),
        (("--until", "2024-03-01"), "give exactly one of --since"),
        (("--date", "2024-03-02", "--until", "2024-03-05"), "--until goes with --since"),
        (("--date", "2024-02-30"), "'2024-02-30' does not match the format"),
        (("--since", "yesterday"), "does not match the format"),
        (("--since", "2024-03-05", "--until", "2024-03-01"), "--until 2024-03-01 is before --since 2024-03-05"),
        (("--date", "2999-01-01"), "2999-01-01 is in the future"),
        (("--since", "2999-01-01"), "2999-01-01 is in the future"),
    ],
)
def test_cli_rejects_bad_dates(app, args, message):
    result = invoke(app, *args)
    assert result.exit_code == 2
    assert message in result.output
    with app.app_context():
        assert rows("SELECT count(*) FROM daily_stats")[0][0] == 0


# -- schema ---------------------------------------------------------------------------------------


def test_rollup_models_match_the_migration(app_ctx):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    with db.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True, "compare_server_default": True})
        diff = compare_metadata(context, db.metadata)
    ours = [d for d in diff if "rollup_" in repr(d)]
    assert ours == []
    assert set(ROLLUP_TABLES) <= set(db.metadata.tables)


def test_subjects_and_topics_outside_the_curriculum(app_ctx, monkeypatch):
    """The read sends known names as codes; a name first seen is learnt and the day read again."""
    import analytics.rollup as analytics

    # a process that has never seen these names (and one whose curriculum is already known)
    monkeypatch.setattr(analytics, "_SUBJECTS", analytics._Names())
    monkeypatch.setattr(analytics, "_TOPICS", analytics._Names())
    data = Data()
    a, b = data.user(grade=9), data.user(grade=None)
    history = data.session(
        a, utc(D, 9), subject="history", rating=5, topics=("roman empire", "fractions"), first_message=False
    )
    data.exchange(history, utc(D, 9, 5), latency=700)
    late = data.session(
        b, utc(D - timedelta(days=1), 23, 50), subject="latin", topics=("declensions",), first_message=False
    )
    data.exchange(late, utc(D, 0, 10), latency=900)  # its session started the day before
    data.session(b, utc(D, 11), subject="mathematics", topics=("fractions",))  # a question, no reply yet

    rollup_range(D, D)
    stats = daily(D)
    assert (stats.total_sessions, stats.total_users, stats.total_messages) == (2, 2, 3)
    assert popular_topics_sorted(stats.popular_topics) == [("fractions", 2), ("roman empire", 1)]
    assert (stats.ai_latency_p50_ms, stats.ai_latency_p95_ms) == (800, 890)
    by_key = {
        (r.subject, r.grade_level): (r.sessions, r.student_messages, r.latency_sum_ms)
        for r in rows("SELECT * FROM rollup_daily WHERE date = :d", d=D)
    }
    assert by_key == {
        ("history", 9): (1, 1, 700),
        ("latin", UNKNOWN_GRADE): (0, 1, 900),
        ("mathematics", UNKNOWN_GRADE): (1, 1, 0),
    }
    assert "history" in analytics._SUBJECTS.names and "declensions" not in analytics._TOPICS.names
    topics = rows("SELECT subject, topic, sessions FROM rollup_topic_day WHERE date = :d ORDER BY 1, 2", d=D)
    assert [tuple(r) for r in topics] == [
        ("history", "fractions", 1),
        ("history", "roman empire", 1),
        ("mathematics", "fractions", 1),
    ]


def test_binary_read_refuses_rows_it_cannot_map(app_ctx):
    """A NULL or a column of another width would shift every row after it: it is an error instead."""
    from analytics.rollup import _copy_binary

    cur = db.session.connection().connection.dbapi_connection.cursor()
    assert _copy_binary(cur, "SELECT 7::int4, 8::int8", {}, [("a", ">i4"), ("b", ">i8")])["b"].tolist() == [8]
    with pytest.raises(RuntimeError, match="NULL"):
        _copy_binary(cur, "SELECT x::int4 FROM (VALUES (1), (NULL), (3)) v(x)", {}, [("a", ">i4")])
    with pytest.raises(RuntimeError, match="NULL"):
        _copy_binary(cur, "SELECT 1::int2, 2::int2", {}, [("a", ">i4")])


def test_rolling_up_again_drops_a_deleted_students_id(app_ctx):
    """docs/ANALYTICS.md, Privacy: after `users delete`, rolling the days up again forgets the id."""
    from tutor.models import User
    from tutor.users import delete_user

    data = Data()
    a, b = data.user(), data.user()
    data.session(a, utc(D, 9), rating=4)
    data.session(b, utc(D, 10))
    rollup_range(D, D)
    ids = "SELECT array_agg(student_id ORDER BY student_id) FROM rollup_student_day WHERE date = :d"
    assert rows(ids, d=D)[0][0] == [a, b]
    delete_user(db.session.get(User, a))
    db.session.commit()
    assert rows(ids, d=D)[0][0] == [a, b]  # the rolled-up day keeps its totals
    rollup_range(D, D)
    assert rows(ids, d=D)[0][0] == [b]
    assert (daily(D).total_sessions, daily(D).avg_satisfaction) == (1, None)


def test_reply_costs_per_model(app_ctx, monkeypatch):
    """Cut-short replies, generation time and tokens per day, and replies and tokens per model
    (its model, else its provider), the same whether the day is live or rolled up."""
    import analytics.rollup as analytics
    from analytics.reads import STORE, Filters, load_view

    monkeypatch.setattr(analytics, "_MODELS", analytics._Names())  # a process that has seen no model yet
    data = Data()
    a, b = data.user(grade=7), data.user(grade=None)
    s1 = data.session(a, utc(D, 10), topics=("fractions",))
    reply = {"role": "tutor", "provider": "openai"}
    data.message(s1, utc(D, 10, 1))
    data.message(s1, utc(D, 10, 2), latency=1000, generation_ms=400, model="gpt-4o-mini", **reply,
                 prompt_tokens=100, completion_tokens=50)  # fmt: skip
    data.message(s1, utc(D, 10, 3), latency=9000, generation_ms=5000, model="gpt-4o-mini", **reply,
                 prompt_tokens=30, completion_tokens=800, cut_short=True, tokens_estimated=True)  # fmt: skip
    data.message(s1, utc(D, 10, 4), status="failed", model="gpt-4o-mini", **reply, prompt_tokens=99)
    s2 = data.session(b, utc(D, 11), subject="science")
    data.message(s2, utc(D, 11, 1), role="tutor", provider="builtin", latency=20, generation_ms=15,
                 prompt_tokens=0, completion_tokens=40, tokens_estimated=True)  # fmt: skip
    early = data.session(b, utc(D - timedelta(days=1), 23, 50))  # its reply comes on D
    data.message(early, utc(D, 0, 5), role="tutor", model="smollm2", latency=3000, generation_ms=2500,
                 prompt_tokens=700, completion_tokens=60)  # fmt: skip

    f = Filters(D, D)
    STORE.clear()
    live = load_view(f, today=D)
    assert live.live_days == [D]
    rollup_range(D - timedelta(days=1), D)
    STORE.clear()
    rolled = load_view(f, today=D + timedelta(days=1))
    assert rolled.live_days == []

    got = {
        (r.subject, r.grade_level): (r.replies_cut_short, r.generation_count, r.generation_sum_ms, r.prompt_tokens,
                                     r.completion_tokens)
        for r in rows("SELECT * FROM rollup_daily WHERE date = :d", d=D)
    }  # fmt: skip
    assert got == {
        ("mathematics", 7): (1, 2, 5400, 130, 850),
        ("mathematics", UNKNOWN_GRADE): (0, 1, 2500, 700, 60),
        ("science", UNKNOWN_GRADE): (0, 1, 15, 0, 40),
    }
    models = rows("SELECT subject, grade_level, model, replies, prompt_tokens, completion_tokens, tokens_estimated "
                  "FROM rollup_models WHERE date = :d ORDER BY 3", d=D)  # fmt: skip
    assert [tuple(r) for r in models] == [
        ("science", UNKNOWN_GRADE, "builtin", 1, 0, 40, 1),
        ("mathematics", 7, "gpt-4o-mini", 2, 130, 850, 1),
        ("mathematics", UNKNOWN_GRADE, "smollm2", 1, 700, 60, 0),
    ]
    for view in (live, rolled):
        day = view.daily.iloc[0]
        assert (day.cut_short_replies, day.prompt_tokens, day.completion_tokens) == (1, 830, 950)
        assert day.generation_mean_ms == pytest.approx((400 + 5000 + 15 + 2500) / 4)
        assert day.latency_mean_ms == pytest.approx((1000 + 9000 + 20 + 3000) / 4)
        assert view.models.to_dict("records") == [
            {"date": D, "model": "builtin", "replies": 1, "prompt_tokens": 0, "completion_tokens": 40,
             "tokens_estimated": 1},
            {"date": D, "model": "gpt-4o-mini", "replies": 2, "prompt_tokens": 130, "completion_tokens": 850,
             "tokens_estimated": 1},
            {"date": D, "model": "smollm2", "replies": 1, "prompt_tokens": 700, "completion_tokens": 60,
             "tokens_estimated": 0},
        ]  # fmt: skip
    science = load_view(Filters(D, D, subjects=("science",)), today=D + timedelta(days=1))
    assert science.models["model"].tolist() == ["builtin"]
    assert science.daily.iloc[0].completion_tokens == 40


@pytest.fixture
def green_psycopg(app_ctx):
    """psycopg2 waiting through a callback, as under the gevent web server (psycogreen), which
    refuses COPY; the pool is emptied around it so that every connection is made in that mode."""
    import psycopg2.extensions
    import psycopg2.extras

    db.engine.dispose()
    psycopg2.extensions.set_wait_callback(psycopg2.extras.wait_select)
    try:
        yield
    finally:
        psycopg2.extensions.set_wait_callback(None)
        db.engine.dispose()


def test_the_dashboard_reads_without_copy_under_gevent(app_ctx, request):
    """Rolled-up days (CSV COPY) and live days (binary COPY) read the same through a plain query
    when psycopg2 is green, as it is in the gevent web workers."""
    from analytics.reads import STORE, Filters, load_view, students_frame

    data = Data()
    build_two_days(data)
    s = data.session(data.user(grade=5), utc(D + timedelta(days=2), 8), topics=("fractions",))
    data.exchange(s, utc(D + timedelta(days=2), 8, 1), latency=1234, model="m1", prompt_tokens=5)
    rollup_range(D, D + timedelta(days=1))  # D + 2 stays live
    f = Filters(D - timedelta(days=1), D + timedelta(days=2))

    def views():
        STORE.clear()
        view = load_view(f, today=D + timedelta(days=2))
        return view, students_frame(f, today=D + timedelta(days=2))

    plain, plain_students = views()
    with pytest.raises(Exception, match="asynchronous"):  # what COPY does when green
        request.getfixturevalue("green_psycopg")
        with db.engine.connect() as conn:
            conn.connection.dbapi_connection.cursor().copy_expert("COPY (SELECT 1) TO STDOUT", io.BytesIO())
    green, green_students = views()
    assert plain.live_days == green.live_days == [D + timedelta(days=2)]
    pd.testing.assert_frame_equal(plain.daily, green.daily)
    pd.testing.assert_frame_equal(plain.kpis, green.kpis)
    pd.testing.assert_frame_equal(plain.topics, green.topics)
    pd.testing.assert_frame_equal(plain.models, green.models)
    pd.testing.assert_frame_equal(plain_students, green_students)
    assert plain.total_sessions == 5


def test_sessions_where_the_student_said_nothing_are_not_counted(app_ctx):
    """Opening the chat page starts a session: until the student writes, analytics ignore it
    (rolled-up days, today live, the session list, a student's timeline and retention)."""
    from analytics.reads import STORE, Filters, load_view, recent_sessions, retention_frame, student_timeline

    data = Data()
    a, b = data.user(), data.user()
    spoke = data.session(a, utc(D, 9), topics=("fractions",))
    data.session(a, utc(D, 10), topics=("cells",), first_message=False)  # opened, left
    data.session(b, utc(D, 11), first_message=False)  # b never wrote anything
    greeted = data.session(b, utc(D, 12), first_message=False)
    data.message(greeted, utc(D, 12, 1), role="tutor")  # a tutor message alone does not count

    f = Filters(D, D)
    STORE.clear()
    live = load_view(f, today=D)
    rollup_range(D, D)
    STORE.clear()
    rolled = load_view(f, today=D + timedelta(days=1))
    for view in (live, rolled):
        assert view.total_sessions == 1 and view.kpis.loc["active_students", "current"] == 1
        assert view.topics["topic"].tolist() == ["fractions"]
    assert daily(D).total_sessions == 1 and daily(D).total_users == 1
    listed = recent_sessions(f)
    assert listed["session_id"].tolist() == [str(spoke)]
    assert len(student_timeline(b)["weekly"]) == 0
    retention = retention_frame(Filters(D, D + timedelta(days=6)), today=D + timedelta(days=7))
    assert len(retention) and set(retention["cohort_size"]) == {1}  # a alone: b only opened pages


def test_thumbs_and_the_share_of_replies_given_away_or_not_judged(app_ctx):
    """Thumbs on tutor replies are counted per day; answers given away are a share of every
    finished reply, with the share the guardrail could not judge beside it."""
    from analytics.reads import STORE, Filters, load_view

    data = Data()
    s = data.session(data.user(), utc(D, 9))
    data.message(s, utc(D, 9, 1), role="tutor", latency=100, revealed=True, feedback=-1)
    data.message(s, utc(D, 9, 2), role="tutor", latency=100, revealed=False, feedback=1)
    data.message(s, utc(D, 9, 3), role="tutor", latency=100, revealed=None, feedback=1)
    data.message(s, utc(D, 9, 4), role="tutor", latency=100, revealed=None)
    data.message(s, utc(D, 9, 5), role="tutor", status="failed", feedback=-1)
    rollup_range(D, D)
    row = rows("SELECT thumbs_up, thumbs_down FROM rollup_daily WHERE date = :d", d=D)[0]
    assert tuple(row) == (2, 2)
    STORE.clear()
    day = load_view(Filters(D, D), today=D + timedelta(days=1)).daily.iloc[0]
    assert (day.thumbs_up, day.thumbs_down) == (2, 2)
    assert day.answer_revealed_share == pytest.approx(25.0)  # 1 of 4 finished replies
    assert day.answer_unjudged_share == pytest.approx(50.0)  # 2 of 4 had no verdict


def test_a_view_of_some_students_is_exact_and_reads_without_copy_under_gevent(app_ctx, request):
    """A teacher's view (``Filters.students``) is computed from those students' raw rows: for every
    student it equals the rollups' view, for one student it holds only theirs, and it reads the
    same with psycopg2 green (no COPY)."""
    from analytics.reads import STORE, Filters, load_view, retention_frame, students_frame

    data = Data()
    ids = build_two_days(data)
    s = data.session(data.user(grade=5), utc(D + timedelta(days=2), 8), topics=("fractions",))
    data.exchange(s, utc(D + timedelta(days=2), 8, 1), latency=1234, model="m1", prompt_tokens=5)
    rollup_range(D, D + timedelta(days=1))  # D + 2 stays live
    today = D + timedelta(days=2)
    everyone = Filters(D - timedelta(days=1), today)
    all_ids = tuple(db.session.execute(text("SELECT id FROM users")).scalars())
    STORE.clear()
    whole = load_view(everyone, today=today)
    scoped_all = load_view(Filters(everyone.start, everyone.end, students=all_ids), today=today)
    for frame in ("daily", "kpis", "topics", "heatmap", "models", "subjects", "grades"):
        pd.testing.assert_frame_equal(getattr(whole, frame), getattr(scoped_all, frame), check_dtype=False)

    only_a = Filters(everyone.start, everyone.end, students=(ids["a"],))

    def views():
        STORE.clear()
        return (
            load_view(only_a, today=today),
            students_frame(only_a, today=today),
            retention_frame(only_a, today=today),
        )

    plain, plain_students, plain_retention = views()
    assert plain.total_sessions == 3  # a's two sessions on D and one on D + 1, nobody else's
    assert plain.kpis.loc["active_students", "current"] == 1
    assert plain_students["student_id"].tolist() == [ids["a"]]
    assert whole.daily["tutor_replies"].sum() == 6  # a's 3 (one failed), b's 2 across midnight, the third's 1
    assert plain.daily["tutor_replies"].sum() == 3 and plain.daily["failed_replies"].sum() == 1
    assert STORE.scoped_reads >= 1
    nobody = load_view(Filters(everyone.start, everyone.end, students=()), today=today)
    assert nobody.total_sessions == 0 and nobody.data_start is None
    assert students_frame(Filters(everyone.start, everyone.end, students=()), today=today).empty

    with pytest.raises(Exception, match="asynchronous"):  # what COPY does when green
        request.getfixturevalue("green_psycopg")
        with db.engine.connect() as conn:
            conn.connection.dbapi_connection.cursor().copy_expert("COPY (SELECT 1) TO STDOUT", io.BytesIO())
    green, green_students, green_retention = views()
    for frame in ("daily", "kpis", "topics", "models"):
        pd.testing.assert_frame_equal(getattr(plain, frame), getattr(green, frame))
    pd.testing.assert_frame_equal(plain_students, green_students)
    pd.testing.assert_frame_equal(plain_retention, green_retention)


def test_a_view_of_some_students_keeps_its_rolled_up_days_until_they_are_rewritten(app_ctx):
    from analytics.reads import STORE, Filters, load_view

    data = Data()
    ids = build_two_days(data)
    rollup_range(D, D + timedelta(days=1))
    today = D + timedelta(days=2)
    f = Filters(D, today, students=(ids["a"],))
    STORE.clear()
    first = load_view(f, today=today)
    reads = STORE.scoped_reads
    again = load_view(f, today=today)  # the rolled-up part is kept; today (ANALYTICS_LIVE_SECONDS 0) is not
    assert STORE.scoped_reads == reads + 1  # today only (the previous range is all rolled up)
    pd.testing.assert_frame_equal(first.daily, again.daily)
    data.session(ids["a"], utc(D, 15), duration=60, topics=("fractions",))  # a late row for D
    assert load_view(f, today=today).total_sessions == first.total_sessions  # D is as rolled up
    rollup_range(D, D)  # the nightly job rewrites D: the view reads D again
    assert load_view(f, today=today).total_sessions == first.total_sessions + 1
