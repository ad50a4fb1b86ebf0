"""The nightly BKT refit: per topic, parameters by EM from every attempt, then every
student's mastery recomputed with them.

Why EM over all attempts each night rather than an online update: the parameters describe
the topic (how guessable its questions are, how much one attempt teaches), so they come
from the whole class's sequences, and one run from the full log catches up any number of
missed nights. EM is the Baum-Welch algorithm for BKT's two-state hidden Markov model,
vectorised over students with numpy (one pass per attempt position, not per student).
Guess and slip are bounded (``MAX_GUESS``, ``MAX_SLIP``) so the fit cannot settle on the
degenerate reading where "knowing" means answering wrong; topics with fewer than
``MIN_ATTEMPTS`` attempts or ``MIN_STUDENTS`` students keep the defaults of
:mod:`tutor.mastery`. ``bench/bkt_vs_pybkt.py`` checks the fit against pyBKT.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
from sqlalchemy import Date, DateTime, Float, Index, Integer, SmallInteger, String, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column

from foundation.extensions import db
from tutor.mastery import BKT, DEFAULT, MASTERED

from .rollup import _zone, local_today
from .tables import UNKNOWN_GRADE

log = logging.getLogger(__name__)

MIN_ATTEMPTS = 200
MIN_STUDENTS = 20
MAX_GUESS = 0.3
MAX_SLIP = 0.3
STUCK_ATTEMPTS = 5  # "mastery not rising after N attempts": at least this many attempts on a topic ...
STUCK_BELOW = 0.4  # ... and mastery still under this
BOUNDS = {"p_init": (0.01, 0.99), "p_learn": (0.01, 0.6), "p_guess": (0.01, MAX_GUESS), "p_slip": (0.01, MAX_SLIP)}
REFIT_LOCK = 0x6B74_0001  # pg advisory lock: one refit at a time


class MasteryDaily(db.Model):
    """The nightly snapshot the dashboard's "mastery over time" reads: per local day, subject,
    topic and grade, the students who had attempted the topic by the end of that day, the sum
    of their mastery then and how many had mastered it. Rewritten whole by each refit (the
    refitted parameters change the past too), so missed nights need nothing special."""

    __tablename__ = "mastery_daily"

    date: Mapped[date] = mapped_column(Date, primary_key=True)
    subject: Mapped[str] = mapped_column(String(64), primary_key=True)
    topic: Mapped[str] = mapped_column(String(120), primary_key=True)
    grade_level: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    students: Mapped[int] = mapped_column(Integer, nullable=False)
    mastery_sum: Mapped[float] = mapped_column(Float, nullable=False)
    mastered: Mapped[int] = mapped_column(Integer, nullable=False)


class MasteryStudents(db.Model):
    """The nightly per-student snapshot the dashboard's heatmap and at-risk list start from, so
    they read one row per student and subject instead of scanning every mastery row and probing
    every student's sessions: the average mastery over the subject's attempted topics, the
    topics "not rising" (``STUCK_ATTEMPTS``+ attempts, mastery under ``STUCK_BELOW``), the last
    attempt and the student's last session (any subject) when the refit ran."""

    __tablename__ = "mastery_students"
    __table_args__ = (Index("ix_mastery_students_mastery_avg", "mastery_avg"),)

    student_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    subject: Mapped[str] = mapped_column(String(64), primary_key=True)
    grade_level: Mapped[int] = mapped_column(SmallInteger, nullable=False)
    topics: Mapped[int] = mapped_column(Integer, nullable=False)
    mastery_avg: Mapped[float] = mapped_column(Float, nullable=False)
    stuck: Mapped[list[str]] = mapped_column(ARRAY(String(120)), nullable=False)
    last_attempt: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    last_session: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    snapshot_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


@dataclass(frozen=True)
class Fit:
    params: BKT
    log_likelihood: float
    iterations: int


def pad(df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Attempts of one topic (``student_id``, ``correct``, in time order within a student) as
    a students x positions array of 0/1 (padded with 0) and each student's length."""
    student = df["student_id"].to_numpy()
    starts = np.r_[0, np.flatnonzero(student[1:] != student[:-1]) + 1]
    lengths = np.diff(np.r_[starts, len(student)])
    position = np.arange(len(student)) - np.repeat(starts, lengths)
    obs = np.zeros((len(starts), int(lengths.max()) if len(lengths) else 0), dtype=np.int8)
    obs[np.repeat(np.arange(len(starts)), lengths), position] = df["correct"].to_numpy(dtype=np.int8)
    return obs, lengths


def _forward(
    obs: np.ndarray, mask: np.ndarray, p: BKT, active: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Scaled forward pass: alpha (n, t, 2) = P(state | answers so far), the scales, and the
    emission probabilities (padding emits 1 in both states, so it changes nothing).

    ``active[t]``, for rows sorted by length (longest first), is how many rows are still in
    their sequence at position t: only those are computed (a class's few long sequences then
    cost what they are, not the whole padded matrix); padding keeps neutral values.
    """
    n, t_max = obs.shape
    e_known = np.where(mask, np.where(obs == 1, 1 - p.p_slip, p.p_slip), 1.0)
    e_unknown = np.where(mask, np.where(obs == 1, p.p_guess, 1 - p.p_guess), 1.0)
    alpha = np.full((n, t_max, 2), 0.5)
    scale = np.ones((n, t_max))
    for t in range(t_max):
        k = n if active is None else int(active[t])
        if t:
            prev0, prev1 = alpha[:k, t - 1, 0], alpha[:k, t - 1, 1]
            a0 = prev0 * (1 - p.p_learn) * e_unknown[:k, t]
            a1 = (prev0 * p.p_learn + prev1) * e_known[:k, t]
        else:
            a0, a1 = (1 - p.p_init) * e_unknown[:k, 0], p.p_init * e_known[:k, 0]
        c = a0 + a1
        scale[:k, t] = c
        alpha[:k, t, 0], alpha[:k, t, 1] = a0 / c, a1 / c
    return alpha, scale, e_unknown, e_known


def fit_bkt(obs: np.ndarray, lengths: np.ndarray, start: BKT = DEFAULT, max_iter: int = 200, tol: float = 1e-6) -> Fit:
    """EM (Baum-Welch) for one topic's parameters from its students' answer sequences; stops
    when the log-likelihood gains less than ``tol`` of itself in an iteration."""
    order = np.argsort(-lengths, kind="stable")  # longest first: each step works on a prefix
    obs, lengths = obs[order], lengths[order]
    n, t_max = obs.shape
    active = (lengths[:, None] > np.arange(t_max)[None, :]).sum(axis=0)
    mask = np.arange(t_max)[None, :] < lengths[:, None]
    step_mask = mask[:, 1:]  # transitions t -> t+1 that happened
    p = start
    previous = -np.inf
    iterations = 0
    loglik = -np.inf
    for iterations in range(1, max_iter + 1):  # noqa: B007 - the count is reported
        alpha, scale, e0, e1 = _forward(obs, mask, p, active)
        loglik = float(np.log(scale[mask]).sum())
        beta = np.ones((n, t_max, 2))
        for t in range(t_max - 2, -1, -1):
            k = int(active[t + 1])
            b0, b1 = beta[:k, t + 1, 0], beta[:k, t + 1, 1]
            c = scale[:k, t + 1]
            beta[:k, t, 0] = ((1 - p.p_learn) * e0[:k, t + 1] * b0 + p.p_learn * e1[:k, t + 1] * b1) / c
            beta[:k, t, 1] = e1[:k, t + 1] * b1 / c
        gamma = alpha * beta
        gamma /= gamma.sum(axis=2, keepdims=True)
        xi_learn = alpha[:, :-1, 0] * p.p_learn * e1[:, 1:] * beta[:, 1:, 1] / scale[:, 1:]
        unknown_before = gamma[:, :-1, 0]
        g0, g1 = gamma[:, :, 0][mask], gamma[:, :, 1][mask]
        right = obs[mask] == 1
        p = _bounded(
            p_init=float(gamma[:, 0, 1].mean()),
            p_learn=float(xi_learn[step_mask].sum() / max(unknown_before[step_mask].sum(), 1e-12)),
            p_guess=float(g0[right].sum() / max(g0.sum(), 1e-12)),
            p_slip=float(g1[~right].sum() / max(g1.sum(), 1e-12)),
        )
        if loglik - previous < tol * max(1.0, abs(loglik)):
            break
        previous = loglik
    return Fit(p, loglik, iterations)


def _bounded(**values: float) -> BKT:
    return BKT(**{k: min(max(v, BOUNDS[k][0]), BOUNDS[k][1]) for k, v in values.items()})


def state_predictions(obs: np.ndarray, lengths: np.ndarray, p: BKT) -> np.ndarray:
    """P(known) before each attempt (padded positions are NaN), to compare with pyBKT."""
    mask = np.arange(obs.shape[1])[None, :] < lengths[:, None]
    alpha, *_ = _forward(obs, mask, p)
    known = alpha[:, :, 1]
    before = np.empty_like(known)
    before[:, 0] = p.p_init
    before[:, 1:] = known[:, :-1] + (1 - known[:, :-1]) * p.p_learn
    return np.where(mask, before, np.nan)


# ----------------------------------------------------------------------------- the nightly job


def read_attempts() -> pd.DataFrame:
    """Every attempt's (subject, topic, student, correct, time), in sequence order (CSV COPY;
    times travel as integer microseconds, which parse fast and exactly)."""
    sql = (
        "COPY (SELECT subject, topic, student_id, correct::int, (extract(epoch FROM created_at) * 1000000)::int8 "
        "FROM attempts "
        "ORDER BY subject, topic, student_id, created_at, id) TO STDOUT WITH (FORMAT csv)"
    )
    buffer = io.StringIO()
    raw = db.engine.raw_connection()
    try:
        with raw.cursor() as cur:
            cur.copy_expert(sql, buffer)
    finally:
        raw.close()
    buffer.seek(0)
    frame = pd.read_csv(
        buffer,
        names=["subject", "topic", "student_id", "correct", "created_at"],
        dtype={"subject": str, "topic": str, "student_id": np.int64, "correct": np.int8, "created_at": np.int64},
        keep_default_na=False,
    )
    frame["created_at"] = pd.to_datetime(frame["created_at"], unit="us", utc=True)
    return frame


def refit(min_attempts: int = MIN_ATTEMPTS, min_students: int = MIN_STUDENTS) -> dict[str, int]:
    """Refit every topic with enough data, forget fits of topics that no longer have it, and
    recompute every student's mastery. Idempotent; an attempt recorded while it runs keeps
    the value its own update gave it (its row is not overwritten)."""
    with db.engine.connect() as lock:
        if not lock.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": REFIT_LOCK}).scalar():
            log.info("mastery refit already running; skipped")
            return {"topics": 0, "fitted": 0, "students": 0}
        try:
            return _refit(min_attempts, min_students)
        finally:
            lock.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": REFIT_LOCK})
            lock.commit()


def _refit(min_attempts: int, min_students: int) -> dict[str, int]:
    attempts = read_attempts()
    fitted: list[dict] = []
    rows: list[pd.DataFrame] = []
    after = np.empty(len(attempts))  # each attempt's P(known) after it, for the snapshot
    now = datetime.now(UTC)
    for (subject, topic), group in attempts.groupby(["subject", "topic"], sort=False):
        obs, lengths = pad(group)
        params = DEFAULT
        if len(group) >= min_attempts and len(lengths) >= min_students:
            fit = fit_bkt(obs, lengths)
            params = fit.params
            fitted.append({"subject": subject, "topic": topic, **params.__dict__, "attempts": len(group),
                           "students": len(lengths), "fitted_at": now})  # fmt: skip
        mask = np.arange(obs.shape[1])[None, :] < lengths[:, None]
        trajectory = mastery_trajectory(obs, lengths, params)
        after[attempts.index.get_indexer(group.index)] = trajectory[mask]
        ends = np.cumsum(lengths) - 1
        rows.append(
            pd.DataFrame(
                {
                    "student_id": group["student_id"].to_numpy()[ends],
                    "subject": subject,
                    "topic": topic,
                    "p_known": trajectory[np.arange(len(lengths)), lengths - 1],
                    "attempts": lengths,
                    "correct": np.add.reduceat(group["correct"].to_numpy(dtype=np.int64), np.r_[0, ends[:-1] + 1]),
                    "last_attempt": group["created_at"].to_numpy()[ends],
                }
            )
        )
    attempts["p_known"] = after
    zone = _zone(None)
    daily = snapshot(attempts, _grades(), local_today(zone), zone)
    mastery = pd.concat(rows, ignore_index=True) if rows else None
    _write(fitted, mastery, daily, per_student(mastery, _grades(), now))
    summary = {"topics": len(rows), "fitted": len(fitted), "students": int(sum(len(r) for r in rows)),
               "snapshot_rows": len(daily)}  # fmt: skip
    log.info("mastery refit: %(topics)d topic(s), %(fitted)d fitted, %(students)d student-topic rows", summary)
    return summary


def mastery_trajectory(obs: np.ndarray, lengths: np.ndarray, p: BKT) -> np.ndarray:
    """P(known) after each attempt (students x positions; padding is meaningless)."""
    mask = np.arange(obs.shape[1])[None, :] < lengths[:, None]
    alpha, *_ = _forward(obs, mask, p)
    known = alpha[:, :, 1]
    return known + (1 - known) * p.p_learn


def per_student(mastery: pd.DataFrame | None, grades: pd.Series, now: datetime) -> pd.DataFrame:
    """``mastery_students`` rows from the refit's mastery rows (one per student and topic)."""
    columns = ["student_id", "subject", "grade_level", "topics", "mastery_avg", "stuck", "last_attempt",
               "last_session", "snapshot_at"]  # fmt: skip
    if mastery is None or mastery.empty:
        return pd.DataFrame(columns=columns)
    frame = mastery.assign(stuck=np.where((mastery["attempts"] >= STUCK_ATTEMPTS) & (mastery["p_known"] < STUCK_BELOW),
                                          mastery["topic"], None))  # fmt: skip
    out = frame.groupby(["student_id", "subject"], as_index=False).agg(
        topics=("topic", "size"),
        mastery_avg=("p_known", "mean"),
        stuck=(
            "stuck",
            lambda v: "{" + ",".join('"' + t + '"' for t in sorted(x for x in v if isinstance(x, str))) + "}",
        ),
        last_attempt=("last_attempt", "max"),
    )
    out["grade_level"] = out["student_id"].map(grades).fillna(UNKNOWN_GRADE).astype(np.int64)
    with db.engine.connect() as conn:
        last = dict(conn.execute(text("SELECT student_id, max(created_at) FROM sessions GROUP BY student_id")).all())
    out["last_session"] = out["student_id"].map(last)
    out["snapshot_at"] = now
    return out[columns]


def _grades() -> pd.Series:
    with db.engine.connect() as conn:
        rows = conn.execute(text("SELECT id, grade_level FROM users WHERE role = 'student'")).all()
    return pd.Series(
        {r.id: (r.grade_level if r.grade_level is not None else UNKNOWN_GRADE) for r in rows}, dtype="int64"
    )


def snapshot(attempts: pd.DataFrame, grades: pd.Series, through: date, zone: ZoneInfo) -> pd.DataFrame:
    """Per local day (first attempt's day through ``through``), subject, topic and grade: the
    students with an attempt so far, the sum of their mastery at the end of the day and the
    number at or above ``MASTERED``. ``attempts`` has subject, topic, student_id, created_at
    and p_known (after the attempt), in time order within each student and topic; days are
    local days in ``zone``."""
    columns = ["date", "subject", "topic", "grade_level", "students", "mastery_sum", "mastered"]
    if attempts.empty:
        return pd.DataFrame(columns=columns)
    frame = attempts[["subject", "topic", "student_id", "p_known"]].copy()
    frame["day"] = pd.to_datetime(attempts["created_at"], utc=True).dt.tz_convert(zone).dt.tz_localize(None)
    frame["day"] = frame["day"].dt.normalize()
    keys = ["subject", "topic", "student_id"]
    last = frame.groupby([*keys, "day"], sort=False, as_index=False)["p_known"].last()
    previous = last.groupby(keys, sort=False)["p_known"].shift(1)
    last["d_students"] = previous.isna().astype(np.int64)
    previous = previous.fillna(0.0)
    last["d_sum"] = last["p_known"] - previous
    last["d_mastered"] = (last["p_known"] >= MASTERED).astype(np.int64) - (previous >= MASTERED).astype(np.int64)
    last["grade_level"] = last["student_id"].map(grades).fillna(UNKNOWN_GRADE).astype(np.int64)
    changes = last.groupby(["subject", "topic", "grade_level", "day"])[["d_students", "d_sum", "d_mastered"]].sum()
    end = pd.Timestamp(through)
    parts = []
    for (subject, topic, grade), part in changes.groupby(level=[0, 1, 2]):
        by_day = part.droplevel([0, 1, 2])
        days = pd.date_range(by_day.index.min(), max(end, by_day.index.max()), freq="D")
        totals = by_day.reindex(days, fill_value=0).cumsum()
        parts.append(
            pd.DataFrame(
                {
                    "date": days.date,
                    "subject": subject,
                    "topic": topic,
                    "grade_level": grade,
                    "students": totals["d_students"].to_numpy(),
                    "mastery_sum": totals["d_sum"].to_numpy().clip(min=0.0),
                    "mastered": totals["d_mastered"].to_numpy(),
                }
            )
        )
    return pd.concat(parts, ignore_index=True)[columns]


def _copy(conn, table: str, frame: pd.DataFrame) -> None:  # type: ignore[no-untyped-def]
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False, header=False)
    buffer.seek(0)
    columns = ", ".join(frame.columns)
    conn.connection.driver_connection.cursor().copy_expert(
        f"COPY {table} ({columns}) FROM STDIN WITH (FORMAT csv)", buffer
    )


def _write(fitted: list[dict], mastery: pd.DataFrame | None, daily: pd.DataFrame, students: pd.DataFrame) -> None:
    with db.engine.begin() as conn:
        conn.execute(text("DELETE FROM mastery_students"))
        if not students.empty:
            _copy(conn, "mastery_students", students)
        conn.execute(text("DELETE FROM mastery_daily"))
        if not daily.empty:
            _copy(conn, "mastery_daily", daily)
        conn.execute(text("DELETE FROM bkt_params"))
        if fitted:
            conn.execute(
                text(
                    "INSERT INTO bkt_params (subject, topic, p_init, p_learn, p_guess, p_slip, attempts, students, "
                    "fitted_at) VALUES (:subject, :topic, :p_init, :p_learn, :p_guess, :p_slip, :attempts, "
                    ":students, :fitted_at)"
                ),
                fitted,
            )
        if mastery is None or mastery.empty:
            return
        conn.execute(
            text(
                "CREATE TEMP TABLE refit_mastery (student_id int, subject text, topic text, p_known float8, "
                "attempts int, correct int, last_attempt timestamptz) ON COMMIT DROP"
            )
        )
        _copy(conn, "refit_mastery", mastery)
        # Rows whose attempt count moved while the refit read (a live attempt) keep their value.
        conn.execute(
            text(
                """
                INSERT INTO mastery AS m (student_id, subject, topic, p_known, attempts, correct, last_attempt)
                SELECT student_id, subject, topic, p_known, attempts, correct, last_attempt FROM refit_mastery
                ON CONFLICT (student_id, subject, topic) DO UPDATE
                    SET p_known = EXCLUDED.p_known, correct = EXCLUDED.correct, last_attempt = EXCLUDED.last_attempt
                    WHERE m.attempts = EXCLUDED.attempts
                """
            )
        )
