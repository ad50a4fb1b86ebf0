"""Analytics jobs: per-session metrics now; the daily rollups read by the dashboard."""

from __future__ import annotations

import io
import json
import logging
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
from flask import current_app
from sqlalchemy import text

from tutor.extensions import db
from tutor.rollups import LATENCY_BUCKETS, UNKNOWN_GRADE, latency_bucket

log = logging.getLogger(__name__)


def compute_session_metrics(session_id: str | uuid.UUID) -> None:
    """Write the ``session_metrics`` row of one session; running it again rewrites the same row.

    ``topic_coverage`` is the share of the subject's curriculum topics the session touched;
    it stays null until the curriculum is known for that subject.
    """
    from tutor.curriculum import topic_count

    sid = uuid.UUID(str(session_id))
    row = db.session.execute(
        text(
            """
            SELECT s.subject, s.duration_seconds, s.satisfaction,
                   (SELECT count(*) FROM messages m WHERE m.session_id = s.id) AS message_count,
                   (SELECT count(*) FROM session_topics t WHERE t.session_id = s.id) AS topics
            FROM sessions s WHERE s.id = :sid
            """
        ),
        {"sid": sid},
    ).one_or_none()
    if row is None:
        return
    total = topic_count(row.subject)
    coverage = min(1.0, row.topics / total) if total else None
    db.session.execute(
        text(
            """
            INSERT INTO session_metrics (session_id, duration_seconds, message_count, student_satisfaction, topic_coverage)
            VALUES (:sid, :duration, :messages, :satisfaction, :coverage)
            ON CONFLICT (session_id) DO UPDATE SET
                duration_seconds = EXCLUDED.duration_seconds,
                message_count = EXCLUDED.message_count,
                student_satisfaction = EXCLUDED.student_satisfaction,
                topic_coverage = EXCLUDED.topic_coverage
            """
        ),
        {
            "sid": sid,
            "duration": row.duration_seconds,
            "messages": row.message_count,
            "satisfaction": row.satisfaction,
            "coverage": coverage,
        },
    )
    db.session.commit()


# -- daily rollups --------------------------------------------------------------------------------
#
# SQL only selects: the rows of the days being rolled up (range conditions on the created_at
# indexes, index lookups for the rest) and the columns the figures need, streamed out with COPY.
# pandas/numpy place each row on its local day and do all the aggregation. Each chunk of days
# is rewritten in one transaction (daily_stats upserted by date; the rollup tables deleted and
# inserted by date) under an advisory lock, so two runs never interleave and a rerun leaves
# the same rows.

#: Days rolled up per transaction (and per read) by ``rollup_range``.
CHUNK_DAYS = 7
TOP_TOPICS = 10
_LOCK_KEY = 0x524F4C4C5550  # "ROLLUP": one rollup writer at a time
_EPOCH = date(1970, 1, 1)


_DAILY_UPSERT = """
    INSERT INTO daily_stats (date, total_sessions, avg_duration, total_users, popular_topics, total_messages,
                             avg_satisfaction, ai_latency_p50_ms, ai_latency_p95_ms, ai_failures)
    VALUES %s
    ON CONFLICT (date) DO UPDATE SET
        total_sessions = EXCLUDED.total_sessions,
        avg_duration = EXCLUDED.avg_duration,
        total_users = EXCLUDED.total_users,
        popular_topics = EXCLUDED.popular_topics,
        total_messages = EXCLUDED.total_messages,
        avg_satisfaction = EXCLUDED.avg_satisfaction,
        ai_latency_p50_ms = EXCLUDED.ai_latency_p50_ms,
        ai_latency_p95_ms = EXCLUDED.ai_latency_p95_ms,
        ai_failures = EXCLUDED.ai_failures
"""
_ROLLUP_COLUMNS = {
    "rollup_daily": [
        "date", "subject", "grade_level", "sessions", "duration_sum", "duration_count", "rating_sum",
        "rating_count", "student_messages", "tutor_replies_done", "tutor_replies_failed",
        "answer_revealed_count", "answer_checked_count", "latency_count", "latency_sum_ms", "latency_hist",
    ],
    "rollup_student_day": [
        "date", "student_id", "subject", "grade_level", "sessions", "duration_sum", "duration_count",
        "rating_sum", "rating_count",
    ],
    "rollup_topic_day": ["date", "subject", "grade_level", "topic", "sessions"],
    "rollup_hour": ["date", "subject", "grade_level", "hour", "weekday", "sessions"],
}  # fmt: skip


@dataclass(frozen=True)
class ChunkResult:
    """What one transaction rolled up: its days and how many source rows it read."""

    days: list[date]
    sessions: int
    topics: int
    messages: int


def _zone(tz: str | ZoneInfo | None) -> ZoneInfo:
    if tz is None:
        tz = current_app.config.get("ANALYTICS_TZ") or "UTC"
    return tz if isinstance(tz, ZoneInfo) else ZoneInfo(tz)


def local_day_bounds(day: date, tz: str | ZoneInfo) -> tuple[datetime, datetime]:
    """The UTC instants ``[start, end)`` that cover local day ``day`` in time zone ``tz``.

    Normally exactly midnight to midnight. When a DST change makes a midnight ambiguous or
    skipped, the range is widened to its earliest start and latest end; rows inside it that
    belong to a neighbouring day (by their local date) are then left out by the rollup.
    """
    zone = _zone(tz)

    def at(d: date, earliest: bool) -> datetime:
        both = [datetime.combine(d, dtime(0), tzinfo=zone).replace(fold=f).astimezone(UTC) for f in (0, 1)]
        return min(both) if earliest else max(both)

    return at(day, True), at(day + timedelta(days=1), False)


def local_today(tz: str | ZoneInfo | None = None) -> date:
    """Today in ``tz`` (default ``ANALYTICS_TZ``)."""
    return datetime.now(_zone(tz)).date()


def popular_topics_sorted(popular_topics: dict[str, int] | None) -> list[tuple[str, int]]:
    """A ``daily_stats.popular_topics`` value as ``[(topic, sessions), ...]``: count desc, then name.

    The job picks the top ten in that order (names compared by code point), but JSONB does not
    keep key order (it sorts keys by length, then bytes): read the order through this helper.
    """
    return sorted(((str(k), int(v)) for k, v in (popular_topics or {}).items()), key=lambda kv: (-kv[1], kv[0]))


def _parse_day(value: date | str, what: str = "day") -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value).strip())
    except ValueError:
        raise ValueError(f"{what} {value!r} is not a date (YYYY-MM-DD)") from None


def aggregate_daily_stats(day: date | str | None = None) -> list[date]:
    """The nightly job: roll up ``daily_stats`` and the ``rollup_*`` tables; return the days written.

    With ``day`` (a date or ``YYYY-MM-DD``), just that local day. Without, every day from the
    day after the last one in ``daily_stats`` (or from the first session's day) through
    yesterday, always including yesterday and the day before (late replies, ratings and
    sessions ending after midnight land there). Days are local days in ``ANALYTICS_TZ``.
    Rerunning rewrites the same rows.
    """
    zone = _zone(None)
    if day is not None:
        one = _parse_day(day)
        return rollup_range(one, one, tz=zone)
    yesterday = local_today(zone) - timedelta(days=1)
    start = yesterday - timedelta(days=1)
    with db.engine.connect() as conn:
        last = conn.execute(text("SELECT max(date) FROM daily_stats WHERE date <= :y"), {"y": yesterday}).scalar()
        if last is not None:
            start = min(start, last + timedelta(days=1))
        else:
            first = conn.execute(text("SELECT min(created_at) FROM sessions")).scalar()
            if first is not None:
                start = min(start, first.astimezone(zone).date())
    days = rollup_range(start, yesterday, tz=zone)
    log.info("rolled up %d day(s), %s to %s", len(days), start, yesterday)
    return days


def rollup_range(
    start: date | str,
    end: date | str,
    progress: bool = False,
    *,
    tz: str | ZoneInfo | None = None,
    chunk_days: int = CHUNK_DAYS,
) -> list[date]:
    """Roll up every local day from ``start`` through ``end`` (inclusive); return those days.

    Days go ``chunk_days`` at a time, one transaction each, so an interrupted backfill keeps
    the chunks it finished. ``progress`` shows a tqdm bar over days.
    """
    zone = _zone(tz)
    first, last = _parse_day(start, "start"), _parse_day(end, "end")
    if last < first:
        raise ValueError(f"end {last} is before start {first}")
    if chunk_days < 1:
        raise ValueError("chunk_days must be at least 1")
    total = (last - first).days + 1
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=total, unit="day", desc="rollup")
    done: list[date] = []
    sessions = 0
    try:
        while len(done) < total:
            lo = first + timedelta(days=len(done))
            hi = min(last, lo + timedelta(days=chunk_days - 1))
            result = rollup_chunk(lo, hi, zone)
            done.extend(result.days)
            sessions += result.sessions
            if bar is not None:
                bar.set_postfix(sessions=f"{sessions:,}", refresh=False)
                bar.update(len(result.days))
    finally:
        if bar is not None:
            bar.close()
    return done


def rollup_chunk(first: date, last: date, tz: str | ZoneInfo | None = None) -> ChunkResult:
    """Roll up the local days ``first`` .. ``last`` (in ``tz``, default ``ANALYTICS_TZ``) in one transaction."""
    zone = _zone(tz)
    days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    with db.engine.begin() as conn:
        cur = conn.connection.dbapi_connection.cursor()
        try:
            # Rollups can be recomputed, and WAL keeps commits in order: a crash loses at most the
            # last chunks, daily_stats rows included, so the next nightly run redoes those days.
            cur.execute("SET LOCAL synchronous_commit = off")
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
            src = _read(cur, days, zone, db.engine)
            out = _aggregate(src, days)
            _write(cur, out, first, last)
        finally:
            cur.close()
    return ChunkResult(days, len(src.sessions), len(src.topics), len(src.messages))


# -- reading ------------------------------------------------------------------------------------
#
# Two reads per chunk, each an index range scan on created_at, run at the same time on two
# connections:
# - the sessions started on the chunk's days with their student's grade, one row per topic;
# - the messages sent on those days that count somewhere (student messages, finished or failed
#   replies) with their session's subject and student's grade (a hash join with the same
#   range of sessions), or the session's id when it started earlier (then looked up by id).
# Each row carries what its figures are keyed by, so the two reads need not agree on anything.

_SESSIONS_SQL = """
    SELECT s.created_at, s.student_id, u.grade_level, s.subject, s.duration_seconds, s.satisfaction, t.topic, t.n
    FROM sessions s
    LEFT JOIN users u ON u.id = s.student_id
    LEFT JOIN LATERAL (
        SELECT st.topic, row_number() OVER () AS n FROM session_topics st WHERE st.session_id = s.id OFFSET 0
    ) t ON true
    WHERE s.created_at >= %(start)s AND s.created_at < %(end)s
"""
# (OFFSET 0 keeps the lateral subquery a per-session index lookup; flattened into a join, the
# planner may choose a full scan of session_topics. ``n`` = 1 or null marks a session's first row.)
_MESSAGES_SQL = """
    SELECT {created_at} m.role, m.status, m.latency_ms, m.answer_revealed::int AS answer_revealed,
           s.subject, s.grade_level, CASE WHEN s.subject IS NULL THEN m.session_id END AS other
    FROM messages m
    LEFT JOIN (
        SELECT s.id, s.subject, u.grade_level
        FROM sessions s LEFT JOIN users u ON u.id = s.student_id
        WHERE s.created_at >= %(start)s AND s.created_at < %(end)s
    ) s ON s.id = m.session_id
    WHERE m.created_at >= %(start)s AND m.created_at < %(end)s
      AND (m.role = 'student' OR m.status IN ('done', 'failed'))
"""
_OTHER_SESSIONS_SQL = """
    SELECT s.id::text, s.subject, u.grade_level
    FROM sessions s LEFT JOIN users u ON u.id = s.student_id
    WHERE s.id = ANY(%s::uuid[])
"""


@dataclass
class _Source:
    """The rows of a chunk's days. Every frame has ``day`` (0 = the chunk's first day) and the
    codes ``s`` (into ``subjects``) and ``g`` (into ``grades``) of its session's subject and
    its student's grade."""

    subjects: np.ndarray
    grades: np.ndarray
    sessions: pd.DataFrame  # + student_id, hour, duration_seconds, satisfaction
    topics: pd.DataFrame  # + topic
    messages: pd.DataFrame  # + role, status, latency_ms, answer_revealed


def _copy_out(cur: Any, sql: str, params: dict[str, Any], dtype: dict[str, Any]) -> pd.DataFrame:
    buf = io.BytesIO()
    cur.copy_expert(f"COPY ({cur.mogrify(sql, params).decode()}) TO STDOUT WITH (FORMAT csv, HEADER true)", buf)
    buf.seek(0)
    return pd.read_csv(buf, dtype=dtype, keep_default_na=False, na_values=[""])


def _local(created_at: pd.Series, zone: ZoneInfo, first_day: int) -> tuple[np.ndarray, np.ndarray]:
    """Local day (0 = ``first_day``, in days since 1970) and hour of each timestamp."""
    stamps = pd.to_datetime(created_at, format="ISO8601", utc=True).dt.tz_convert(zone).dt.tz_localize(None).to_numpy()
    midnight = stamps.astype("datetime64[D]")
    hour = (stamps - midnight).astype("timedelta64[h]").astype(np.int64)
    return midnight.astype(np.int64) - first_day, hour


def _exact(day: date, zone: ZoneInfo) -> bool:
    """Whether ``local_day_bounds`` of ``day`` hold that local day and nothing else."""
    start, end = local_day_bounds(day, zone)
    return start.astimezone(zone).date() == day and (end - timedelta(microseconds=1)).astimezone(zone).date() == day


_KEY_DTYPES = {"subject": object, "grade_level": np.float64}


def _read(cur: Any, days: list[date], zone: ZoneInfo, engine: Any) -> _Source:
    first_day, n_days = (days[0] - _EPOCH).days, len(days)
    bounds = {"start": local_day_bounds(days[0], zone)[0], "end": local_day_bounds(days[-1], zone)[1]}
    one_exact_day = n_days == 1 and _exact(days[0], zone)

    def read_messages() -> pd.DataFrame:
        with engine.connect() as conn:
            side = conn.connection.dbapi_connection.cursor()
            try:
                return _copy_out(
                    side,
                    _MESSAGES_SQL.format(created_at="" if one_exact_day else "m.created_at,"),
                    bounds,
                    _KEY_DTYPES
                    | {"created_at": object, "role": object, "status": object, "other": object}
                    | {"latency_ms": np.float64, "answer_revealed": np.float64},
                )
            finally:
                side.close()

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="rollup-read") as pool:
        pending = pool.submit(read_messages)
        rows = _copy_out(
            cur,
            _SESSIONS_SQL,
            bounds,
            _KEY_DTYPES
            | {"created_at": object, "student_id": np.int64, "topic": object, "n": np.float64}
            | {"duration_seconds": np.float64, "satisfaction": np.float64},
        )
        rows["day"], rows["hour"] = _local(rows.pop("created_at"), zone, first_day)
        messages = pending.result()
    n = rows.pop("n").to_numpy()
    in_days = ((rows["day"] >= 0) & (rows["day"] < n_days)).to_numpy()
    sessions = rows.loc[in_days & (np.isnan(n) | (n == 1))].drop(columns="topic")
    topics = rows.loc[in_days & ~np.isnan(n), ["day", "subject", "grade_level", "topic"]]

    if one_exact_day:
        messages["day"] = 0
    else:
        messages["day"], _ = _local(messages.pop("created_at"), zone, first_day)
        messages = messages[((messages["day"] >= 0) & (messages["day"] < n_days)).to_numpy()].copy()
    other = messages["other"].notna().to_numpy()
    if other.any():  # sessions that started before the chunk
        ids = messages["other"].to_numpy()[other]
        cur.execute(_OTHER_SESSIONS_SQL, (list(pd.unique(ids)),))
        found = pd.DataFrame(cur.fetchall(), columns=["id", "subject", "grade_level"]).set_index("id")
        messages.loc[other, "subject"] = found["subject"].reindex(ids).to_numpy()
        messages.loc[other, "grade_level"] = found["grade_level"].astype(float).reindex(ids).to_numpy()
        messages = messages[messages["subject"].notna().to_numpy()]  # (deleted since the first read)
    messages = messages.drop(columns="other")

    frames = (sessions, topics, messages)
    s_codes, subjects = pd.factorize(np.concatenate([f["subject"].to_numpy(object) for f in frames]))
    grade = np.concatenate([f["grade_level"].to_numpy(np.float64) for f in frames])
    g_codes, grades = pd.factorize(np.where(np.isnan(grade), UNKNOWN_GRADE, grade).astype(np.int64))
    at = np.cumsum([0] + [len(f) for f in frames])
    out = [
        f.drop(columns=["subject", "grade_level"]).assign(s=s_codes[at[i] : at[i + 1]], g=g_codes[at[i] : at[i + 1]])
        for i, f in enumerate(frames)
    ]
    return _Source(np.asarray(subjects, dtype=object), np.asarray(grades, np.int64), *out)


# -- aggregating --------------------------------------------------------------------------------
#
# A rollup key (day × subject × grade) is one integer, ``(day * n_subjects + subject code) *
# n_grades + grade code``, so the additive figures of every key are weighted counts over it
# (``np.bincount``); pandas does what is not a plain sum (distinct students, code tables).


@dataclass
class _Keys:
    n_days: int
    subjects: np.ndarray  # subject code -> name
    grades: np.ndarray  # grade code -> grade_level

    @property
    def size(self) -> int:
        return self.n_days * len(self.subjects) * len(self.grades)

    def of(self, frame: pd.DataFrame) -> np.ndarray:
        day, s, g = (frame[c].to_numpy().astype(np.int64) for c in ("day", "s", "g"))
        return (day * len(self.subjects) + s) * len(self.grades) + g

    def frame(self, key: np.ndarray) -> pd.DataFrame:
        n_subjects, n_grades = len(self.subjects), len(self.grades)
        return pd.DataFrame(
            {
                "day": key // (n_subjects * n_grades),
                "subject": self.subjects[(key // n_grades) % n_subjects],
                "grade_level": self.grades[key % n_grades],
            }
        )


def _aggregate(src: _Source, days: list[date]) -> dict[str, pd.DataFrame]:
    n_days = len(days)
    keys = _Keys(
        n_days,
        src.subjects if len(src.subjects) else np.array([""], dtype=object),  # nothing at all: one dummy
        src.grades if len(src.grades) else np.array([UNKNOWN_GRADE]),
    )
    size = keys.size

    def count(key: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
        return np.bincount(key, weights, minlength=size).astype(np.int64)

    # sessions
    s_key, s_day = keys.of(src.sessions), src.sessions["day"].to_numpy()
    duration, rating = src.sessions["duration_seconds"].to_numpy(), src.sessions["satisfaction"].to_numpy()
    has_duration, has_rating = ~np.isnan(duration), ~np.isnan(rating)
    figures = {
        "sessions": count(s_key),
        "duration_sum": count(s_key, np.where(has_duration, duration, 0)),
        "duration_count": count(s_key, has_duration),
        "rating_sum": count(s_key, np.where(has_rating, rating, 0)),
        "rating_count": count(s_key, has_rating),
    }
    # messages
    m = src.messages
    role, status = m["role"].to_numpy(), m["status"].to_numpy()
    latency, revealed = m["latency_ms"].to_numpy(), m["answer_revealed"].to_numpy()
    m_key, m_day = keys.of(m), m["day"].to_numpy()
    tutor = role == "tutor"
    done, failed = tutor & (status == "done"), tutor & (status == "failed")
    timed = done & ~np.isnan(latency)
    figures |= {
        "student_messages": count(m_key, role == "student"),
        "tutor_replies_done": count(m_key, done),
        "tutor_replies_failed": count(m_key, failed),
        "answer_revealed_count": count(m_key, tutor & (revealed == 1)),
        "answer_checked_count": count(m_key, tutor & ~np.isnan(revealed)),
        "latency_count": count(m_key, timed),
        "latency_sum_ms": count(m_key, np.where(timed, latency, 0)),
    }
    table = np.column_stack(list(figures.values()))  # key -> figures
    present = np.flatnonzero(table.any(axis=1))
    row_of_key = np.full(size, -1)
    row_of_key[present] = np.arange(len(present))
    hist = np.bincount(
        row_of_key[m_key[timed]] * LATENCY_BUCKETS + latency_bucket(latency[timed]),
        minlength=len(present) * LATENCY_BUCKETS,
    ).reshape(len(present), LATENCY_BUCKETS)
    rollup_daily = keys.frame(present)
    for i, name in enumerate(figures):
        rollup_daily[name] = table[present, i]
    rollup_daily["latency_hist"] = ["{" + ",".join(map(str, h)) + "}" for h in hist.tolist()]

    # daily_stats: the day's totals of the same figures, plus what does not add up
    per_day = table.reshape(n_days, -1, table.shape[1]).sum(axis=1)
    col = {name: per_day[:, i] for i, name in enumerate(figures)}
    users = src.sessions.groupby("day")["student_id"].nunique()
    with np.errstate(invalid="ignore", divide="ignore"):
        daily = pd.DataFrame(
            {
                "total_sessions": col["sessions"],
                "avg_duration": np.where(
                    col["duration_count"] > 0, col["duration_sum"] / col["duration_count"], np.nan
                ),
                "total_users": users.reindex(range(n_days), fill_value=0).to_numpy(),
                "total_messages": col["student_messages"],
                "avg_satisfaction": np.where(col["rating_count"] > 0, col["rating_sum"] / col["rating_count"], np.nan),
                "ai_failures": col["tutor_replies_failed"],
            }
        )
    p50, p95 = np.full(n_days, np.nan), np.full(n_days, np.nan)
    timed_day, timed_latency = m_day[timed], latency[timed]
    for d in np.unique(timed_day):
        p50[d], p95[d] = np.percentile(timed_latency[timed_day == d], [50, 95])  # 'linear'
    daily["ai_latency_p50_ms"], daily["ai_latency_p95_ms"] = p50, p95

    # topics: popular_topics (count desc, then name) and rollup_topic_day
    topic_of, topic_names = pd.factorize(src.topics["topic"])
    topic_names = np.asarray(topic_names, dtype=object)
    n_topics = max(1, len(topic_names))
    t_day = src.topics["day"].to_numpy()
    by_day = np.bincount(t_day * n_topics + topic_of, minlength=n_days * n_topics).reshape(n_days, n_topics)
    by_name = np.argsort(topic_names.astype(str)) if len(topic_names) else np.array([], np.int64)
    popular = []
    for d in range(n_days):
        top = by_name[np.argsort(-by_day[d, by_name], kind="stable")[:TOP_TOPICS]]  # stable: ties stay by name
        popular.append({str(topic_names[t]): int(by_day[d, t]) for t in top if by_day[d, t] > 0})
    daily["popular_topics"] = popular
    t_present, t_sessions = np.unique(keys.of(src.topics) * n_topics + topic_of, return_counts=True)
    topic_day = keys.frame(t_present // n_topics)
    topic_day["topic"] = topic_names[t_present % n_topics]
    topic_day["sessions"] = t_sessions

    # hours
    h_present, h_sessions = np.unique(s_key * 24 + src.sessions["hour"].to_numpy(), return_counts=True)
    hour = keys.frame(h_present // 24)
    hour["hour"] = h_present % 24
    hour["weekday"] = (hour["day"] + (days[0] - _EPOCH).days + 3) % 7  # 1970-01-01 was a Thursday (3)
    hour["sessions"] = h_sessions

    # students: one row per day × student × subject (a student has one grade), in primary key
    # order (day, student, subject name), which keeps the index inserts together
    n_subjects = len(keys.subjects)
    name_rank = np.argsort(np.argsort(keys.subjects.astype(str)))  # subject code -> rank by name
    student_id, s_code = src.sessions["student_id"].to_numpy(), src.sessions["s"].to_numpy()
    span = int(student_id.max()) + 1 if len(student_id) else 1
    sk, first, inverse = np.unique(
        (s_day * span + student_id) * n_subjects + name_rank[s_code], return_index=True, return_inverse=True
    )
    weights = {
        "sessions": None,
        "duration_sum": np.where(has_duration, duration, 0),
        "duration_count": has_duration,
        "rating_sum": np.where(has_rating, rating, 0),
        "rating_count": has_rating,
    }
    student_day = pd.DataFrame(
        {
            "day": sk // (n_subjects * span),
            "student_id": (sk // n_subjects) % span,
            "subject": keys.subjects[s_code[first]],
            "grade_level": keys.grades[src.sessions["g"].to_numpy()[first]],
        }
        | {name: np.bincount(inverse, w, minlength=len(sk)).astype(np.int64) for name, w in weights.items()}
    )
    return {
        "daily_stats": daily,
        "rollup_daily": rollup_daily,
        "rollup_student_day": student_day,
        "rollup_topic_day": topic_day,
        "rollup_hour": hour,
    }


# -- writing ------------------------------------------------------------------------------------


def _write(cur: Any, out: dict[str, pd.DataFrame], first: date, last: date) -> None:
    from psycopg2.extras import execute_values

    daily = out["daily_stats"]
    rows = [
        (
            first + timedelta(days=d),
            int(r.total_sessions),
            _float(r.avg_duration),
            int(r.total_users),
            json.dumps(r.popular_topics),
            int(r.total_messages),
            _float(r.avg_satisfaction),
            _float(r.ai_latency_p50_ms),
            _float(r.ai_latency_p95_ms),
            int(r.ai_failures),
        )
        for d, r in enumerate(daily.itertuples(index=False))
    ]
    execute_values(cur, _DAILY_UPSERT, rows, template="(%s, %s, %s, %s, %s::jsonb, %s, %s, %s, %s, %s)")
    dates = np.array([(first + timedelta(days=d)).isoformat() for d in range(len(daily))], dtype=object)
    for table, columns in _ROLLUP_COLUMNS.items():
        cur.execute(f"DELETE FROM {table} WHERE date BETWEEN %s AND %s", (first, last))
        frame = out[table]
        if frame.empty:
            continue
        frame = frame.assign(date=dates[frame["day"].to_numpy()])
        buf = io.StringIO()
        frame[columns].to_csv(buf, index=False, header=False)
        buf.seek(0)
        cur.copy_expert(f"COPY {table} ({', '.join(columns)}) FROM STDIN WITH (FORMAT csv)", buf)


def _float(value: Any) -> float | None:
    return None if value is None or pd.isna(value) else float(value)
