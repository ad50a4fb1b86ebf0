"""The analytics dashboard: data functions, figure builders, callbacks (directly and over HTTP), CSV export.

Data is hand-built with plain SQL; past days are rolled up with the nightly job's
``rollup_range`` and "today" is a parameter, so every test is deterministic. Where it matters the
dashboard's numbers are compared with a brute-force computation from the raw rows.
"""

from __future__ import annotations

import base64
import io
import json
import re
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import dash
import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest
from sqlalchemy import text

from analytics import reads as data
from analytics.rollup import rollup_range
from analytics.tables import LATENCY_BUCKETS, ROLLUP_TABLES, UNKNOWN_GRADE, latency_percentiles
from dashboard import callbacks, figures, layout
from foundation.extensions import db
from tests.conftest import make_student
from tests.rows import Rows

UTC_TZ = ZoneInfo("UTC")
TODAY = date(2025, 3, 12)  # a Wednesday


@pytest.fixture(autouse=True)
def _clean(app):
    """The shared fixture empties the core tables; the rollups and the dashboard's memory are emptied here."""
    with app.app_context(), db.engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {', '.join(ROLLUP_TABLES)}"))
    data.clear_cache()
    yield


def at(day: date, hour: int, minute: int = 0, tz: ZoneInfo = UTC_TZ) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=tz)


def sql(statement: str, **params) -> None:
    with db.engine.begin() as conn:
        conn.execute(text(statement), params)


def build_history(rows: Rows, today: date = TODAY, tz: ZoneInfo = UTC_TZ) -> dict[str, int]:
    """Ten days of activity ending ``today`` (local days in ``tz``), with the edge cases that matter.

    Student ``a`` (grade 7) has sessions in two subjects on several days, including today;
    ``b`` (no grade) has a session that starts before midnight and whose reply comes after it;
    ``c`` (grade 9) is active only today. Day ``today - 5`` has no sessions at all.
    """
    a, b, c = rows.user(7, "Ada"), rows.user(None, "Ben"), rows.user(9, "Cleo")
    for back in range(9, -1, -1):
        day = today - timedelta(days=back)
        if back == 5:
            continue
        s = rows.session(
            a, at(day, 9, tz=tz), rating=4 if back % 2 else None, topics=("fractions",), first_message=False
        )
        rows.exchange(s, at(day, 9, 1, tz=tz), latency=1000 + 100 * back, revealed=back % 3 == 0)
        if back % 2 == 0:
            s = rows.session(
                a,
                at(day, 15, tz=tz),
                subject="science",
                duration=1200,
                rating=5,
                topics=("cells",),
                first_message=False,
            )
            rows.exchange(s, at(day, 15, 2, tz=tz), latency=2500)
            rows.message(s, at(day, 15, 5, tz=tz), role="tutor", status="failed")
    # across midnight: starts yesterday 23:50, the reply lands today 00:05
    yesterday = today - timedelta(days=1)
    s = rows.session(
        b, at(yesterday, 23, 50, tz=tz), rating=2, topics=("fractions", "percentages"), first_message=False
    )
    rows.message(s, at(yesterday, 23, 55, tz=tz))
    rows.message(s, at(today, 0, 5, tz=tz), role="tutor", latency=4000, revealed=True)
    # today only: an active session (no duration yet) and a still-streaming reply
    s = rows.session(
        c, at(today, 8, 30, tz=tz), subject="english", duration=None, topics=("essay structure",), first_message=False
    )
    rows.message(s, at(today, 8, 31, tz=tz))
    rows.message(s, at(today, 8, 32, tz=tz), role="tutor", status="streaming")
    return {"a": a, "b": b, "c": c}


def roll_up(first: date, last: date, tz: ZoneInfo = UTC_TZ) -> None:
    rollup_range(first, last, tz=tz)


def reference(first: date, last: date, tz: ZoneInfo = UTC_TZ, subjects=(), grades=()) -> pd.DataFrame:
    """Brute force from the raw rows: per local day sessions, students, durations, ratings, replies."""
    with db.engine.connect() as conn:
        s = pd.read_sql(
            text(
                "SELECT s.created_at, s.student_id, s.subject, COALESCE(u.grade_level, -1) AS grade, "
                "s.duration_seconds, s.satisfaction FROM sessions s JOIN users u ON u.id = s.student_id "
                "WHERE EXISTS (SELECT 1 FROM messages m WHERE m.session_id = s.id AND m.role = 'student')"
            ),
            conn,
        )
        m = pd.read_sql(
            text(
                "SELECT m.created_at, m.role, m.status, m.latency_ms, m.answer_revealed, s.subject, "
                "COALESCE(u.grade_level, -1) AS grade FROM messages m JOIN sessions s ON s.id = m.session_id "
                "JOIN users u ON u.id = s.student_id"
            ),
            conn,
        )
    for frame in (s, m):
        frame["day"] = pd.to_datetime(frame["created_at"], utc=True).dt.tz_convert(tz).dt.date
    if subjects:
        s, m = s[s["subject"].isin(subjects)], m[m["subject"].isin(subjects)]
    if grades:
        s, m = s[s["grade"].isin(grades)], m[m["grade"].isin(grades)]
    out = []
    for i in range((last - first).days + 1):
        day = first + timedelta(days=i)
        ds, dm = s[s["day"] == day], m[m["day"] == day]
        tutor = dm[dm["role"] == "tutor"]
        done = tutor[tutor["status"] == "done"]
        latencies = done["latency_ms"].dropna().to_numpy(float)
        out.append(
            {
                "date": day,
                "sessions": len(ds),
                "active_students": ds["student_id"].nunique(),
                "avg_duration_min": ds["duration_seconds"].dropna().mean() / 60,
                "avg_satisfaction": ds["satisfaction"].dropna().mean(),
                "ratings": int(ds["satisfaction"].notna().sum()),
                "student_messages": int((dm["role"] == "student").sum()),
                "tutor_replies": len(done) + int((tutor["status"] == "failed").sum()),
                "failed_replies": int((tutor["status"] == "failed").sum()),
                "latency_p50_ms": np.percentile(latencies, 50) if len(latencies) else np.nan,
                "latency_p95_ms": np.percentile(latencies, 95) if len(latencies) else np.nan,
                "students": set(ds["student_id"]),
            }
        )
    return pd.DataFrame(out)


def assert_matches_reference(daily: pd.DataFrame, ref: pd.DataFrame) -> None:
    assert list(daily["date"]) == list(ref["date"])
    for column in ("sessions", "active_students", "ratings", "student_messages", "tutor_replies", "failed_replies"):
        assert daily[column].tolist() == ref[column].tolist(), column
    for column in ("avg_duration_min", "avg_satisfaction"):
        np.testing.assert_allclose(
            daily[column].to_numpy(float), ref[column].to_numpy(float), rtol=1e-9, err_msg=column
        )
    for column in ("latency_p50_ms", "latency_p95_ms"):  # from histograms: within 2 %
        np.testing.assert_allclose(
            daily[column].to_numpy(float), ref[column].to_numpy(float), rtol=0.02, err_msg=column
        )


# ------------------------------------------------------------------------------------ ranges and filters


def test_resolve_range_presets_and_custom():
    assert data.resolve_range("week", today=TODAY) == (TODAY - timedelta(days=6), TODAY)
    assert data.resolve_range("month", today=TODAY) == (TODAY - timedelta(days=29), TODAY)
    assert data.resolve_range("quarter", today=TODAY) == (TODAY - timedelta(days=89), TODAY)
    assert data.resolve_range("custom", "2025-01-10", "2025-01-03", today=TODAY) == (
        date(2025, 1, 3),
        date(2025, 1, 10),
    )
    assert data.resolve_range("custom", "2025-01-03T00:00:00", "2025-01-03", today=TODAY) == (date(2025, 1, 3),) * 2
    # a custom range without both dates falls back to the default preset
    assert data.resolve_range("custom", None, "2025-01-03", today=TODAY) == data.resolve_range("month", today=TODAY)
    assert data.resolve_range(None, "junk", "2025-01-03", today=TODAY) == data.resolve_range("month", today=TODAY)
    long = data.resolve_range("custom", "1990-01-01", "2025-01-01", today=TODAY)
    assert (long[1] - long[0]).days + 1 == data.MAX_RANGE_DAYS


def test_filters_from_controls_and_previous_range():
    f = data.Filters.from_controls("week", subjects=["science", "mathematics"], grades=["7", -1, "x"], today=TODAY)
    assert (f.start, f.end, f.n_days) == (TODAY - timedelta(days=6), TODAY, 7)
    assert f.subjects == ("mathematics", "science") and f.grades == (-1, 7)
    prev = f.previous()
    assert (prev.start, prev.end) == (TODAY - timedelta(days=13), TODAY - timedelta(days=7))
    assert prev.subjects == f.subjects and prev.grades == f.grades
    with pytest.raises(ValueError):
        data.Filters(TODAY, TODAY - timedelta(days=1))


# ------------------------------------------------------------------------------------ the view


def test_today_is_live_and_past_days_come_from_the_rollups(app_ctx):
    rows = Rows()
    build_history(rows)
    roll_up(TODAY - timedelta(days=30), TODAY - timedelta(days=1))
    f = data.Filters(TODAY - timedelta(days=9), TODAY)
    view = data.load_view(f, today=TODAY, tz=UTC_TZ)
    assert view.rolled_through == TODAY - timedelta(days=1)
    assert view.live_days == [TODAY]
    assert view.daily["live"].tolist() == [False] * 9 + [True]
    assert_matches_reference(view.daily, reference(f.start, f.end))

    # The rollups really are read for past days: change a rolled-up day's raw rows without
    # rolling up again and the view does not move; today's new rows show at once.
    sql("DELETE FROM sessions WHERE created_at < :d", d=at(TODAY - timedelta(days=1), 0))
    rows.session(rows.user(), at(TODAY, 11))
    again = data.load_view(f, today=TODAY, tz=UTC_TZ).daily
    assert again["sessions"].tolist()[:9] == view.daily["sessions"].tolist()[:9]
    assert again["sessions"].iloc[-1] == view.daily["sessions"].iloc[-1] + 1


def test_todays_live_figures_are_shared_for_a_few_seconds(app_ctx, monkeypatch):
    """ANALYTICS_LIVE_SECONDS: the view, the student table and retention share one computation of
    today; after that many seconds (or with 0) today's new rows show."""
    rows = Rows()
    build_history(rows)
    roll_up(TODAY - timedelta(days=30), TODAY - timedelta(days=1))
    f = data.Filters(TODAY - timedelta(days=9), TODAY)
    store = data.DayStore()
    clock = [1000.0]
    monkeypatch.setattr(data.time, "monotonic", lambda: clock[0])
    app_ctx.config["ANALYTICS_LIVE_SECONDS"] = 5
    try:
        first = data.load_view(f, today=TODAY, tz=UTC_TZ, store=store)
        data.students_frame(f, today=TODAY, tz=UTC_TZ, store=store)
        data.retention_frame(f, today=TODAY, tz=UTC_TZ, store=store)
        assert store.live_reads == 1
        rows.session(rows.user(), at(TODAY, 11))
        clock[0] += 4.9
        assert data.load_view(f, today=TODAY, tz=UTC_TZ, store=store).daily.equals(first.daily)
        clock[0] += 0.2
        later = data.load_view(f, today=TODAY, tz=UTC_TZ, store=store)
        assert later.daily["sessions"].iloc[-1] == first.daily["sessions"].iloc[-1] + 1
        assert store.live_reads == 2
        app_ctx.config["ANALYTICS_LIVE_SECONDS"] = 0
        data.load_view(f, today=TODAY, tz=UTC_TZ, store=store)
        data.load_view(f, today=TODAY, tz=UTC_TZ, store=store)
        assert store.live_reads == 4
    finally:
        app_ctx.config["ANALYTICS_LIVE_SECONDS"] = 0


def test_live_and_rolled_up_days_give_the_same_figures(app_ctx):
    """Every figure of a day is the same whether it comes from the rollups or from the raw rows."""
    rows = Rows()
    build_history(rows)
    f = data.Filters(TODAY - timedelta(days=9), TODAY, subjects=(), grades=())
    everything_live = data.load_view(f, today=TODAY, tz=UTC_TZ)  # nothing rolled up yet
    assert everything_live.rolled_through is None and len(everything_live.live_days) == 10
    roll_up(TODAY - timedelta(days=9), TODAY - timedelta(days=1))
    mixed = data.load_view(f, today=TODAY, tz=UTC_TZ)
    assert mixed.live_days == [TODAY]
    pd.testing.assert_frame_equal(everything_live.daily.drop(columns="live"), mixed.daily.drop(columns="live"))
    pd.testing.assert_frame_equal(everything_live.kpis, mixed.kpis)
    pd.testing.assert_frame_equal(everything_live.topics, mixed.topics)
    pd.testing.assert_frame_equal(everything_live.heatmap, mixed.heatmap)
    pd.testing.assert_frame_equal(everything_live.subjects, mixed.subjects)
    pd.testing.assert_frame_equal(everything_live.grades, mixed.grades)


def test_a_late_nightly_rollup_leaves_the_missing_days_live(app_ctx):
    rows = Rows()
    build_history(rows)
    roll_up(TODAY - timedelta(days=9), TODAY - timedelta(days=4))  # three nights missed
    f = data.Filters(TODAY - timedelta(days=9), TODAY)
    view = data.load_view(f, today=TODAY, tz=UTC_TZ)
    assert view.rolled_through == TODAY - timedelta(days=4)
    assert view.live_days == [TODAY - timedelta(days=i) for i in (3, 2, 1, 0)]
    assert_matches_reference(view.daily, reference(f.start, f.end))
    assert callbacks._note(view).endswith("The nightly rollup is 3 days behind: check the scheduler.")


@pytest.mark.parametrize("tz_name", ["America/New_York", "Asia/Kolkata"])
def test_local_days_in_another_time_zone(app_ctx, tz_name):
    tz = ZoneInfo(tz_name)
    rows = Rows()
    build_history(rows, tz=tz)
    roll_up(TODAY - timedelta(days=9), TODAY - timedelta(days=1), tz=tz)
    f = data.Filters(TODAY - timedelta(days=9), TODAY)
    view = data.load_view(f, today=TODAY, tz=tz)
    assert_matches_reference(view.daily, reference(f.start, f.end, tz=tz))
    # the session at 23:50 local time counts yesterday, its reply at 00:05 today
    yesterday = view.daily.set_index("date").loc[TODAY - timedelta(days=1)]
    assert yesterday["student_messages"] == 2 and yesterday["sessions"] == 2
    # hours are local: sessions at 09:00, 15:00, 23:50 and 08:30 local time
    hours = view.heatmap[view.heatmap["sessions"] > 0]["hour"].unique().tolist()
    assert sorted(hours) == [8, 9, 15, 23]


def test_range_boundaries(app_ctx):
    rows = Rows()
    a = rows.user()
    first, last = TODAY - timedelta(days=6), TODAY
    rows.session(a, at(first, 0, 0))  # first instant of the range
    rows.session(a, at(first - timedelta(days=1), 23, 59))  # just before
    rows.session(a, at(last, 23, 59))  # last minute of today
    rows.session(a, at(last + timedelta(days=1), 0, 0))  # tomorrow: not in the range
    roll_up(first - timedelta(days=7), last - timedelta(days=1))
    view = data.load_view(data.Filters(first, last), today=TODAY, tz=UTC_TZ)
    assert len(view.daily) == 7 and view.daily["date"].iloc[0] == first and view.daily["date"].iloc[-1] == last
    assert view.daily["sessions"].tolist() == [1, 0, 0, 0, 0, 0, 1]
    assert view.kpis.loc["sessions", "previous"] == 1  # the one just before the range


def test_filters_by_subject_and_grade(app_ctx):
    rows = Rows()
    build_history(rows)
    roll_up(TODAY - timedelta(days=30), TODAY - timedelta(days=1))
    first = TODAY - timedelta(days=9)
    for subjects, grades in [(("science",), ()), ((), (7,)), ((), (UNKNOWN_GRADE,)), (("mathematics",), (9, -1))]:
        f = data.Filters(first, TODAY, subjects, grades)
        view = data.load_view(f, today=TODAY, tz=UTC_TZ)
        assert_matches_reference(view.daily, reference(first, TODAY, subjects=subjects, grades=grades))
    science = data.load_view(data.Filters(first, TODAY, ("science",)), today=TODAY, tz=UTC_TZ)
    assert science.topics["topic"].tolist() == ["cells"]
    assert science.subjects["subject"].tolist() == ["science"]
    nobody = data.load_view(data.Filters(first, TODAY, ("history",)), today=TODAY, tz=UTC_TZ)
    assert nobody.total_sessions == 0 and nobody.kpis.loc["active_students", "current"] == 0


def test_distinct_students_are_never_summed(app_ctx):
    """One student in two subjects on many days, rolled up and live, is one active student."""
    rows = Rows()
    ids = build_history(rows)
    roll_up(TODAY - timedelta(days=30), TODAY - timedelta(days=1))
    view = data.load_view(data.Filters(TODAY - timedelta(days=9), TODAY), today=TODAY, tz=UTC_TZ)
    assert view.kpis.loc["active_students", "current"] == 3  # a, b and c
    assert view.daily["active_students"].sum() > 3  # per day they add up to more
    by_subject = view.subjects.set_index("subject")["active_students"].to_dict()
    assert by_subject == {"mathematics": 2, "science": 1, "english": 1}
    by_grade = view.grades.set_index("grade_level")["active_students"].to_dict()
    assert by_grade == {-1: 1, 7: 1, 9: 1}
    # a student active yesterday (rolled up) and today (live) counts once
    two_days = data.load_view(data.Filters(TODAY - timedelta(days=1), TODAY), today=TODAY, tz=UTC_TZ)
    assert two_days.kpis.loc["active_students", "current"] == 3
    assert two_days.daily["active_students"].tolist() == [2, 2]  # yesterday a and b, today a and c
    students = data.students_frame(data.Filters(TODAY - timedelta(days=1), TODAY), today=TODAY, tz=UTC_TZ)
    assert sorted(students["student_id"]) == sorted(ids.values())


def test_kpis_and_their_change_against_the_previous_range(app_ctx):
    rows = Rows()
    a, b = rows.user(), rows.user()
    # previous week: 2 sessions (a, b), 20 and 10 minutes, ratings 2 and 4; one reply failed of two
    prev = TODAY - timedelta(days=10)
    s = rows.session(a, at(prev, 10), duration=1200, rating=2)
    rows.exchange(s, at(prev, 10, 1), latency=1000)
    s = rows.session(b, at(prev, 11), duration=600, rating=4)
    rows.message(s, at(prev, 11, 1), role="tutor", status="failed")
    # this week: 4 sessions of a, 15 minutes each, rated 5; three replies, none failed
    for back in (3, 2, 1, 0):
        s = rows.session(a, at(TODAY - timedelta(days=back), 9), duration=900, rating=5)
        if back:
            rows.exchange(s, at(TODAY - timedelta(days=back), 9, 1), latency=2000)
    roll_up(TODAY - timedelta(days=20), TODAY - timedelta(days=1))
    k = data.load_view(data.Filters.from_controls("week", today=TODAY), today=TODAY, tz=UTC_TZ).kpis
    assert (k.loc["sessions", "current"], k.loc["sessions", "previous"]) == (4, 2)
    assert k.loc["sessions", "change"] == 2 and k.loc["sessions", "change_pct"] == pytest.approx(100)
    assert (k.loc["active_students", "current"], k.loc["active_students", "previous"]) == (1, 2)
    assert k.loc["active_students", "change_pct"] == pytest.approx(-50)
    assert k.loc["avg_duration_min", "current"] == pytest.approx(15)
    assert k.loc["avg_duration_min", "previous"] == pytest.approx(15)
    assert k.loc["avg_duration_min", "change"] == pytest.approx(0)
    assert (k.loc["avg_satisfaction", "current"], k.loc["avg_satisfaction", "previous"]) == (5, 3)
    assert (k.loc["tutor_replies", "current"], k.loc["tutor_replies", "previous"]) == (3, 2)
    assert k.loc["failure_rate", "current"] == 0 and k.loc["failure_rate", "previous"] == pytest.approx(50)
    assert k.loc["failure_rate", "change"] == pytest.approx(-50)
    assert k.loc["latency_p95_ms", "current"] == pytest.approx(2000, rel=0.02)
    assert k.loc["latency_p95_ms", "previous"] == pytest.approx(1000, rel=0.02)
    assert k.loc["latency_p95_ms", "change_pct"] == pytest.approx(100, rel=0.05)
    # the cards say so, with the right tone
    cards = {c.id: c for c in layout.kpi_cards(k, 7)}
    sessions_card = cards["kpi-sessions"].children
    assert sessions_card[1].children == "4" and sessions_card[2].children[0].children == "+100.0 %"
    assert "good" in sessions_card[2].children[0].className
    failure = cards["kpi-failure-rate"].children[2].children[0]
    assert failure.children == "-50.00 pp" and "good" in failure.className  # fewer failures are good
    latency = cards["kpi-latency-p95-ms"].children[2].children[0]
    assert "bad" in latency.className  # slower replies are bad
    duration = cards["kpi-avg-duration-min"].children[2].children
    assert duration[0].children == "no change" and "flat" in duration[0].className
    assert cards["kpi-sessions"].href == "#sessions-chart-card"  # each card leads to its chart or list
    assert {c.href for c in cards.values()} <= {f"#{target}" for target in layout.KPI_TARGETS.values()}


def test_comparisons_with_a_partial_or_empty_previous_range(app_ctx):
    """A previous range that starts before the first session is marked partial; one wholly before
    it has no earlier data; an empty range against an empty previous one shows no change."""
    rows = Rows()
    a = rows.user()
    first_day = TODAY - timedelta(days=9)
    for back in range(10):
        rows.session(a, at(TODAY - timedelta(days=back), 9), duration=600)
    week = data.load_view(data.Filters.from_controls("week", today=TODAY), today=TODAY, tz=UTC_TZ)
    assert week.data_start == first_day and week.previous_covered == 3  # 3 of the 7 days before have data
    foot = {
        c.id: c.children[2].children for c in layout.kpi_cards(week.kpis, 7, week.previous_covered, week.data_start)
    }
    assert foot["kpi-sessions"][1].children == " vs partial previous"
    card = layout.kpi_cards(week.kpis, 7, week.previous_covered, week.data_start)[0]
    assert f"Only 3 of those 7 days are after the first session ({first_day:%d %b %Y})" in card.title

    month = data.load_view(data.Filters.from_controls("month", today=TODAY), today=TODAY, tz=UTC_TZ)
    assert month.previous_covered == 0
    for c in layout.kpi_cards(month.kpis, 30, month.previous_covered, month.data_start):
        change, vs = c.children[2].children
        assert (change.children, vs.children) == ("no earlier data", "")

    empty = data.Filters(TODAY - timedelta(days=400), TODAY - timedelta(days=391))  # before any data
    view = data.load_view(empty, today=TODAY, tz=UTC_TZ)
    assert view.previous_covered == 0 and view.total_sessions == 0
    nothing = data.load_view(data.Filters(first_day, TODAY), today=TODAY, tz=UTC_TZ)
    assert nothing.previous_covered == 0
    zero = {"change": 0, "change_pct": None, "better": "up"}
    assert layout._fmt_change(zero, "sessions") == ("no change", "flat")  # 0 vs 0 is not "new"


def test_the_view_round_trips_through_the_url(app_ctx):
    today = data.analytics_today()
    assert callbacks.view_query("week", "x", "y", [], []) == "?range=week"
    query = callbacks.view_query("custom", "2026-01-01", "2026-01-10T00:00:00", ["science", "mathematics"], [7, -1])
    assert query == "?range=custom&start=2026-01-01&end=2026-01-10&subject=science&subject=mathematics&grade=7&grade=-1"
    assert callbacks.controls_from_query(query, today) == (
        "custom", "2026-01-01", "2026-01-10", ["science", "mathematics"], [7, -1], []
    )  # fmt: skip
    with_class = callbacks.view_query("week", None, None, [], [], [3, "12"])
    assert with_class == "?range=week&class=3&class=12"
    assert callbacks.controls_from_query(with_class + "&class=x", today)[-1] == [3, 12]
    week = (today - timedelta(days=6)).isoformat(), today.isoformat()
    assert callbacks.controls_from_query("?range=week&subject=mathematics", today) == (
        "week",
        *week,
        ["mathematics"],
        [],
        [],
    )
    # what cannot be read falls back: unknown preset, bad dates, unknown subject, odd grades
    month = (today - timedelta(days=29)).isoformat(), today.isoformat()
    odd = "?range=fortnight&subject=alchemy&grade=seven&grade=8"
    assert callbacks.controls_from_query(odd, today) == ("month", *month, [], [8], [])
    assert callbacks.controls_from_query("?range=custom&start=2026-13-01&end=x", today)[:3] == ("month", *month)
    assert callbacks.controls_from_query("", today) is None and callbacks.controls_from_query("?utm=1", today) is None

    from dash.exceptions import PreventUpdate

    # opening a URL sets the controls (the URL itself stays)
    out = callbacks.sync_controls("?range=week&grade=7&class=4", "month", *month, None, None, None, trigger=None)
    assert out[1:] == ("week", *week, [], [7], [4]) and out[0] is dash.no_update
    with pytest.raises(PreventUpdate):  # a plain URL keeps the defaults
        callbacks.sync_controls("", "month", *month, None, None, None, trigger=None)
    with pytest.raises(PreventUpdate):  # the controls already show it
        callbacks.sync_controls("?range=week&grade=7", "week", *week, [], [7], [], trigger="url")
    # changing a control writes the URL; a preset also moves the dates
    out = callbacks.sync_controls("?range=month", "week", *month, None, None, None, trigger="time-range")
    assert out[0] == "?range=week" and out[2:4] == week
    out = callbacks.sync_controls("?range=week", "week", *week, ["science"], None, None, trigger="subject-filter")
    assert out[0] == "?range=week&subject=science" and all(v is dash.no_update for v in out[1:])
    out = callbacks.sync_controls("?range=week", "week", *week, None, None, [4], trigger="class-filter")
    assert out[0] == "?range=week&class=4" and all(v is dash.no_update for v in out[1:])
    out = callbacks.sync_controls(
        "?range=week", "week", "2026-01-01", "2026-01-05", None, None, None, trigger="date-range"
    )
    assert out[0] == "?range=custom&start=2026-01-01&end=2026-01-05" and out[1] == "custom"


def test_an_empty_range(app_ctx):
    rows = Rows()
    rows.session(rows.user(), at(TODAY - timedelta(days=100), 10))
    roll_up(TODAY - timedelta(days=100), TODAY - timedelta(days=1))
    view = data.load_view(data.Filters.from_controls("week", today=TODAY), today=TODAY, tz=UTC_TZ)
    assert view.total_sessions == 0 and len(view.daily) == 7
    assert view.daily["avg_duration_min"].isna().all() and view.daily["latency_p95_ms"].isna().all()
    assert view.kpis.loc["sessions", "current"] == 0 and pd.isna(view.kpis.loc["avg_satisfaction", "current"])
    assert pd.isna(view.kpis.loc["sessions", "change_pct"])  # nothing to compare against
    assert view.topics.empty and view.subjects.empty and int(view.heatmap["sessions"].sum()) == 0
    out = callbacks.update_view("week", None, None, None, None, None, today=TODAY)
    assert "no sessions in this range" in out[0]
    sessions_fig, *others = out[2:10]
    assert len(sessions_fig["data"][0]["x"]) == 7  # the line still shows the week, at zero
    assert sessions_fig["layout"]["annotations"][0]["text"] == figures.EMPTY_MESSAGE
    assert all(figures.is_empty(fig) for fig in others)
    assert data.students_frame(data.Filters.from_controls("week", today=TODAY), today=TODAY).empty
    assert data.recent_sessions(data.Filters.from_controls("week", today=TODAY)).empty
    assert data.retention_frame(data.Filters.from_controls("week", today=TODAY), today=TODAY).empty


def test_a_rewritten_day_is_read_again(app_ctx):
    """The in-memory copy of a rolled-up day is replaced when the nightly job rewrites that day."""
    rows = Rows()
    a = rows.user()
    day = TODAY - timedelta(days=2)
    rows.session(a, at(day, 10))
    roll_up(day, TODAY - timedelta(days=1))
    f = data.Filters(day, TODAY)
    assert data.load_view(f, today=TODAY, tz=UTC_TZ).daily["sessions"].tolist() == [1, 0, 0]
    reads = data.STORE.reads
    assert data.load_view(f, today=TODAY, tz=UTC_TZ).daily["sessions"].tolist() == [1, 0, 0]
    assert data.STORE.reads == reads  # served from memory
    rows.session(a, at(day, 11), subject="science")
    roll_up(day, day)  # the job rewrites that day
    assert data.load_view(f, today=TODAY, tz=UTC_TZ).daily["sessions"].tolist() == [2, 0, 0]
    assert data.STORE.reads == reads + 1  # just that day


def test_vectorised_percentiles_match_latency_percentiles():
    rng = np.random.default_rng(7)
    hists = np.zeros((6, LATENCY_BUCKETS), np.int64)
    for i in range(1, 6):
        values = rng.lognormal(7.5, 0.6, size=int(rng.integers(1, 400)))
        np.add.at(hists[i], np.searchsorted(data.LATENCY_EDGES_MS, values, side="right"), 1)
    got = data._quantiles(hists, (0.5, 0.95, 0.0, 1.0))
    assert np.isnan(got[0]).all()
    for i in range(1, 6):
        np.testing.assert_allclose(got[i], latency_percentiles(hists[i], [0.5, 0.95, 0.0, 1.0]), rtol=1e-12)


# ------------------------------------------------------------------------------------ lists and students


def test_recent_sessions_and_the_topic_filter(app_ctx):
    rows = Rows()
    build_history(rows)
    f = data.Filters(TODAY - timedelta(days=9), TODAY)
    recent = data.recent_sessions(f, limit=5, tz=UTC_TZ)
    assert len(recent) == 5 and recent["started"].is_monotonic_decreasing
    cells = data.recent_sessions(f, topic="cells", limit=50, tz=UTC_TZ)
    assert len(cells) == 5 and all("cells" in t for t in cells["topics"])
    assert set(cells["subject"]) == {"science"}


def test_students_table_search_and_timeline(app_ctx):
    rows = Rows()
    ids = build_history(rows)
    roll_up(TODAY - timedelta(days=30), TODAY - timedelta(days=1))
    f = data.Filters(TODAY - timedelta(days=9), TODAY)
    table = data.students_frame(f, today=TODAY, tz=UTC_TZ).set_index("student_id")
    assert table.index.tolist()[0] == ids["a"]  # most sessions first
    ada = table.loc[ids["a"]]
    assert ada["sessions"] == 9 + 5 and ada["last_active"] == TODAY and ada["topics_covered"] == 2
    assert ada["ratings"] == 5 + 4 and ada["avg_rating"] == pytest.approx((4 * 4 + 5 * 5) / 9)
    assert table.loc[ids["b"], "grade_level"] == UNKNOWN_GRADE and table.loc[ids["b"], "topics_covered"] == 2
    assert data.students_frame(f, search="CLEO", today=TODAY)["student_id"].tolist() == [ids["c"]]
    assert data.students_frame(f, search="student2@", today=TODAY)["student_id"].tolist() == [ids["b"]]
    assert data.students_frame(f, search="%", today=TODAY).empty  # LIKE wildcards are literal
    limited = data.students_frame(f, limit=1, today=TODAY)
    assert len(limited) == 1 and limited.attrs["total"] == 3

    timeline = data.student_timeline(ids["a"], tz=UTC_TZ)
    assert timeline["student"]["name"] == "Ada"
    assert timeline["weekly"]["sessions"].sum() == 14
    assert all(pd.Timestamp(w).weekday() == 0 for w in timeline["weekly"]["week"])
    coverage = timeline["coverage"]
    maths = coverage[coverage["subject"] == "mathematics"]
    assert maths["covered"].tolist() == [1] * len(maths)  # "fractions" every day: one topic, cumulatively
    assert maths["total"].iloc[0] > 1 and maths["share"].iloc[0] == pytest.approx(1 / maths["total"].iloc[0])
    assert len(timeline["ratings"]) == 9 and timeline["ratings"]["date"].is_monotonic_increasing
    assert sorted(timeline["ratings"]["rating"].tolist()) == [4] * 4 + [5] * 5
    assert data.student_timeline(10**9)["student"] is None


def test_retention_by_start_week(app_ctx):
    rows = Rows()
    monday = TODAY - timedelta(days=TODAY.weekday() + 14)  # two weeks before this week's Monday
    old, new1, new2 = rows.user(), rows.user(), rows.user()
    rows.session(old, at(monday - timedelta(days=30), 10))  # started long ago
    rows.session(old, at(monday, 10))
    rows.session(new1, at(monday + timedelta(days=1), 10))  # cohort: week 0
    rows.session(new1, at(monday + timedelta(days=8), 10))  # back in week 1
    rows.session(new2, at(monday + timedelta(days=2), 10))  # cohort: week 0, never back
    roll_up(monday - timedelta(days=31), TODAY - timedelta(days=1))
    f = data.Filters(monday, TODAY)
    ret = data.retention_frame(f, today=TODAY, tz=UTC_TZ)
    assert ret["cohort"].unique().tolist() == [monday]
    # weeks 0, 1 and 2 of the cohort are in the range; nobody came back in week 2
    assert ret.set_index("offset")["students"].to_dict() == {0: 2, 1: 1, 2: 0}
    assert ret.set_index("offset")["share"].to_dict() == {0: 1.0, 1: 0.5, 2: 0.0}
    assert set(ret["cohort_size"]) == {2}  # "old" started long before the range
    fig = figures.retention_figure(ret)
    assert fig["data"][0]["z"] == [[100.0, 50.0, 0.0]]
    go.Figure(fig)


# ------------------------------------------------------------------------------------ figures


def daily_frame(days: int, live_last: bool = True) -> pd.DataFrame:
    dates = [TODAY - timedelta(days=days - 1 - i) for i in range(days)]
    rng = np.random.default_rng(days)
    frame = pd.DataFrame(
        {
            "date": dates,
            "sessions": rng.integers(0, 50, days),
            "active_students": rng.integers(0, 20, days),
            "avg_duration_min": rng.uniform(5, 15, days),
            "avg_satisfaction": rng.uniform(3, 5, days),
            "ratings": rng.integers(1, 9, days),
            "student_messages": rng.integers(0, 99, days),
            "tutor_replies": rng.integers(1, 99, days),
            "failed_replies": rng.integers(0, 3, days),
            "failure_rate": rng.uniform(0, 2, days),
            "answer_revealed_share": rng.uniform(0, 9, days),
            "latency_p50_ms": rng.uniform(900, 1500, days),
            "latency_p95_ms": rng.uniform(2000, 4000, days),
            "latency_mean_ms": rng.uniform(1000, 2000, days),
            "generation_mean_ms": rng.uniform(500, 900, days),
            "cut_short_replies": rng.integers(0, 3, days),
            "answer_unjudged_share": rng.uniform(0, 50, days),
            "thumbs_up": rng.integers(0, 9, days),
            "thumbs_down": rng.integers(0, 4, days),
            "prompt_tokens": rng.integers(0, 9999, days),
            "completion_tokens": rng.integers(0, 9999, days),
            "live": [live_last and i == days - 1 for i in range(days)],
        }
    )
    frame.loc[2, "avg_duration_min"] = np.nan  # a day without finished sessions
    return frame


@pytest.mark.parametrize("make", ["satisfaction_figure", "quality_figure"])
def test_daily_bar_charts_span_exactly_the_range(make):
    """Bars pad a date axis by days on their own: the x range is the range's days, half a day each side."""
    daily = daily_frame(90)
    fig = getattr(figures, make)(daily)
    axis = fig["layout"]["xaxis"]
    lo, hi = (pd.Timestamp(v) for v in axis["range"])
    assert lo == pd.Timestamp(TODAY - timedelta(days=89)) - pd.Timedelta(hours=12)
    assert hi == pd.Timestamp(TODAY) + pd.Timedelta(hours=12)


def test_usage_figure_prices_tokens_per_model():
    days = [TODAY - timedelta(days=2), TODAY - timedelta(days=1), TODAY]
    models = pd.DataFrame(
        {
            "date": [days[0], days[2], days[2]],
            "model": ["gpt-4o-mini", "gpt-4o-mini", "smollm2"],
            "replies": [3, 1, 2],
            "prompt_tokens": [2_000_000, 1_000_000, 500],
            "completion_tokens": [1_000_000, 0, 700],
            "tokens_estimated": [0, 0, 2],
        }
    )
    fig = figures.usage_figure(models, days, {"gpt-4o-mini": (0.15, 0.60)})
    go.Figure(fig)
    tokens = {t["legendgroup"]: t for t in fig["data"] if t.get("yaxis", "y") == "y"}
    costs = {t["legendgroup"]: t for t in fig["data"] if t.get("yaxis") == "y2"}
    assert tokens["gpt-4o-mini"]["y"] == [3_000_000, 0, 1_000_000]  # every day of the range, zero-filled
    assert tokens["smollm2"]["y"] == [0, 0, 1200]
    assert costs["gpt-4o-mini"]["y"] == [pytest.approx(0.9), 0, pytest.approx(0.15)]  # 2M x 0.15 + 1M x 0.60
    assert set(costs) == {"gpt-4o-mini"}  # no price, no cost
    assert tokens["gpt-4o-mini"]["name"] == "gpt-4o-mini · 4.0M tokens · 1.05"
    assert tokens["smollm2"]["name"] == "smollm2 · 1.2k tokens (partly estimated)"
    unpriced = figures.usage_figure(models, days, {})
    assert all(t.get("yaxis", "y") == "y" for t in unpriced["data"]) and "yaxis2" not in unpriced["layout"]


@pytest.mark.parametrize("days", [7, 30, 90])
def test_sessions_figure_has_one_point_per_day_oldest_first(days):
    frame = daily_frame(days)
    fig = figures.sessions_figure(frame)
    trace = fig["data"][0]
    assert len(fig["data"]) == 1 and trace["type"] == "scatter"
    assert len(trace["x"]) == len(trace["y"]) == days
    assert trace["x"][0] == (TODAY - timedelta(days=days - 1)).isoformat() and trace["x"][-1] == TODAY.isoformat()
    assert trace["x"] == sorted(trace["x"]) and trace["y"] == frame["sessions"].tolist()
    assert (
        trace["marker"]["color"][-1] == figures.ACCENT and trace["marker"]["color"][0] == figures.PRIMARY
    )  # today live
    go.Figure(fig)  # a valid plotly figure


def test_every_figure_is_valid_plotly_with_its_traces():
    frame = daily_frame(30)
    heat = pd.DataFrame({"weekday": np.repeat(range(7), 24), "hour": np.tile(range(24), 7), "sessions": range(168)})
    topics = pd.DataFrame({"topic": [f"t{i}" for i in range(20)], "sessions": range(40, 20, -1)})
    subjects = pd.DataFrame({"subject": ["mathematics", "science"], "sessions": [5, 3], "active_students": [2, 1]})
    grades = pd.DataFrame({"grade_level": [-1, 7], "sessions": [1, 7], "active_students": [1, 2]})
    built = {
        "duration": figures.duration_figure(frame),
        "heatmap": figures.heatmap_figure(heat),
        "topics": figures.topics_figure(topics, selected="t1"),
        "satisfaction": figures.satisfaction_figure(frame),
        "quality": figures.quality_figure(frame),
        "subjects": figures.subjects_figure(subjects, grades, {"mathematics": "Mathematics"}),
    }
    for fig in built.values():
        go.Figure(fig)
    assert built["duration"]["data"][0]["y"][2] is None  # a gap, not a zero
    heatmap = built["heatmap"]["data"][0]
    rows = dict(zip(heatmap["y"], heatmap["z"], strict=True))
    assert len(rows) == 7 and len(rows["Tue"]) == 24 and rows["Tue"][0] == 24
    assert heatmap["y"][-1] == "Mon"  # the last category is drawn on top
    assert "autorange" not in built["heatmap"]["layout"]["yaxis"]
    bars = built["topics"]["data"][0]
    assert len(bars["y"]) == 12 and bars["y"][-1] == "t0"  # the top twelve, most popular on top
    assert bars["marker"]["color"][bars["y"].index("t1")] == figures.ACCENT
    assert [t["name"] for t in built["quality"]["data"]] == [
        "p50 wait",
        "p95 wait",
        "Model's own time (mean)",
        "Failed replies",
        "Cut short (max tokens)",
        "Answer given away (% of finished replies)",
        "Could not be judged (%)",
        "Thumbs up",
        "Thumbs down",
    ]
    assert built["quality"]["data"][1]["y"][0] == pytest.approx(frame["latency_p95_ms"][0] / 1000, abs=0.01)
    quality = built["quality"]["layout"]  # small multiples: one y axis per panel, none overlaid
    assert all(
        quality[a]["domain"][1] > quality[b]["domain"][1] for a, b in (("yaxis", "yaxis2"), ("yaxis2", "yaxis3"))
    )
    assert not any("overlaying" in quality[a] for a in ("yaxis", "yaxis2", "yaxis3"))
    assert all(quality[a]["nticks"] == 4 for a in ("yaxis", "yaxis2", "yaxis3", "yaxis4"))
    down = next(t for t in built["quality"]["data"] if t["name"] == "Thumbs down")
    assert down["y"] == [-v for v in frame["thumbs_down"]] and down["customdata"] == frame["thumbs_down"].tolist()
    assert built["subjects"]["data"][0]["x"] == ["Mathematics", "science"]
    assert built["subjects"]["data"][1]["x"] == ["No grade", "Grade 7"]
    for empty in (
        figures.duration_figure(frame.assign(sessions=0)),
        figures.topics_figure(topics.iloc[:0]),
        figures.heatmap_figure(heat.assign(sessions=0)),
        figures.satisfaction_figure(frame.assign(ratings=0)),
        figures.quality_figure(frame.assign(tutor_replies=0)),
        figures.usage_figure(pd.DataFrame(columns=list(data.MODEL_COLUMNS)), frame["date"]),
        figures.student_sessions_figure(pd.DataFrame(columns=["week", "sessions"])),
    ):
        assert figures.is_empty(empty) and empty["layout"]["annotations"][0]["text"]
        go.Figure(empty)


# ------------------------------------------------------------------------------------ callbacks


@pytest.fixture
def recent(app):
    """Activity in the last days before the real today (the callbacks' "today"), rolled up, and today.

    No application context stays pushed: HTTP tests need each request to load its own user.
    """
    with app.app_context():
        today = data.analytics_today()
        rows = Rows()
        build_history(rows, today=today)
        roll_up(today - timedelta(days=120), today - timedelta(days=1))
        db.session.remove()
    return today


# build_history's sessions: a's maths sessions on 9 of the 10 days, science every other day (5),
# b's across midnight and c's today; in the last week (6 days back to today): 6 + 4 + 1 + 1.
ALL_SESSIONS = 9 + 5 + 1 + 1
WEEK_SESSIONS = 6 + 4 + 1 + 1


def points(fig) -> int:
    return len(fig["data"][0]["x"])


def test_update_view_called_directly(app_ctx, recent):
    for time_range, days in (("week", 7), ("month", 30), ("quarter", 90)):
        out = callbacks.update_view(time_range, None, None, None, None)
        assert len(out) == len(callbacks.VIEW_OUTPUTS)
        label, cards, sessions_fig = out[0], out[1], out[2]
        assert f"{days} days" in label and "today live" in label
        assert len(cards) == 7
        assert points(sessions_fig) == days and sessions_fig["data"][0]["x"][-1] == recent.isoformat()
    custom = callbacks.update_view("custom", (recent - timedelta(days=2)).isoformat(), recent.isoformat(), None, None)
    assert points(custom[2]) == 3
    topics_fig = callbacks.update_view("week", None, None, None, None, None, "cells")[5]  # a topic is selected
    bars = topics_fig["data"][0]
    assert bars["marker"]["color"][bars["customdata"].index("cells")] == figures.ACCENT
    assert bars["marker"]["color"][bars["customdata"].index("fractions")] == figures.PRIMARY
    names = callbacks.topic_names()
    assert bars["y"] == [names.get(t, t) for t in bars["customdata"]]  # labelled by name, clicked by id
    assert names["cells"] in bars["y"] and "cells" not in bars["y"]
    science = callbacks.update_view("week", None, None, ["science"], None)
    assert sum(science[2]["data"][0]["y"]) == 4  # 0, 2, 4 and 6 days back


def test_sync_range_keeps_buttons_and_dates_in_step(app_ctx):
    today = data.analytics_today()
    week = (today - timedelta(days=6)).isoformat(), today.isoformat()
    assert callbacks.sync_range("week", None, None, trigger="time-range")[1:] == week
    assert callbacks.sync_range("week", "2024-01-01", "2024-01-31", trigger="date-range")[0] == "custom"
    from dash.exceptions import PreventUpdate

    with pytest.raises(PreventUpdate):  # the dates the preset itself set
        callbacks.sync_range("week", *week, trigger="date-range")
    with pytest.raises(PreventUpdate):
        callbacks.sync_range("week", *week, trigger=None)


def admin_client(app):
    from tutor.users import create_user

    with app.app_context():
        create_user("boss@school.org", "admin-password", role="admin")
        db.session.commit()
        db.session.remove()
    client = app.test_client()
    response = client.post("/api/v1/auth/login", json={"email": "boss@school.org", "password": "admin-password"})
    assert response.status_code == 200
    return client


def post_callback(client, payload):
    return client.post(
        "/admin/analytics/_dash-update-component",
        data=json.dumps(payload),
        headers={"Content-Type": "application/json", "Origin": "http://localhost"},
    )


def test_main_callback_over_http_like_the_browser(app, recent):
    client = admin_client(app)
    assert client.get("/admin/analytics/").status_code == 200
    outputs = [o.component_id + "." + o.component_property for o in callbacks.VIEW_OUTPUTS]
    for time_range, days in (("week", 7), ("month", 30), ("quarter", 90)):
        # the body exactly as dash-renderer sends it when the period buttons change
        payload = {
            "output": ".." + "...".join(outputs) + "..",
            "outputs": [{"id": o.split(".")[0], "property": o.split(".")[1]} for o in outputs],
            "inputs": [
                {"id": "time-range", "property": "value", "value": time_range},
                {"id": "date-range", "property": "start_date", "value": "2025-01-01"},
                {"id": "date-range", "property": "end_date", "value": "2025-01-31"},
                {"id": "subject-filter", "property": "value", "value": None},
                {"id": "grade-filter", "property": "value", "value": []},
                {"id": "class-filter", "property": "value", "value": None},
            ],
            "changedPropIds": ["time-range.value"],
            "state": [{"id": "selected-topic", "property": "data", "value": None}],
        }
        assert payload == callbacks.main_callback_payload(time_range, "2025-01-01", "2025-01-31", None, [])
        response = post_callback(client, payload)
        assert response.status_code == 200, response.data[:500]
        body = response.get_json()["response"]
        assert set(body) == {o.split(".")[0] for o in outputs}
        sessions_fig = body["sessions-chart"]["figure"]
        assert points(sessions_fig) == days and sessions_fig["data"][0]["x"][-1] == recent.isoformat()
        total = WEEK_SESSIONS if days == 7 else ALL_SESSIONS
        assert sum(sessions_fig["data"][0]["y"]) == total
        assert body["kpi-cards"]["children"][0]["props"]["children"][1]["props"]["children"] == str(total)

    # the guard: no data for anyone else
    anonymous = app.test_client()
    assert post_callback(anonymous, callbacks.main_callback_payload("week")).status_code == 401
    student = make_student(app, email="kid@school.org")
    refused = post_callback(student.client, callbacks.main_callback_payload("week"))
    assert refused.status_code == 403 and b"sessions-chart" not in refused.data


def test_topic_click_filters_the_session_list(app, recent):
    client = admin_client(app)
    click = {"points": [{"curveNumber": 0, "pointNumber": 0, "x": 5, "y": "cells", "customdata": "cells"}]}
    with app.app_context():
        topic, title, listing, hidden = callbacks.show_topic_sessions(
            click, None, "week", None, None, None, None, None, trigger="topics-chart"
        )
        cleared = callbacks.show_topic_sessions(
            click, 1, "week", None, None, None, None, None, current="cells", trigger="clear-topic"
        )
    with app.app_context():
        name = callbacks.topic_names()["cells"]
    assert name != "cells"  # the curriculum's name, not the id
    assert topic == "cells" and f"“{name}”" in title and hidden is False
    html_rows = re.findall(r"<tr>(.*?)</tr>", listing.children.split("<tbody>")[1])
    topic_cells = [re.findall(r"<td[^>]*>(.*?)</td>", row)[3] for row in html_rows]
    assert len(html_rows) == 4 and all(name in cell for cell in topic_cells)
    assert cleared[0] is None and cleared[1] == "Recent sessions" and cleared[3] is True

    payload = callbacks.callback_payload(
        [
            callbacks.Output("selected-topic", "data"),
            callbacks.Output("recent-title", "children"),
            callbacks.Output("recent-sessions", "children"),
            callbacks.Output("clear-topic", "hidden"),
        ],
        [
            ("topics-chart", "clickData", click),
            ("clear-topic", "n_clicks", None),
            *(
                (c.component_id, c.component_property, v)
                for c, v in zip(callbacks.CONTROLS, ["week", None, None, None, None, None], strict=True)
            ),
        ],
        ["topics-chart.clickData"],
    )
    payload["state"] = [{"id": "selected-topic", "property": "data", "value": None}]
    response = post_callback(client, payload)
    assert response.status_code == 200, response.data[:500]
    assert response.get_json()["response"]["selected-topic"]["data"] == "cells"


def test_student_callbacks(app_ctx, recent):
    table = callbacks.update_students(None, "week", None, None, None, None, None)
    links = re.findall(
        r'<a class="button link" href="(#student-\d+)" title="[^"]*">([^<]*)</a>', table.children[0].children
    )
    assert [name for _, name in links] == ["Ada", "Ben", "Cleo"]  # most sessions first, then by name
    student_id = callbacks.pick_student(links[0][0])
    from dash.exceptions import PreventUpdate

    for other in (None, "", "#quality-chart-card", "#student-", "#student-1x"):  # not a student's link
        with pytest.raises(PreventUpdate):
            callbacks.pick_student(other)
    name, weekly, coverage, ratings, _mastery = callbacks.show_student(student_id)
    assert "Ada" in str(name)
    for fig in (weekly, coverage, ratings):
        assert not figures.is_empty(fig)
        go.Figure(fig)
    assert callbacks.show_student(10**9)[0] == "Student not found"
    retention = callbacks.update_retention("quarter", None, None, None, None)
    go.Figure(retention)


def test_tables_escape_what_people_typed(app_ctx):
    """The tables are HTML drawn by one component each: names and e-mails are escaped."""
    frame = pd.DataFrame(
        {"student_id": [7], "name": ['<img src=x onerror="alert(1)">'], "email": ['a"b@x.org'], "grade_level": [5],
         "sessions": [3], "last_active": [date(2026, 1, 2)], "topics_covered": [2], "avg_rating": [float("nan")]}
    )  # fmt: skip
    markup = layout.students_table(frame, 1, selected=7).children[0].children
    assert "<img" not in markup and "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in markup
    assert 'title="a&quot;b@x.org"' in markup and '<tr class="selected">' in markup
    sessions = pd.DataFrame(
        {"started": [datetime(2026, 1, 2, 9, 30)], "student": ["<b>Eve</b>"], "subject": ["mathematics"],
         "topics": ["fractions, <script>"], "duration_min": [None], "satisfaction": [None], "status": ["active"]}
    )  # fmt: skip
    markup = layout.sessions_table(sessions, {"mathematics": "Mathematics"}, {"fractions": "Fractions"}).children
    assert "<b>" not in markup and "<script>" not in markup and "Fractions, &lt;script&gt;" in markup


def read_download(result) -> pd.DataFrame:
    content = result["content"]
    raw = base64.b64decode(content).decode() if result.get("base64") else content
    return pd.read_csv(io.StringIO(raw))


def test_csv_exports(app_ctx, recent):
    result = callbacks.export_daily(1, "week", None, None, None, None)
    assert result["filename"] == f"tutoring-daily-{recent - timedelta(days=6)}-to-{recent}.csv"
    frame = read_download(result)
    assert frame.columns.tolist() == list(data.DAILY_COLUMNS)
    assert len(frame) == 7 and frame["date"].iloc[-1] == recent.isoformat() and frame["sessions"].sum() == WEEK_SESSIONS
    assert frame["live"].tolist() == [False] * 6 + [True]
    science = read_download(callbacks.export_daily(1, "week", None, None, ["science"], None))
    assert science["sessions"].sum() == 4

    students = read_download(callbacks.export_students(1, "week", None, None, None, None))
    assert students.columns.tolist() == data.STUDENT_COLUMNS and len(students) == 3
    assert students["sessions"].sum() == WEEK_SESSIONS
    assert read_download(callbacks.export_students(1, "week", None, None, None, None, None, search="ada"))[
        "name"
    ].tolist() == ["Ada"]
    from dash.exceptions import PreventUpdate

    with pytest.raises(PreventUpdate):
        callbacks.export_daily(None, "week", None, None, None, None)


def test_export_over_http(app, recent):
    client = admin_client(app)
    payload = callbacks.callback_payload(
        [callbacks.Output("download-daily", "data")],
        [("export-daily", "n_clicks", 1)],
        ["export-daily.n_clicks"],
    )
    payload["state"] = [
        {"id": c.component_id, "property": c.component_property, "value": v}
        for c, v in zip(callbacks.CONTROLS, ["month", None, None, None, None, None], strict=True)
    ]
    response = post_callback(client, payload)
    assert response.status_code == 200, response.data[:500]
    frame = read_download(response.get_json()["response"]["download-daily"]["data"])
    assert len(frame) == 30 and frame["sessions"].sum() == ALL_SESSIONS


def test_page_layout_has_the_controls_and_figures(app):
    client = admin_client(app)
    layout_json = client.get("/admin/analytics/_dash-layout").get_data(as_text=True)
    for component_id in (
        "time-range",
        "date-range",
        "subject-filter",
        "grade-filter",
        "class-filter",
        "review-list",
        "kpi-cards",
        "sessions-chart",
        "topics-chart",
        "duration-chart",
        "usage-heatmap",
        "satisfaction-chart",
        "quality-chart",
        "usage-chart",
        "judge-table",
        "mastery-heatmap",
        "mastery-trend",
        "at-risk-table",
        "subjects-chart",
        "recent-sessions",
        "students-table",
        "student-search",
        "retention-chart",
        "download-daily",
        "download-students",
    ):
        assert f'"id":"{component_id}"' in layout_json.replace(" ", ""), component_id
    options = json.loads(layout_json)
    assert options  # valid JSON
    assert client.get("/admin/analytics/assets/dashboard.css").status_code == 200


def test_the_page_itself_reads_no_database(app_ctx, monkeypatch):
    """Dash builds the layout on the server's first request, whatever it is (e.g. /readyz)."""
    rows = Rows()
    rows.user(grade=11)
    rows.user(grade=4)
    choices = callbacks.load_grade_options("dashboard-root")
    assert [c["value"] for c in choices] == [4, 11, UNKNOWN_GRADE]

    def no_database():
        raise AssertionError("the layout must not query the database")

    monkeypatch.setattr(data, "_reader", no_database)
    page = layout.serve_layout()
    assert page.id == "dashboard-root"


def test_dashboard_never_writes(app_ctx):
    """The dashboard's transactions are read-only: a write inside one fails."""
    with data._reader() as cur:
        with pytest.raises(Exception, match="read-only"):
            cur.execute("INSERT INTO users (email) VALUES ('x@y.z')")


def test_the_judge_table_shows_the_models_verdicts_per_subject_and_model(app_ctx, recent):
    """Replies a model judged, per subject and model, beside the guardrail rules' count."""
    with db.engine.begin() as conn:
        replies = conn.execute(
            text(
                "SELECT m.id, s.subject FROM messages m JOIN sessions s ON s.id = m.session_id "
                "WHERE m.role = 'tutor' AND m.status = 'done' ORDER BY m.id LIMIT 3"
            )
        ).all()
        for n, (mid, _subject) in enumerate(replies):
            conn.execute(
                text(
                    "INSERT INTO reply_judgements (message_id, status, reveals_answer, identifies_mistake, "
                    "gives_guidance, actionable, model, judged_at) VALUES (:m, :st, :r, :i, :g, :a, 'judge-m', now())"
                ),
                {"m": mid, "st": "unrated" if n == 2 else "rated", "r": n == 0 if n < 2 else None,
                 "i": 2 if n < 2 else None, "g": n if n < 2 else None, "a": 1 if n < 2 else None},
            )  # fmt: skip
    frame = data.judge_scores(data.Filters.from_controls("week"))
    assert frame["judged"].sum() == 3 and frame["unrated"].sum() == 1 and frame["judge_reveals"].sum() == 1
    assert set(frame["model"]) == {"judge-m"}
    table = callbacks.update_judge_table("week", None, None, None, None)
    assert "judge-m" in table.children and "Finds the mistake" in table.children
    nothing = callbacks.update_judge_table("custom", "2020-01-01", "2020-01-02", None, None)
    assert "No replies judged by a model" in str(nothing)
    assert data.judge_scores(data.Filters.from_controls("week", subjects=["english"])).empty
