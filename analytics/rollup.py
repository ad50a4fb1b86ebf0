"""The daily rollups read by the dashboard: computed here for the nightly job (``jobs.analytics``)
and, without writing, for the dashboard's live days (``analytics.reads``)."""

from __future__ import annotations

import io
import json
import logging
import threading
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

from foundation.extensions import db

from .tables import LATENCY_BUCKETS, UNKNOWN_GRADE, latency_bucket

log = logging.getLogger(__name__)


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
#: Column -> PostgreSQL type of what ``_write`` sends (binary COPY must match the table exactly).
_ROLLUP_COLUMNS: dict[str, dict[str, str]] = {
    "rollup_daily": {
        "date": "date", "subject": "text", "grade_level": "int2", "sessions": "int4", "duration_sum": "int8",
        "duration_count": "int4", "rating_sum": "int4", "rating_count": "int4", "student_messages": "int4",
        "tutor_replies_done": "int4", "tutor_replies_failed": "int4", "answer_revealed_count": "int4",
        "answer_checked_count": "int4", "latency_count": "int4", "latency_sum_ms": "int8", "latency_hist": "int4[]",
        "replies_cut_short": "int4", "generation_count": "int4", "generation_sum_ms": "int8", "prompt_tokens": "int8",
        "completion_tokens": "int8", "thumbs_up": "int4", "thumbs_down": "int4",
    },
    "rollup_models": {
        "date": "date", "subject": "text", "grade_level": "int2", "model": "text", "replies": "int4",
        "prompt_tokens": "int8", "completion_tokens": "int8", "tokens_estimated": "int4",
    },
    "rollup_students": {
        "date": "date", "subject": "text", "grade_level": "int2", "student_ids": "int4[]", "sessions": "int4[]",
        "duration_sums": "int8[]", "duration_counts": "int4[]", "rating_sums": "int4[]", "rating_counts": "int4[]",
    },
    "rollup_topics": {"date": "date", "subject": "text", "grade_level": "int2", "topics": "varchar[]", "sessions": "int4[]"},
    "rollup_hours": {"date": "date", "subject": "text", "grade_level": "int2", "weekday": "int2", "sessions": "int4[]"},
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


def rollup_pending(day: date | str | None = None) -> list[date]:
    """What the nightly job does: roll up ``daily_stats`` and the ``rollup_*`` tables; return the days written.

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
    return ChunkResult(days, *src.counts)


def compute_rollups(
    cur: Any,
    first: date,
    last: date,
    tz: str | ZoneInfo | None = None,
    snapshot: str | None = None,
    students: tuple[int, ...] | None = None,
) -> dict[str, Any]:
    """The rollup rows of the local days ``first .. last`` from the raw tables, without writing them.

    The dashboard's live days (today) use this, so they follow the nightly job's definitions
    exactly. ``cur`` may be read-only; ``snapshot`` as for ``_read``. Returns ``daily_stats``
    (a DataFrame, a row per day) and each rollup table's rows (dicts of columns, ``day``
    counted from ``first``), as ``rollup_chunk`` would write them.

    ``students`` restricts every row to those students' sessions (and their messages): a
    teacher's view of a class, computed from the class's own rows through the student index
    (``sessions (student_id, created_at)``) instead of the rollups, which are keyed by day ×
    subject × grade and know nothing of classes.
    """
    zone = _zone(tz)
    days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    return _aggregate(_read(cur, days, zone, db.engine, snapshot, students), days)


def _only_students(sql: str, students: tuple[int, ...] | None) -> str:
    """``sql`` (one of the reads below) restricted to the sessions of ``%(students)s``."""
    if students is None:
        return sql
    if "FROM messages m\n    WHERE" in sql:  # the reads of messages (sessions' reads hold a subquery of them)
        scoped = sql.replace(
            "FROM messages m\n    WHERE",
            "FROM messages m JOIN sessions own ON own.id = m.session_id\n"
            "    WHERE own.student_id = ANY(%(students)s::int[]) AND",
        )
    else:
        scoped = sql.replace("WHERE s.created_at", "WHERE s.student_id = ANY(%(students)s::int[]) AND s.created_at")
    if scoped == sql:
        raise RuntimeError("a rollup read could not be restricted to students")  # never read more than asked
    return scoped


# -- reading ------------------------------------------------------------------------------------
#
# Three reads per chunk, each an index range scan on created_at:
# - the sessions started on the chunk's days, with their student's grade;
# - the topics of those sessions (an index lookup per session);
# - at the same time, on a second connection, the messages sent on those days that count
#   somewhere (student messages, finished or failed replies), with their session's id; messages
#   of sessions that started before the chunk look their session up by id afterwards.
# Rows come out of PostgreSQL as binary COPY with every column fixed-width and non-null (text
# becomes a code into a known list of names, NULL a -1), so numpy reads them in place: no
# per-row parsing in Python. numpy then joins messages and topics to their sessions by id.

#: A session counts once the student has said something: opening the chat page starts one.
NOT_EMPTY = "EXISTS (SELECT 1 FROM messages m WHERE m.session_id = s.id AND m.role = 'student')"
_SESSIONS_SQL = f"""
    SELECT s.id, s.created_at, s.student_id, COALESCE(u.grade_level, {UNKNOWN_GRADE})::int4,
           COALESCE(array_position(%(subjects)s::text[], s.subject::text), 0)::int4,
           COALESCE(s.duration_seconds, -1)::int4, COALESCE(s.satisfaction, -1)::int4
    FROM sessions s LEFT JOIN users u ON u.id = s.student_id
    WHERE s.created_at >= %(start)s AND s.created_at < %(end)s AND {NOT_EMPTY}
"""
# (topics of sessions left out above find no session in numpy and are dropped there)
_TOPICS_SQL = """
    SELECT s.id, COALESCE(array_position(%(topics)s::text[], t.topic::text), 0)::int4
    FROM sessions s JOIN session_topics t ON t.session_id = s.id
    WHERE s.created_at >= %(start)s AND s.created_at < %(end)s
"""
# code = kind + 4 * (revealed + 1) + 16 * cut_short + 32 * tokens_estimated + 64 * (feedback + 1)
# + 256 * model, where kind is 0 student message, 1 finished reply, 2 failed reply; revealed -1
# unknown, 0 no, 1 yes; feedback the student's thumb (-1 down, 0 none, 1 up); model the position
# of the reply's _MODEL_OF in %(models)s, 0 for none. Tokens and times are -1 where NULL.
#: What a reply is counted under per model: its model, else its provider.
_MODEL_OF = "COALESCE(m.model, m.provider, 'unknown')::text"
_MESSAGES_SQL = f"""
    SELECT m.session_id, {{created_at}}
           ((CASE WHEN m.role = 'student' THEN 0 WHEN m.status = 'done' THEN 1 ELSE 2 END)
            + 4 * (COALESCE(m.answer_revealed::int, -1) + 1) + 16 * m.cut_short::int + 32 * m.tokens_estimated::int
            + 64 * (COALESCE(m.feedback, 0) + 1) + 256 * COALESCE(array_position(%(models)s::text[], {_MODEL_OF}), 0))::int4,
           COALESCE(m.latency_ms, -1)::int4, COALESCE(m.generation_ms, -1)::int4,
           COALESCE(m.prompt_tokens, -1)::int4, COALESCE(m.completion_tokens, -1)::int4
    FROM messages m
    WHERE m.created_at >= %(start)s AND m.created_at < %(end)s
      AND (m.role = 'student' OR m.status IN ('done', 'failed'))
"""
# Names missing from the known lists (a subject or topic first seen), and sessions that started
# before the chunk: few rows, read as text.
_NEW_SUBJECTS_SQL = """
    SELECT DISTINCT s.subject::text FROM sessions s
    WHERE s.created_at >= %(start)s AND s.created_at < %(end)s AND s.subject::text <> ALL(%(subjects)s::text[])
"""
_NEW_TOPICS_SQL = """
    SELECT DISTINCT t.topic::text FROM sessions s JOIN session_topics t ON t.session_id = s.id
    WHERE s.created_at >= %(start)s AND s.created_at < %(end)s AND t.topic::text <> ALL(%(topics)s::text[])
"""
_NEW_MODELS_SQL = f"""
    SELECT DISTINCT {_MODEL_OF} FROM messages m
    WHERE m.created_at >= %(start)s AND m.created_at < %(end)s AND m.role = 'tutor' AND m.status = 'done'
      AND {_MODEL_OF} <> ALL(%(models)s::text[])
"""
_OTHER_SESSIONS_SQL = f"""
    SELECT s.id::text, s.subject::text, COALESCE(u.grade_level, {UNKNOWN_GRADE})
    FROM sessions s LEFT JOIN users u ON u.id = s.student_id
    WHERE s.id = ANY(%s::uuid[])
"""

#: Microseconds from the Unix epoch to PostgreSQL's (2000-01-01 UTC), in which binary COPY
#: sends timestamps.
_PG_EPOCH_US = 946_684_800_000_000
_US_PER_DAY = 86_400_000_000
_COPY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00"


class _Names:
    """A growing list of names (subjects or topics) sent to SQL, which answers with positions."""

    def __init__(self) -> None:
        self.names: list[str] = []
        self.lock = threading.Lock()

    def learn(self, names: list[str]) -> None:
        with self.lock:
            self.names.extend(n for n in dict.fromkeys(names) if n not in self.names)

    def array(self) -> np.ndarray:
        """Code -> name: code 0 is "not in the list" (None)."""
        return np.array([None, *self.names], dtype=object)


_SUBJECTS, _TOPICS, _MODELS = _Names(), _Names(), _Names()


def _learn_curriculum() -> None:
    """Start the name lists with the curriculum's subjects and topics (what sessions mostly hold)."""
    if _SUBJECTS.names:
        return
    try:
        from tutor.curriculum import get_curriculum

        subjects = get_curriculum().subjects.values()
    except Exception:  # the rollup must not depend on the curriculum files; names are learnt anyway
        log.warning("curriculum not loaded: subject and topic names are learnt from the data", exc_info=True)
        return
    _SUBJECTS.learn([s.id for s in subjects])
    _TOPICS.learn([topic.id for s in subjects for topic in s.topics])


def _copy_binary(cur: Any, sql: str, params: dict[str, Any], fields: list[tuple[str, str]]) -> dict[str, np.ndarray]:
    """Rows of ``sql`` as one numpy array per column, through ``COPY ... (FORMAT binary)``.

    ``fields`` names each column with its numpy dtype (big-endian, as PostgreSQL sends them:
    ``V16`` for a uuid, ``>i8`` for a timestamp, ``>i4`` for an int4). Every column must be
    fixed-width and never NULL, so each row has the same layout and numpy maps the buffer as
    it is; anything else is an error, not a silent misread.
    """
    if green():
        return _aggregated_binary(cur, sql, params, fields)
    buf = io.BytesIO()
    cur.copy_expert(f"COPY ({cur.mogrify(sql, params).decode()}) TO STDOUT WITH (FORMAT binary)", buf)
    data = buf.getbuffer()
    if bytes(data[:11]) != _COPY_SIGNATURE:
        raise RuntimeError("unexpected COPY output: not PostgreSQL's binary format")
    start = 19 + int.from_bytes(data[15:19], "big")  # signature, flags, header extension
    layout = [("n", ">i2")]
    for name, dtype in fields:
        layout += [(f"{name}_len", ">i4"), (name, dtype)]
    row = np.dtype(layout)
    body = len(data) - start - 2  # the trailer is one int16 (-1)
    if body % row.itemsize:
        raise RuntimeError("unexpected COPY output: rows are not the expected fixed width (a NULL?)")
    rows = np.frombuffer(data, row, body // row.itemsize, start)
    if len(rows) and (
        (rows["n"] != len(fields)).any()
        or any((rows[f"{name}_len"] != np.dtype(dtype).itemsize).any() for name, dtype in fields)
    ):
        raise RuntimeError("unexpected COPY output: a column is not the expected type (a NULL?)")
    return {name: rows[name] for name, _ in fields}


def green() -> bool:
    """Whether psycopg2 waits through a callback (psycogreen, under the gevent web server). Such
    connections cannot ``COPY``: reads then take the one-value path below."""
    from psycopg2.extensions import get_wait_callback

    return get_wait_callback() is not None


_SEND = {"V16": "uuid_send", ">i8": "timestamptz_send", ">i4": "int4send"}


def _aggregated_binary(
    cur: Any, sql: str, params: dict[str, Any], fields: list[tuple[str, str]]
) -> dict[str, np.ndarray]:
    """``_copy_binary`` without COPY: PostgreSQL concatenates each row's binary send form (the
    same bytes COPY would send, without the length words) into one ``bytea`` value, which a
    plain query returns; numpy maps it the same way. A NULL would drop its row, so the row
    count comes along and must match."""
    columns = [f"c{i}" for i in range(len(fields))]
    row_bytes = " || ".join(f"{_SEND[dtype]}(q.{c})" for c, (_, dtype) in zip(columns, fields, strict=True))
    cur.execute(f"SELECT count(*), string_agg({row_bytes}, ''::bytea) FROM ({sql}) AS q({', '.join(columns)})", params)
    count, data = cur.fetchone()
    row = np.dtype([(name, dtype) for name, dtype in fields])
    data = bytes(data or b"")
    if len(data) != count * row.itemsize:
        raise RuntimeError("unexpected rows: not the expected fixed width (a NULL?)")
    rows = np.frombuffer(data, row, count)
    return {name: rows[name] for name, _ in fields}


def _uuid_keys(ids: np.ndarray) -> np.ndarray:
    """A uint64 key per 16-byte uuid (its two halves mixed); equal uuids have equal keys."""
    halves = np.ascontiguousarray(ids).view(">u8").reshape(-1, 2).astype(np.uint64)
    return halves[:, 0] * np.uint64(0x9E3779B97F4A7C15) ^ halves[:, 1]


def _row_finder(session_ids: np.ndarray) -> Any:
    """``find(wanted)``: for each uuid of ``wanted``, its row in ``session_ids`` (unique uuids),
    or -1. The hash index over ``session_ids`` is built once for every lookup."""
    keys = pd.Index(_uuid_keys(session_ids))
    exact: dict[bytes, int] | None = None

    def find(wanted: np.ndarray) -> np.ndarray:
        nonlocal exact
        if keys.is_unique:
            at = keys.get_indexer(_uuid_keys(wanted))
            found = at >= 0
            if (session_ids[at[found]] == wanted[found]).all():  # a key clash would show here
                return at
        if exact is None:  # exact (and slower) fallback
            exact = {bytes(u): i for i, u in enumerate(session_ids)}
        return np.array([exact.get(bytes(u), -1) for u in wanted], dtype=np.int64)

    return find


def _local(micros: np.ndarray, zone: ZoneInfo, first_day: int) -> tuple[np.ndarray, np.ndarray]:
    """Local day (0 = ``first_day``, in days since 1970) and hour of PostgreSQL timestamps."""
    utc_us = micros.astype(np.int64) + _PG_EPOCH_US
    if zone.key != "UTC":
        stamps = pd.DatetimeIndex(utc_us.astype("datetime64[us]"), tz="UTC").tz_convert(zone).tz_localize(None)
        utc_us = stamps.to_numpy().astype("datetime64[us]").astype(np.int64)
    day = utc_us // _US_PER_DAY
    return day - first_day, (utc_us - day * _US_PER_DAY) // 3_600_000_000


def _exact(day: date, zone: ZoneInfo) -> bool:
    """Whether ``local_day_bounds`` of ``day`` hold that local day and nothing else."""
    start, end = local_day_bounds(day, zone)
    return start.astimezone(zone).date() == day and (end - timedelta(microseconds=1)).astimezone(zone).date() == day


@dataclass
class _Source:
    """The rows of a chunk's days, one numpy array per column. ``day`` counts from the chunk's
    first day; ``s`` and ``g`` are codes into ``subjects`` and ``grades`` (the session's
    subject and its student's grade)."""

    subjects: np.ndarray
    grades: np.ndarray
    sessions: dict[str, np.ndarray]  # day, hour, s, g, student_id, duration (-1: none), rating (-1: none)
    topics: dict[str, np.ndarray]  # day, s, g, topic (code into topic_names)
    topic_names: np.ndarray
    # day, s, g, kind (0 student, 1 done, 2 failed), revealed (-1/0/1), cut_short (0/1),
    # tokens_estimated (0/1), feedback (-1/0/1), model (code into model_names), and latency_ms, generation_ms,
    # prompt_tokens, completion_tokens (-1: none)
    messages: dict[str, np.ndarray]
    model_names: np.ndarray

    @property
    def counts(self) -> tuple[int, int, int]:
        return tuple(len(part["day"]) for part in (self.sessions, self.topics, self.messages))


_UUID, _TS, _I4 = "V16", ">i8", ">i4"


def _read(
    cur: Any,
    days: list[date],
    zone: ZoneInfo,
    engine: Any,
    snapshot: str | None = None,
    students: tuple[int, ...] | None = None,
) -> _Source:
    """The chunk's rows. ``cur`` may be in a read-only transaction; with ``snapshot`` (from
    ``pg_export_snapshot()`` in ``cur``'s transaction) the second connection reads the same
    snapshot, so the two reads see the database at one instant. ``students``: only their rows."""
    first_day, n_days = (days[0] - _EPOCH).days, len(days)
    params = {"start": local_day_bounds(days[0], zone)[0], "end": local_day_bounds(days[-1], zone)[1]}
    params["students"] = list(students or ())
    one_exact_day = n_days == 1 and _exact(days[0], zone)

    def new_names(sql: str, known: _Names, key: str) -> None:
        cur.execute(_only_students(sql, students), params | {key: known.names})
        known.learn(sorted(row[0] for row in cur.fetchall()))

    def on_side_connection(read: Any) -> Any:
        with engine.connect() as conn:
            side = conn.connection.dbapi_connection.cursor()
            try:
                if snapshot:
                    side.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                    side.execute("SET TRANSACTION SNAPSHOT %s", (snapshot,))
                return read(side)
            finally:
                side.close()

    def read_messages(side: Any) -> dict[str, np.ndarray]:
        fields = [("session_id", _UUID)] + ([] if one_exact_day else [("created_at", _TS)])
        for _ in range(3):  # a model first seen: learn its name and read again
            m = _copy_binary(
                side,
                _only_students(_MESSAGES_SQL.format(created_at="" if one_exact_day else "m.created_at,"), students),
                params | {"models": _MODELS.names},
                fields
                + [("code", _I4), ("latency_ms", _I4), ("generation_ms", _I4)]
                + [("prompt_tokens", _I4), ("completion_tokens", _I4)],
            )
            code = m["code"]
            if not ((code % 4 == 1) & (code // 256 == 0)).any():  # every finished reply has its model's code
                return m
            side.execute(_only_students(_NEW_MODELS_SQL, students), params | {"models": _MODELS.names})
            _MODELS.learn(sorted(row[0] for row in side.fetchall()))
        raise RuntimeError("models keep changing while the rollup reads them")

    def read_topics(side: Any) -> dict[str, np.ndarray]:
        return _copy_binary(
            side,
            _only_students(_TOPICS_SQL, students),
            params | {"topics": _TOPICS.names},
            [("id", _UUID), ("topic", _I4)],
        )

    def read_sessions() -> dict[str, np.ndarray]:
        return _copy_binary(
            cur,
            _only_students(_SESSIONS_SQL, students),
            params | {"subjects": _SUBJECTS.names},
            [("id", _UUID), ("created_at", _TS), ("student_id", _I4), ("grade", _I4)]
            + [("subject", _I4), ("duration", _I4), ("rating", _I4)],
        )

    _learn_curriculum()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="rollup-read") as pool:
        pending_m = pool.submit(on_side_connection, read_messages)
        s = read_sessions()
        t = read_topics(cur)
        m = pending_m.result()
    for _ in range(3):  # a subject or topic first seen: learn its name and read again
        if (s["subject"] > 0).all() and (t["topic"] > 0).all():
            break
        new_names(_NEW_SUBJECTS_SQL, _SUBJECTS, "subjects")
        new_names(_NEW_TOPICS_SQL, _TOPICS, "topics")
        s, t = read_sessions(), read_topics(cur)
    else:
        raise RuntimeError("subjects or topics keep changing while the rollup reads them")

    s_day, s_hour = _local(s["created_at"], zone, first_day)
    in_days = (s_day >= 0) & (s_day < n_days)
    s_subject, s_grade = s["subject"].astype(np.int64), s["grade"].astype(np.int64)

    session_row = _row_finder(s["id"])
    t_at = session_row(t["id"])
    t_keep = t_at >= 0
    t_keep[t_keep] = in_days[t_at[t_keep]]
    t_row = t_at[t_keep]

    m_day = np.zeros(len(m["code"]), np.int64)
    if not one_exact_day:
        m_day, _ = _local(m["created_at"], zone, first_day)
    m_keep = (m_day >= 0) & (m_day < n_days)
    m_row = session_row(m["session_id"])
    ours = m_row >= 0
    m_subject = np.where(ours, s_subject[np.maximum(m_row, 0)] if len(s_subject) else 0, 0)
    m_grade = np.where(ours, s_grade[np.maximum(m_row, 0)] if len(s_grade) else 0, UNKNOWN_GRADE)
    other = ~ours & m_keep
    if other.any():  # sessions that started before the chunk
        ids, back = np.unique(m["session_id"][other], return_inverse=True)
        cur.execute(_OTHER_SESSIONS_SQL, ([str(uuid.UUID(bytes=bytes(u))) for u in ids],))
        found = {uuid.UUID(i).bytes: (subject, grade) for i, subject, grade in cur.fetchall()}
        _SUBJECTS.learn(sorted({subject for subject, _ in found.values()}))
        code = {name: i + 1 for i, name in enumerate(_SUBJECTS.names)}
        looked_up = [found.get(bytes(u), (None, UNKNOWN_GRADE)) for u in ids]
        m_subject[other] = np.array([code.get(name, 0) for name, _ in looked_up], np.int64)[back.ravel()]
        m_grade[other] = np.array([grade for _, grade in looked_up], np.int64)[back.ravel()]
    m_keep &= m_subject > 0  # (a session deleted since its messages were read)

    # Codes into this chunk's subjects and grades only, so that rollup keys stay small.
    parts_s = [s_subject[in_days], s_subject[t_row], m_subject[m_keep]]
    parts_g = [s_grade[in_days], s_grade[t_row], m_grade[m_keep]]
    used_s, s_codes = np.unique(np.concatenate(parts_s), return_inverse=True)
    used_g, g_codes = np.unique(np.concatenate(parts_g), return_inverse=True)
    s_codes, g_codes = s_codes.ravel(), g_codes.ravel()
    cut = np.cumsum([0] + [len(p) for p in parts_s])
    code = m["code"][m_keep].astype(np.int64)
    return _Source(
        subjects=_SUBJECTS.array()[used_s],
        grades=used_g,
        sessions={
            "day": s_day[in_days],
            "hour": s_hour[in_days],
            "s": s_codes[: cut[1]],
            "g": g_codes[: cut[1]],
            "student_id": s["student_id"][in_days].astype(np.int64),
            "duration": s["duration"][in_days].astype(np.int64),
            "rating": s["rating"][in_days].astype(np.int64),
        },
        topics={
            "day": s_day[t_row],
            "s": s_codes[cut[1] : cut[2]],
            "g": g_codes[cut[1] : cut[2]],
            "topic": t["topic"][t_keep].astype(np.int64),
        },
        topic_names=_TOPICS.array(),
        messages={
            "day": m_day[m_keep],
            "s": s_codes[cut[2] :],
            "g": g_codes[cut[2] :],
            "kind": code % 4,
            "revealed": code // 4 % 4 - 1,
            "cut_short": code // 16 % 2,
            "tokens_estimated": code // 32 % 2,
            "feedback": code // 64 % 4 - 1,
            "model": code // 256,
        }
        | {
            name: m[name][m_keep].astype(np.int64)
            for name in ("latency_ms", "generation_ms", "prompt_tokens", "completion_tokens")
        },
        model_names=_MODELS.array(),
    )


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

    def of(self, part: dict[str, np.ndarray]) -> np.ndarray:
        day, s, g = (part[c].astype(np.int64) for c in ("day", "s", "g"))
        return (day * len(self.subjects) + s) * len(self.grades) + g

    def rows(self, key: np.ndarray) -> dict[str, Any]:
        """Rollup rows for ``key``: one array (or list) per column, starting with day, subject, grade."""
        n_subjects, n_grades = len(self.subjects), len(self.grades)
        return {
            "day": key // (n_subjects * n_grades),
            "subject": self.subjects[(key // n_grades) % n_subjects],
            "grade_level": self.grades[key % n_grades],
        }


def _groups(keys: np.ndarray) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """The distinct values of sorted ``keys`` and the ``(start, end)`` of each one's run."""
    group_keys, starts = np.unique(keys, return_index=True)
    ends = [*starts[1:].tolist(), len(keys)][: len(starts)]
    return group_keys, list(zip(starts.tolist(), ends, strict=True))


def _aggregate(src: _Source, days: list[date]) -> dict[str, Any]:
    """``daily_stats`` as a DataFrame (a row per day) and each rollup table's rows (see ``_Keys.rows``)."""
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
    s_key, s_day = keys.of(src.sessions), src.sessions["day"]
    duration, rating = src.sessions["duration"], src.sessions["rating"]
    has_duration, has_rating = duration >= 0, rating >= 0
    figures = {
        "sessions": count(s_key),
        "duration_sum": count(s_key, np.where(has_duration, duration, 0)),
        "duration_count": count(s_key, has_duration),
        "rating_sum": count(s_key, np.where(has_rating, rating, 0)),
        "rating_count": count(s_key, has_rating),
    }
    # messages
    m = src.messages
    kind, latency, revealed = m["kind"], m["latency_ms"], m["revealed"]
    m_key, m_day = keys.of(m), m["day"]
    tutor = kind > 0
    done, failed = kind == 1, kind == 2
    timed = done & (latency >= 0)
    generation = m["generation_ms"]
    generated = done & (generation >= 0)
    prompt_tokens = np.where(done, np.maximum(m["prompt_tokens"], 0), 0)
    completion_tokens = np.where(done, np.maximum(m["completion_tokens"], 0), 0)
    figures |= {
        "student_messages": count(m_key, kind == 0),
        "tutor_replies_done": count(m_key, done),
        "tutor_replies_failed": count(m_key, failed),
        "answer_revealed_count": count(m_key, tutor & (revealed == 1)),
        "answer_checked_count": count(m_key, tutor & (revealed >= 0)),
        "latency_count": count(m_key, timed),
        "latency_sum_ms": count(m_key, np.where(timed, latency, 0)),
        "replies_cut_short": count(m_key, done & (m["cut_short"] == 1)),
        "generation_count": count(m_key, generated),
        "generation_sum_ms": count(m_key, np.where(generated, generation, 0)),
        "prompt_tokens": count(m_key, prompt_tokens),
        "completion_tokens": count(m_key, completion_tokens),
        "thumbs_up": count(m_key, tutor & (m["feedback"] == 1)),
        "thumbs_down": count(m_key, tutor & (m["feedback"] == -1)),
    }
    table = np.column_stack(list(figures.values()))  # key -> figures
    present = np.flatnonzero(table.any(axis=1))
    row_of_key = np.full(size, -1)
    row_of_key[present] = np.arange(len(present))
    hist = np.bincount(
        row_of_key[m_key[timed]] * LATENCY_BUCKETS + latency_bucket(latency[timed]),
        minlength=len(present) * LATENCY_BUCKETS,
    ).reshape(len(present), LATENCY_BUCKETS)
    rollup_daily = keys.rows(present)
    for i, name in enumerate(figures):
        rollup_daily[name] = table[present, i]
    rollup_daily["latency_hist"] = list(hist)

    # models: finished replies and tokens per day × subject × grade × model
    n_models = len(src.model_names)
    model_key = m_key[done] * n_models + m["model"][done]
    model_present = np.unique(model_key)
    at = np.searchsorted(model_present, model_key)

    def per_model(weights: np.ndarray | None = None) -> np.ndarray:
        return np.bincount(at, weights, minlength=len(model_present)).astype(np.int64)

    models = keys.rows(model_present // n_models)
    models["model"] = src.model_names[model_present % n_models]
    models["replies"] = per_model()
    models["prompt_tokens"] = per_model(prompt_tokens[done])
    models["completion_tokens"] = per_model(completion_tokens[done])
    models["tokens_estimated"] = per_model(m["tokens_estimated"][done])

    # daily_stats: the day's totals of the same figures, plus what does not add up
    per_day = table.reshape(n_days, -1, table.shape[1]).sum(axis=1)
    col = {name: per_day[:, i] for i, name in enumerate(figures)}
    student_id = src.sessions["student_id"]
    span = int(student_id.max()) + 1 if len(student_id) else 1
    users = np.bincount(np.unique(s_day * span + student_id) // span, minlength=n_days)
    with np.errstate(invalid="ignore", divide="ignore"):
        daily = pd.DataFrame(
            {
                "total_sessions": col["sessions"],
                "avg_duration": np.where(
                    col["duration_count"] > 0, col["duration_sum"] / col["duration_count"], np.nan
                ),
                "total_users": users,
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
    used_topics, topic_of = np.unique(src.topics["topic"], return_inverse=True)
    topic_of, topic_names = topic_of.ravel(), src.topic_names[used_topics]
    n_topics = max(1, len(topic_names))
    t_day = src.topics["day"]
    by_day = np.bincount(t_day * n_topics + topic_of, minlength=n_days * n_topics).reshape(n_days, n_topics)
    by_name = np.argsort(topic_names.astype(str)) if len(topic_names) else np.array([], np.int64)
    popular = []
    for d in range(n_days):
        top = by_name[np.argsort(-by_day[d, by_name], kind="stable")[:TOP_TOPICS]]  # stable: ties stay by name
        popular.append({str(topic_names[t]): int(by_day[d, t]) for t in top if by_day[d, t] > 0})
    daily["popular_topics"] = popular
    rank = np.argsort(by_name) if len(topic_names) else by_name  # topic code -> rank by name
    t_present, t_sessions = np.unique(keys.of(src.topics) * n_topics + rank[topic_of], return_counts=True)
    group_keys, bounds = _groups(t_present // n_topics)
    topics = keys.rows(group_keys)
    topics["topics"] = [topic_names[by_name[t_present[lo:hi] % n_topics]] for lo, hi in bounds]
    topics["sessions"] = [t_sessions[lo:hi] for lo, hi in bounds]

    # hours: 24 counts per day × subject × grade
    group_keys, s_group = np.unique(s_key, return_inverse=True)
    per_hour = np.bincount(s_group.ravel() * 24 + src.sessions["hour"], minlength=len(group_keys) * 24)
    hours = keys.rows(group_keys)
    hours["weekday"] = (hours["day"] + (days[0] - _EPOCH).days + 3) % 7  # 1970-01-01 was a Thursday (3)
    hours["sessions"] = list(per_hour.reshape(-1, 24))

    # students: one array element per student (sorted by id) with the student's sums; a student
    # has one grade, so (day, subject, student) picks one element
    sk, inverse = np.unique(s_key * span + student_id, return_inverse=True)
    inverse = inverse.ravel()
    weights = {
        "sessions": None,
        "duration_sums": np.where(has_duration, duration, 0),
        "duration_counts": has_duration,
        "rating_sums": np.where(has_rating, rating, 0),
        "rating_counts": has_rating,
    }
    sums = {name: np.bincount(inverse, w, minlength=len(sk)).astype(np.int64) for name, w in weights.items()}
    group_keys, bounds = _groups(sk // span)
    students = keys.rows(group_keys)
    students["student_ids"] = [sk[lo:hi] % span for lo, hi in bounds]
    for name, values in sums.items():
        students[name] = [values[lo:hi] for lo, hi in bounds]
    return {
        "daily_stats": daily,
        "rollup_daily": rollup_daily,
        "rollup_students": students,
        "rollup_topics": topics,
        "rollup_hours": hours,
        "rollup_models": models,
    }


# -- writing ------------------------------------------------------------------------------------


def _write(cur: Any, out: dict[str, Any], first: date, last: date) -> None:
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
    cur.execute(";".join(f"DELETE FROM {table} WHERE date BETWEEN %(first)s AND %(last)s" for table in _ROLLUP_COLUMNS),
                {"first": first, "last": last})  # fmt: skip
    first_day = (first - _PG_EPOCH_DATE).days
    for table, columns in _ROLLUP_COLUMNS.items():
        rows = out[table]
        if not len(rows["day"]):
            continue
        buf = io.BytesIO(_binary_copy(columns, rows | {"date": rows["day"] + first_day}, len(rows["day"])))
        cur.copy_expert(f"COPY {table} ({', '.join(columns)}) FROM STDIN WITH (FORMAT binary)", buf)


_PG_EPOCH_DATE = date(2000, 1, 1)
_SCALARS = {"int2": ">i2", "int4": ">i4", "int8": ">i8", "date": ">i4"}
_ARRAYS = {"int4[]": (">i4", 23), "int8[]": (">i8", 20)}  # element type and its oid
_VARCHAR_OID = 1043


def _binary_copy(columns: dict[str, str], values: dict[str, np.ndarray], n: int) -> bytes:
    """``n`` rows in PostgreSQL's binary COPY format; ``columns`` maps each column to its type.

    Scalars are numpy arrays (``date`` as days since 2000-01-01), ``text`` a sequence of
    strings, arrays a sequence of 1-D arrays (of integers, or of strings for ``varchar[]``).
    No NULLs.
    """
    fields: list[list[bytes]] = []
    for name, kind in columns.items():
        column = values[name]
        if kind in _SCALARS:
            dtype = np.dtype(_SCALARS[kind])
            packed = np.empty(n, [("length", ">i4"), ("value", dtype)])
            packed["length"], packed["value"] = dtype.itemsize, column
            raw, width = packed.tobytes(), packed.itemsize
            fields.append([raw[i * width : (i + 1) * width] for i in range(n)])
        elif kind == "text":
            encoded = [str(v).encode() for v in column]
            fields.append([len(e).to_bytes(4, "big") + e for e in encoded])
        elif kind == "varchar[]":
            cells = []
            for array in column:
                head = np.array([1, 0, _VARCHAR_OID, len(array), 1] if len(array) else [0, 0, _VARCHAR_OID], ">i4")
                encoded = [str(v).encode() for v in array]
                body = head.tobytes() + b"".join(len(e).to_bytes(4, "big") + e for e in encoded)
                cells.append(len(body).to_bytes(4, "big") + body)
            fields.append(cells)
        else:
            dtype, oid = np.dtype(_ARRAYS[kind][0]), _ARRAYS[kind][1]
            cells = []
            for array in column:
                elements = np.empty(len(array), [("length", ">i4"), ("value", dtype)])
                elements["length"], elements["value"] = dtype.itemsize, array
                head = np.array([1, 0, oid, len(array), 1] if len(array) else [0, 0, oid], ">i4").tobytes()
                body = head + elements.tobytes()
                cells.append(len(body).to_bytes(4, "big") + body)
            fields.append(cells)
    count = len(columns).to_bytes(2, "big")
    rows = [count + b"".join(row) for row in zip(*fields, strict=True)]
    return _COPY_SIGNATURE + bytes(8) + b"".join(rows) + b"\xff\xff"


def _float(value: Any) -> float | None:
    return None if value is None or pd.isna(value) else float(value)
