"""Additive daily rollups behind the analytics dashboard (written by ``analytics.rollup``).

Every table is keyed by a local day (``ANALYTICS_TZ``), the session's ``subject`` and the
student's ``grade_level`` (read from ``users`` when the day is rolled up; ``UNKNOWN_GRADE`` = -1
when the student has none), so a dashboard filter on any range of days, subjects and grades is
a plain ``SUM`` over rows (or over the elements of their arrays):

* ``rollup_daily``: counts and sums (divide sums by counts for means) and a latency histogram
  per day × subject × grade. Sessions are counted on the day they started; messages on the day
  they were created, with the subject and grade of their session.
* ``rollup_students``: the day's students per subject × grade, as parallel arrays (one
  element per student: sessions, duration and rating sums); the view ``rollup_student_day``
  unnests it into one row per student, day and subject, so ``COUNT(DISTINCT student_id)``
  gives exact active students for any range and filter.
* ``rollup_topics``: sessions touching each topic (parallel arrays of topics and sessions);
  the view ``rollup_topic_day`` has one row per topic.
* ``rollup_hours``: sessions by local hour of start, 24 elements (``weekday`` 0 = Monday ... 6
  = Sunday); the view ``rollup_hour`` has one row per hour with sessions.

Where a figure has many values a day (students, topics, hours) they are arrays in one row per
day × subject × grade: the nightly job then writes a few dozen rows a day rather than one per
student, and the views show them one per row for SQL written by hand.

The nightly job deletes and rewrites whole days, so rerunning it never double counts. There is
no foreign key to ``users``: the rows are a record of each day as it was rolled up.

Latency histograms: bucket 0 holds latencies below ``LATENCY_EDGES_MS[0]`` (10 ms), bucket
``i`` (1 <= i < len(edges)) holds ``[edges[i-1], edges[i])`` and the last bucket everything from
``edges[-1]`` (about 607 s) up. Edges grow by exactly 2 %, so ``latency_percentiles`` on the
element-wise sum of any rows' histograms is within 2 % of the exact linear-interpolated
percentile of the underlying latencies (see its docstring).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from typing import Any

import numpy as np
from sqlalchemy import BigInteger, Date, Float, ForeignKey, Identity, Integer, SmallInteger, String, text
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from foundation.extensions import db
from tutor.models import now_column

__all__ = [
    "LATENCY_BUCKETS",
    "LATENCY_EDGES_MS",
    "LATENCY_GROWTH",
    "ROLLUP_TABLES",
    "UNKNOWN_GRADE",
    "RollupDaily",
    "RollupHours",
    "RollupModels",
    "RollupStudents",
    "RollupTopics",
    "latency_bucket",
    "latency_histogram",
    "latency_percentiles",
]

UNKNOWN_GRADE = -1

#: Bucket edges in ms: 10 ms × 1.02**k, k = 0..556 (10 ms to about 607 s).
LATENCY_GROWTH = 1.02
LATENCY_EDGES_MS: np.ndarray = 10.0 * LATENCY_GROWTH ** np.arange(557)
LATENCY_EDGES_MS.setflags(write=False)
#: Buckets per histogram: one below the first edge, one per pair of edges, one from the last edge up.
LATENCY_BUCKETS = len(LATENCY_EDGES_MS) + 1

ROLLUP_TABLES = ("rollup_daily", "rollup_students", "rollup_topics", "rollup_hours", "rollup_models")


def _grade() -> Mapped[int]:
    return mapped_column(SmallInteger, primary_key=True)


def _count() -> Mapped[int]:
    return mapped_column(Integer, nullable=False, server_default="0")


def _big() -> Mapped[int]:
    return mapped_column(BigInteger, nullable=False, server_default="0")


# Per-session metrics (written when a session ends) and the per-day summary the nightly job
# writes beside the rollup tables.
class SessionMetrics(db.Model):
    __tablename__ = "session_metrics"

    id: Mapped[int] = mapped_column(Integer, Identity(), primary_key=True)
    session_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("sessions.id", ondelete="CASCADE"), nullable=False, unique=True
    )
    duration_seconds: Mapped[int | None] = mapped_column(Integer)
    message_count: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    student_satisfaction: Mapped[float | None] = mapped_column(Float)
    topic_coverage: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = now_column()


class DailyStats(db.Model):
    __tablename__ = "daily_stats"

    id: Mapped[int] = mapped_column(Integer, Identity(), primary_key=True)
    date: Mapped[date] = mapped_column(Date, nullable=False, unique=True)
    total_sessions: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    avg_duration: Mapped[float | None] = mapped_column(Float)
    total_users: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    popular_topics: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, server_default=text("'{}'::jsonb"))
    total_messages: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    avg_satisfaction: Mapped[float | None] = mapped_column(Float)
    ai_latency_p50_ms: Mapped[float | None] = mapped_column(Float)
    ai_latency_p95_ms: Mapped[float | None] = mapped_column(Float)
    ai_failures: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")


class RollupDaily(db.Model):
    """Additive figures per local day × subject × grade."""

    __tablename__ = "rollup_daily"

    date: Mapped[date] = mapped_column(Date, primary_key=True)
    subject: Mapped[str] = mapped_column(String(64), primary_key=True)
    grade_level: Mapped[int] = _grade()
    sessions: Mapped[int] = _count()
    duration_sum: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    duration_count: Mapped[int] = _count()
    rating_sum: Mapped[int] = _count()
    rating_count: Mapped[int] = _count()
    student_messages: Mapped[int] = _count()
    tutor_replies_done: Mapped[int] = _count()
    tutor_replies_failed: Mapped[int] = _count()
    answer_revealed_count: Mapped[int] = _count()
    answer_checked_count: Mapped[int] = _count()
    #: done tutor replies with a latency, and the sum of those latencies (exact mean)
    latency_count: Mapped[int] = _count()
    latency_sum_ms: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    #: LATENCY_BUCKETS counts of done replies' latencies (see the module docstring)
    latency_hist: Mapped[list[int]] = mapped_column(
        ARRAY(Integer), nullable=False, server_default=text("'{}'::integer[]")
    )
    # finished replies cut at AI_MAX_TOKENS; the model's own time (generation_ms) beside the
    # student's wait (latency); tokens as the server counted them or, where it sent none, estimated
    replies_cut_short: Mapped[int] = _count()
    generation_count: Mapped[int] = _count()
    generation_sum_ms: Mapped[int] = _big()
    prompt_tokens: Mapped[int] = _big()
    completion_tokens: Mapped[int] = _big()
    # the students' thumbs on tutor replies (messages.feedback)
    thumbs_up: Mapped[int] = _count()
    thumbs_down: Mapped[int] = _count()


class RollupStudents(db.Model):
    """The students with sessions on a day, per subject × grade: parallel arrays, one element per
    student (sorted by id) with that student's sessions, duration and rating sums and counts.

    One row per day × subject × grade rather than one per student and day keeps the nightly
    insert small (a few dozen rows a day instead of one per active student). The view
    ``rollup_student_day`` (migration 0005) unnests it into one row per student, day and subject.
    """

    __tablename__ = "rollup_students"

    date: Mapped[date] = mapped_column(Date, primary_key=True)
    subject: Mapped[str] = mapped_column(String(64), primary_key=True)
    grade_level: Mapped[int] = _grade()
    student_ids: Mapped[list[int]] = mapped_column(ARRAY(Integer), nullable=False)
    sessions: Mapped[list[int]] = mapped_column(ARRAY(Integer), nullable=False)
    duration_sums: Mapped[list[int]] = mapped_column(ARRAY(BigInteger), nullable=False)
    duration_counts: Mapped[list[int]] = mapped_column(ARRAY(Integer), nullable=False)
    rating_sums: Mapped[list[int]] = mapped_column(ARRAY(Integer), nullable=False)
    rating_counts: Mapped[list[int]] = mapped_column(ARRAY(Integer), nullable=False)


class RollupModels(db.Model):
    """Finished replies and their tokens per local day × subject × grade × model (the message's
    ``model``, else its ``provider``, else "unknown"): the dashboard prices them with ``AI_PRICES``.
    ``tokens_estimated`` counts the replies whose server sent no usage (tokens estimated)."""

    __tablename__ = "rollup_models"

    date: Mapped[date] = mapped_column(Date, primary_key=True)
    subject: Mapped[str] = mapped_column(String(64), primary_key=True)
    grade_level: Mapped[int] = _grade()
    model: Mapped[str] = mapped_column(String(128), primary_key=True)
    replies: Mapped[int] = _count()
    prompt_tokens: Mapped[int] = _big()
    completion_tokens: Mapped[int] = _big()
    tokens_estimated: Mapped[int] = _count()


class RollupTopics(db.Model):
    """Sessions touching each topic, per local day × subject × grade: ``topics`` and
    ``sessions`` are parallel arrays (one element per topic, sorted by name). The view
    ``rollup_topic_day`` unnests them into one row per topic."""

    __tablename__ = "rollup_topics"

    date: Mapped[date] = mapped_column(Date, primary_key=True)
    subject: Mapped[str] = mapped_column(String(64), primary_key=True)
    grade_level: Mapped[int] = _grade()
    topics: Mapped[list[str]] = mapped_column(ARRAY(String(120)), nullable=False)
    sessions: Mapped[list[int]] = mapped_column(ARRAY(Integer), nullable=False)


class RollupHours(db.Model):
    """Sessions by local hour of start (``sessions[1]`` is 00:00-00:59 ... ``sessions[24]``
    23:00-23:59) per local day × subject × grade; ``weekday`` is the date's (0 = Monday ... 6 =
    Sunday). The view ``rollup_hour`` unnests them into one row per hour with sessions."""

    __tablename__ = "rollup_hours"

    date: Mapped[date] = mapped_column(Date, primary_key=True)
    subject: Mapped[str] = mapped_column(String(64), primary_key=True)
    grade_level: Mapped[int] = _grade()
    weekday: Mapped[int] = mapped_column(SmallInteger, nullable=False)
    sessions: Mapped[list[int]] = mapped_column(ARRAY(Integer), nullable=False)


# -- latency histograms ---------------------------------------------------------------------------


def latency_bucket(latency_ms: Iterable[float] | np.ndarray) -> np.ndarray:
    """The histogram bucket of each latency (0 .. LATENCY_BUCKETS - 1)."""
    return np.searchsorted(LATENCY_EDGES_MS, np.asarray(latency_ms, dtype=float), side="right")


def latency_histogram(latency_ms: Iterable[float] | np.ndarray) -> np.ndarray:
    """Counts per bucket (length LATENCY_BUCKETS, int64) of the given latencies."""
    return np.bincount(latency_bucket(latency_ms), minlength=LATENCY_BUCKETS).astype(np.int64)


def latency_percentiles(hist_sum: Sequence[int] | np.ndarray, qs: Iterable[float]) -> list[float | None]:
    """Percentiles from a (summed) latency histogram; ``qs`` are fractions, e.g. ``(0.5, 0.95)``.

    Like numpy's default ('linear'), the q-quantile of n values is the value at fractional rank
    ``h = q * (n - 1)`` of the sorted values, interpolated between ranks ``floor(h)`` and
    ``ceil(h)``. The value of an integer rank is estimated inside its bucket, as if the bucket's
    ``c`` values sat evenly at ``lo + (j + 0.5) / c * (hi - lo)``. Each estimate is in the same
    bucket as the true value, hence off by less than the bucket's width, which is 2 % of its lower
    edge; a weighted mean of two such estimates is therefore within 2 % (relative) of the exact
    percentile, for latencies between 10 ms and 607 s. Below 10 ms the error is under 10 ms; in
    the open top bucket (>= 607 s) the estimate is the bucket's lower edge. ``None`` when the
    histogram is empty. An empty list (a row without replies) counts as all zeros.
    """
    qs = [float(q) for q in qs]
    if any(not 0.0 <= q <= 1.0 for q in qs):
        raise ValueError("quantiles must be fractions between 0 and 1, e.g. 0.95")
    hist = np.asarray(hist_sum, dtype=np.int64)
    if hist.size == 0:
        hist = np.zeros(LATENCY_BUCKETS, np.int64)
    if hist.shape != (LATENCY_BUCKETS,):
        raise ValueError(f"a latency histogram has {LATENCY_BUCKETS} buckets, not {hist.size}")
    n = int(hist.sum())
    if n == 0:
        return [None for _ in qs]
    cum = np.cumsum(hist)
    lows = np.concatenate([[0.0], LATENCY_EDGES_MS])
    highs = np.concatenate([LATENCY_EDGES_MS, [LATENCY_EDGES_MS[-1]]])  # open top: the lower edge

    def value_at(rank: int) -> float:
        b = int(np.searchsorted(cum, rank, side="right"))
        before = int(cum[b - 1]) if b else 0
        c = int(hist[b])
        return float(lows[b] + (rank - before + 0.5) / c * (highs[b] - lows[b]))

    out: list[float | None] = []
    for q in qs:
        h = q * (n - 1)
        lo = int(np.floor(h))
        hi = min(lo + 1, n - 1)
        v_lo = value_at(lo)
        out.append(v_lo if hi == lo or h == lo else v_lo + (h - lo) * (value_at(hi) - v_lo))
    return out
