"""The nightly BKT refit: EM recovers known parameters, guess and slip stay bounded, mastery
and the snapshot are recomputed, a missed night is caught up by the next run."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import text

from analytics import knowledge
from analytics.knowledge import fit_bkt, pad, refit, snapshot
from foundation.extensions import db
from tutor.grading import Grade
from tutor.mastery import BKT, DEFAULT, record_attempt
from tutor.users import create_user

TRUE = BKT(p_init=0.25, p_learn=0.2, p_guess=0.15, p_slip=0.1)


def simulate(p: BKT, students: int, seed: int, low: int = 3, high: int = 12) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for student in range(students):
        known = rng.random() < p.p_init
        for _ in range(int(rng.integers(low, high))):
            rows.append((student, int(rng.random() < ((1 - p.p_slip) if known else p.p_guess))))
            known = known or rng.random() < p.p_learn
    return pd.DataFrame(rows, columns=["student_id", "correct"])


def test_em_recovers_the_parameters_the_answers_were_drawn_from():
    obs, lengths = pad(simulate(TRUE, students=3000, seed=3))
    fit = fit_bkt(obs, lengths)
    for name in ("p_init", "p_learn", "p_guess", "p_slip"):
        assert getattr(fit.params, name) == pytest.approx(getattr(TRUE, name), abs=0.05), name
    worse = fit_bkt(obs, lengths, max_iter=1)
    assert fit.log_likelihood > worse.log_likelihood  # EM climbs


def test_guess_and_slip_stay_bounded():
    everyone_right = pd.DataFrame({"student_id": np.repeat(np.arange(50), 6), "correct": 1})
    fit = fit_bkt(*pad(everyone_right))
    assert fit.params.p_guess <= knowledge.MAX_GUESS and fit.params.p_slip <= knowledge.MAX_SLIP
    noise = simulate(BKT(0.5, 0.01, 0.5, 0.5), students=300, seed=4)
    fit = fit_bkt(*pad(noise))
    assert fit.params.p_guess <= knowledge.MAX_GUESS and fit.params.p_slip <= knowledge.MAX_SLIP


def _insert(app, frame: pd.DataFrame, subject: str, topic: str, start: datetime) -> dict[int, int]:
    """Attempts of simulated students, one a day from ``start``; returns simulated -> user ids."""
    with app.app_context():
        ids = {}
        for student in frame["student_id"].unique():
            user = create_user(f"s{student}-{topic[:3]}@school.org", "learning123", grade_level=7)
            db.session.flush()
            ids[int(student)] = user.id
        db.session.commit()
        position = frame.groupby("student_id").cumcount()
        rows = [
            {"s": ids[int(r.student_id)], "su": subject, "t": topic, "i": f"q{p}", "c": bool(r.correct),
             "at": start + timedelta(days=int(p), minutes=int(r.student_id))}
            for r, p in zip(frame.itertuples(), position, strict=True)
        ]  # fmt: skip
        db.session.execute(
            text(
                "INSERT INTO attempts (student_id, subject, topic, item, correct, source, graded_by, created_at) "
                "VALUES (:s, :su, :t, :i, :c, 'quiz', 'sympy', :at)"
            ),
            rows,
        )
        db.session.commit()
    return ids


def test_refit_fits_topics_with_enough_data_and_recomputes_mastery(app):
    start = datetime.now(UTC) - timedelta(days=20)
    many = simulate(TRUE, students=60, seed=5, low=6, high=10)
    few = simulate(TRUE, students=5, seed=6)
    _insert(app, many, "mathematics", "fractions", start)
    ids = _insert(app, few, "mathematics", "percentages", start)
    with app.app_context():
        summary = refit()
        assert summary["topics"] == 2 and summary["fitted"] == 1
        params = db.session.execute(text("SELECT * FROM bkt_params")).one()
        assert (params.subject, params.topic, params.attempts, params.students) == ("mathematics", "fractions",
                                                                                   len(many), 60)  # fmt: skip
        assert 0.01 <= params.p_guess <= knowledge.MAX_GUESS and 0.01 <= params.p_slip <= knowledge.MAX_SLIP
        fitted = BKT(params.p_init, params.p_learn, params.p_guess, params.p_slip)
        assert fitted != DEFAULT
        # Each student's mastery is the trace of their answers under their topic's parameters.
        for topic, frame, bkt in (("percentages", few, DEFAULT),):
            for student, answers in frame.groupby("student_id")["correct"]:
                row = db.session.execute(
                    text("SELECT p_known, attempts, correct FROM mastery WHERE student_id = :s AND topic = :t"),
                    {"s": ids[int(student)], "t": topic},
                ).one()
                assert row.p_known == pytest.approx(bkt.trace([bool(a) for a in answers]))
                assert (row.attempts, row.correct) == (len(answers), int(answers.sum()))
        again = refit()
        assert again == summary  # idempotent
        assert db.session.execute(text("SELECT count(*) FROM bkt_params")).scalar() == 1


def test_an_attempt_recorded_during_the_refit_keeps_its_value(app, monkeypatch):
    with app.app_context():
        user = create_user("live@school.org", "learning123")
        db.session.commit()
        for i in range(3):
            record_attempt(user.id, "mathematics", "fractions", f"q{i}", "1", Grade(True, "sympy"), source="quiz")
        live = db.session.execute(text("SELECT p_known, attempts FROM mastery")).one()
        read = knowledge.read_attempts()
        monkeypatch.setattr(knowledge, "read_attempts", lambda: read.iloc[:2].copy())  # read before the 3rd
        refit()
        assert db.session.execute(text("SELECT p_known, attempts FROM mastery")).one() == live


def test_snapshot_counts_students_and_mastery_per_day():
    day = pd.Timestamp("2026-03-02 10:00", tz="UTC")
    attempts = pd.DataFrame(
        {
            "subject": "mathematics",
            "topic": "fractions",
            "student_id": [1, 1, 2, 1],
            "created_at": [day, day + pd.Timedelta(hours=1), day + pd.Timedelta(days=1), day + pd.Timedelta(days=2)],
            "p_known": [0.5, 0.85, 0.3, 0.6],
        }
    )
    out = snapshot(attempts, pd.Series({1: 7, 2: 7}), day.date() + timedelta(days=3), ZoneInfo("UTC"))
    out = out.set_index("date")
    days = [day.date() + timedelta(days=i) for i in range(4)]
    assert list(out.index) == days
    assert list(out["students"]) == [1, 2, 2, 2]
    assert list(out["mastery_sum"].round(4)) == [0.85, 1.15, 0.9, 0.9]
    assert list(out["mastered"]) == [1, 1, 0, 0]


def test_a_missed_night_is_caught_up_by_the_next_run(app):
    start = datetime.now(UTC) - timedelta(days=9)
    _insert(app, simulate(TRUE, students=4, seed=8, low=5, high=6), "mathematics", "averages", start)
    with app.app_context():
        refit()  # the first run after nine nights without one
        days = db.session.execute(
            text("SELECT date, students FROM mastery_daily WHERE topic = 'averages' ORDER BY date")
        ).all()
        from analytics.rollup import local_today

        assert days[0].date == start.date() and days[-1].date == local_today()
        assert len(days) == (local_today() - start.date()).days + 1  # every day, none missing
        assert days[-1].students == 4


def test_the_nightly_refit_is_scheduled_once_however_often_the_scheduler_starts(app_ctx):
    from rq_scheduler import Scheduler

    from foundation.extensions import redis_ext
    from jobs.schedule import sync_schedule

    scheduler = Scheduler(connection=redis_ext.conn)
    for _ in range(3):
        sync_schedule(scheduler)
    jobs = [job for job in scheduler.get_jobs() if job.func_name == "jobs.mastery.refit_mastery"]
    assert len(jobs) == 1 and jobs[0].meta["cron_string"] == "30 0 * * *"


def test_the_job_runs_on_a_worker(app):
    from foundation.queue import enqueue
    from tests.conftest import run_jobs

    start = datetime.now(UTC) - timedelta(days=20)
    _insert(app, simulate(TRUE, students=3, seed=9, low=3, high=4), "mathematics", "fractions", start)
    with app.app_context():
        enqueue("jobs.mastery.refit_mastery")
    run_jobs(app)
    with app.app_context():
        assert db.session.execute(text("SELECT count(*) FROM mastery")).scalar() == 3
        days = db.session.execute(text("SELECT count(*) FROM mastery_daily")).scalar()
        assert days == 21  # one grade, one topic: a row a day from the first attempt through today
