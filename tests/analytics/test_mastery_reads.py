"""The dashboard's mastery reads (analytics.mastery): heatmap, weekly mastery, students at risk
and a student's curve."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import text

from analytics.knowledge import refit
from analytics.mastery import heatmap, mastery_curve, mastery_over_time, students_at_risk
from analytics.reads import Filters, analytics_today
from foundation.extensions import db
from tutor.grading import Grade
from tutor.mastery import DEFAULT, record_attempt
from tutor.users import create_user


def _student(email: str, grade: int, name: str) -> int:
    user = create_user(email, "learning123", grade_level=grade, display_name=name)
    db.session.commit()
    return user.id


def _answers(student: int, topic: str, answers: list[bool], subject: str = "mathematics") -> None:
    for i, right in enumerate(answers):
        record_attempt(student, subject, topic, f"{topic} q{i}", "x", Grade(right, "sympy"), source="quiz")


def _session(student: int, days_ago: int) -> None:
    db.session.execute(
        text(
            "INSERT INTO sessions (id, student_id, subject, created_at, status) VALUES (:i, :s, 'mathematics', :t, 'ended')"
        ),
        {"i": uuid.uuid4(), "s": student, "t": datetime.now(UTC) - timedelta(days=days_ago)},
    )
    db.session.commit()


@pytest.fixture
def cohort(app_ctx):
    ada = _student("ada@school.org", 7, "Ada")  # learning, active
    bo = _student("bo@school.org", 7, "Bo")  # stuck on fractions, active
    cy = _student("cy@school.org", 9, "Cy")  # doing well, but no session for 10 days
    _answers(ada, "linear equations", [False, True, True, True, True])
    _answers(ada, "fractions", [True, True])
    _answers(bo, "fractions", [False] * 6)
    _answers(cy, "percentages", [True] * 3)
    _answers(cy, "averages", [True], subject="mathematics")
    _session(ada, 1)
    _session(bo, 2)
    _session(cy, 10)
    refit()  # the nightly job: the heatmap and the at-risk list start from its per-student snapshot
    return {"ada": ada, "bo": bo, "cy": cy}


def _filters(**kw) -> Filters:
    today = analytics_today()
    return Filters(today - timedelta(days=29), today, **kw)


def test_heatmap_is_students_by_topics_weakest_first(cohort):
    frame = heatmap(_filters())
    assert list(frame["student"].unique()) == ["Bo", "Cy", "Ada"]  # lowest average mastery first
    ada = frame[frame["student"] == "Ada"].set_index("topic")["mastery"]
    assert ada["linear equations"] == pytest.approx(DEFAULT.trace([False, True, True, True, True]))
    assert set(frame["name"]) == {"Linear equations", "Fractions", "Percentages", "Averages"}
    grade9 = heatmap(_filters(grades=(9,)))
    assert set(grade9["student"]) == {"Cy"}
    assert heatmap(_filters(subjects=("science",))).empty
    assert len(heatmap(_filters(), limit=1)["student"].unique()) == 1


def test_students_at_risk_inactive_or_not_rising(cohort):
    frame = students_at_risk(_filters()).set_index("student")
    assert set(frame.index) == {"Bo", "Cy"}
    assert frame.loc["Bo", "reason"] == "mastery not rising" and frame.loc["Bo", "stuck_topics"] == "Fractions"
    assert frame.loc["Cy", "reason"] == "no session for 7+ days" and frame.loc["Cy", "days_inactive"] == 10
    csv = students_at_risk(_filters()).to_csv(index=False)
    assert csv.splitlines()[0].startswith("student_id,student,email,grade_level,last_session,days_inactive")
    assert set(students_at_risk(_filters(grades=(7,)))["student"]) == {"Bo"}


def test_mastery_curve_replays_the_students_attempts(cohort):
    curve = mastery_curve(cohort["ada"])
    assert len(curve) == 7 and curve["created_at"].is_monotonic_increasing
    linear = curve[curve["topic"] == "linear equations"]["mastery"].tolist()
    assert linear[0] < DEFAULT.p_init < linear[-1]
    stored = db.session.execute(
        text("SELECT p_known FROM mastery WHERE student_id = :s AND topic = 'linear equations'"), {"s": cohort["ada"]}
    ).scalar()
    assert linear[-1] == pytest.approx(stored)  # it ends where the progress page stands
    assert mastery_curve(999_999).empty


def test_mastery_over_time_reads_weekly_points_of_the_snapshot(cohort):
    frame = mastery_over_time(_filters())
    today = analytics_today()
    this_week = today - timedelta(days=today.weekday())
    latest = frame[frame["week"] == this_week].set_index("topic")
    assert latest.loc["fractions", "students"] == 2
    assert latest.loc["fractions", "name"] == "Fractions"
    assert 0 <= latest.loc["fractions", "mastered_share"] <= 1
    assert set(frame["week"]) == {this_week}  # every attempt is from today: one weekly point
    assert set(mastery_over_time(_filters(grades=(9,)))["topic"]) == {"percentages", "averages"}


def test_a_session_since_the_snapshot_counts_and_reads_wait_for_the_first_refit(cohort):
    _session(cohort["cy"], 0)  # Cy is back today, after last night's refit
    assert set(students_at_risk(_filters())["student"]) == {"Bo"}
    db.session.execute(text("TRUNCATE mastery_students, mastery_daily"))
    db.session.commit()
    assert heatmap(_filters()).empty and students_at_risk(_filters()).empty and mastery_over_time(_filters()).empty


def test_reads_have_empty_states(app_ctx):
    f = Filters(date(2025, 1, 1), date(2025, 3, 31))
    for read in (heatmap, mastery_over_time, students_at_risk):
        assert read(f).empty


def test_the_dashboard_learning_section_and_a_students_mastery_curve(cohort):
    """The callbacks that draw the reads: heatmap (weakest on top), mastery over time, the
    at-risk list and its CSV, and the mastery curve in a student's timeline."""
    import base64
    import io

    import pandas as pd
    import plotly.graph_objects as go

    from dashboard import callbacks, figures

    heat, trend, at_risk = callbacks.update_learning("month", None, None, None, None)
    go.Figure(heat)
    go.Figure(trend)
    cells = heat["data"][0]
    assert cells["y"] == ["Bo", "Cy", "Ada"] and "Fractions" in cells["x"]
    assert cells["z"][0][cells["x"].index("Fractions")] < 40  # Bo, six wrong answers
    assert not figures.is_empty(trend) and trend["data"][0]["name"] == "Mathematics"
    assert "Bo" in at_risk.children and "Cy" in at_risk.children and "Ada" not in at_risk.children
    download = callbacks.export_at_risk(1, "month", None, None, None, None)
    raw = base64.b64decode(download["content"]).decode() if download.get("base64") else download["content"]
    listed = pd.read_csv(io.StringIO(raw))
    assert set(listed["student"]) == {"Bo", "Cy"} and "reason" in listed.columns
    *_, curve = callbacks.show_student(cohort["ada"])
    go.Figure(curve)
    lines = {t["name"]: t for t in curve["data"]}
    assert set(lines) == {"Linear equations", "Fractions"}
    assert lines["Linear equations"]["y"][-1] > lines["Linear equations"]["y"][0]  # learning shows
    empty_heat, _, _ = callbacks.update_learning("custom", "2020-01-01", "2020-01-05", None, None)
    assert figures.is_empty(empty_heat)  # nobody answered anything then
    _, _, nobody = callbacks.update_learning("month", None, None, ["english"], None)
    assert "No student at risk" in str(nobody)
