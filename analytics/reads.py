"""The dashboard's data: SQL and pandas/numpy, DataFrames out. No Dash here, and nothing is written.

Every figure is computed for a :class:`Filters` (a range of local days in ``ANALYTICS_TZ``,
subjects and grade levels).

**Past days come from the rollups** (``tutor/rollups.py``), **today from the raw tables.** The
days after the last day the nightly job rolled up through today (normally just today) are
computed from ``sessions``, ``session_topics`` and ``messages`` by the nightly job's own code
(``analytics.rollup.compute_rollups``, in the view's snapshot, nothing written), so an admin sees
this morning's sessions and a live day has exactly the figures it will have once rolled up.
The callbacks of one interaction share that computation for ``ANALYTICS_LIVE_SECONDS`` (5 s).
``daily_stats`` marks the rolled-up days: the job writes one row per day, with or without
sessions.

**Exact under every filter.** Sums add up across days, subjects and grades; distinct students
do not, so they are counted over the union of the days' student rows (``rollup_students``).
AI latency percentiles over several days come from the summed latency histograms (within 2 %
of the exact percentile, see ``analytics.tables.latency_percentiles``).

**Cost independent of history.** A rolled-up day never changes until the job rewrites it, so
each process keeps the rollup rows of the days it has shown in memory (:class:`DayStore`: about
50 kB per day at 1,000 sessions a day, least recently used days dropped beyond
``DAY_CACHE_DAYS``) and filters and aggregates them with numpy. Every view first reads the
``daily_stats`` rows of its days (an index range scan): the job rewrites a day's ``daily_stats``
row in the same transaction as that day's rollup rows, which gives the row a new ``xmin``, and
a day whose version changed is read again. So a view costs a few index lookups, today's raw
rows and numpy work proportional to the days shown, never a scan of the history; the first view
of days not yet in memory also reads their rollup rows (``COPY``).

All queries of one view run in one read-only ``REPEATABLE READ`` transaction (the live days'
second connection imports its snapshot), so a nightly rollup committing halfway through cannot
mix two versions of a day.
"""

from __future__ import annotations

import io
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from .rollup import NOT_EMPTY
from .tables import LATENCY_BUCKETS, LATENCY_EDGES_MS, UNKNOWN_GRADE, latency_percentiles

__all__ = [
    "DAILY_COLUMNS",
    "DAY_CACHE_DAYS",
    "DEFAULT_RANGE",
    "JUDGE_COLUMNS",
    "KPI_SPECS",
    "MAX_RANGE_DAYS",
    "MODEL_COLUMNS",
    "RANGES",
    "STUDENT_COLUMNS",
    "WEEKDAYS",
    "Filters",
    "View",
    "analytics_today",
    "analytics_tz",
    "clear_cache",
    "grade_levels",
    "judge_scores",
    "load_view",
    "recent_sessions",
    "resolve_range",
    "retention_frame",
    "student_timeline",
    "students_frame",
]

#: Preset ranges: the last N days ending today.
RANGES: dict[str, int] = {"week": 7, "month": 30, "quarter": 90}
DEFAULT_RANGE = "month"
#: Longest custom range (about ten years).
MAX_RANGE_DAYS = 3700
#: Rolled-up days each process keeps in memory (a quarter and the one before it take 180).
DAY_CACHE_DAYS = 1200
#: Aggregated rolled-up parts of ranges kept per process (filters x range; see ``_past_part``).
MEMO_ENTRIES = 64
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")

#: Additive columns of ``rollup_daily`` (the live aggregation has the same).
SUMS = (
    "sessions",
    "duration_sum",
    "duration_count",
    "rating_sum",
    "rating_count",
    "student_messages",
    "tutor_replies_done",
    "tutor_replies_failed",
    "answer_revealed_count",
    "answer_checked_count",
    "latency_count",
    "latency_sum_ms",
    "replies_cut_short",
    "generation_count",
    "generation_sum_ms",
    "prompt_tokens",
    "completion_tokens",
    "thumbs_up",
    "thumbs_down",
)
_S = {name: i for i, name in enumerate(SUMS)}
#: Additive columns of ``rollup_models`` (per day × subject × grade × model).
MODEL_SUMS = ("replies", "prompt_tokens", "completion_tokens", "tokens_estimated")

#: Columns of ``View.daily`` (and of the daily CSV export).
DAILY_COLUMNS = (
    "date",
    "sessions",
    "active_students",
    "avg_duration_min",
    "avg_satisfaction",
    "ratings",
    "student_messages",
    "tutor_replies",
    "failed_replies",
    "failure_rate",
    "answer_revealed_share",
    "answer_unjudged_share",
    "thumbs_up",
    "thumbs_down",
    "latency_p50_ms",
    "latency_p95_ms",
    "latency_mean_ms",
    "generation_mean_ms",
    "cut_short_replies",
    "prompt_tokens",
    "completion_tokens",
    "live",
)
#: Columns of ``View.models`` (one row per day and model with finished replies).
MODEL_COLUMNS = ("date", "model", *MODEL_SUMS)


# ------------------------------------------------------------------------------------ ranges


def analytics_tz() -> ZoneInfo:
    from flask import current_app, has_app_context

    name = (current_app.config.get("ANALYTICS_TZ") if has_app_context() else None) or "UTC"
    return ZoneInfo(name)


def live_seconds() -> float:
    """How long today's live figures are reused (``ANALYTICS_LIVE_SECONDS``; 0: never)."""
    from flask import current_app, has_app_context

    return float(current_app.config["ANALYTICS_LIVE_SECONDS"]) if has_app_context() else 0.0


def analytics_today(tz: ZoneInfo | None = None, now: datetime | None = None) -> date:
    """Today in ``ANALYTICS_TZ``."""
    tz = tz or analytics_tz()
    return (now.astimezone(tz) if now else datetime.now(tz)).date()


def _parse_date(value: Any) -> date | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value)[:10])
    except ValueError:
        return None


def resolve_range(
    time_range: str | None, start: Any = None, end: Any = None, today: date | None = None
) -> tuple[date, date]:
    """The days ``(first, last)`` a view covers.

    A preset (``week``, ``month``, ``quarter``) is the last 7, 30 or 90 days ending today. Any
    other ``time_range`` (``custom``, ``None``) uses ``start`` and ``end`` (dates or
    ``YYYY-MM-DD``; swapped when reversed; at most ``MAX_RANGE_DAYS`` long, ending at the later
    one), falling back to the default preset when either is missing.
    """
    today = today or analytics_today()
    if time_range not in RANGES:
        first, last = _parse_date(start), _parse_date(end)
        if first and last:
            if last < first:
                first, last = last, first
            return max(first, last - timedelta(days=MAX_RANGE_DAYS - 1)), last
        time_range = DEFAULT_RANGE
    return today - timedelta(days=RANGES[time_range] - 1), today


def _as_grade(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


@dataclass(frozen=True)
class Filters:
    """What a view shows: local days ``start`` .. ``end`` (inclusive), subjects and grades, and
    whose sessions.

    Empty ``subjects`` / ``grades`` mean all. Grade ``-1`` (``UNKNOWN_GRADE``) selects students
    without a grade level. ``students`` None means everyone; a tuple of ids (possibly empty)
    restricts every figure, list and export to those students (a teacher's classes, or a class
    chosen in the class filter): see "Views of some students" in ``docs/ANALYTICS.md``.
    """

    start: date
    end: date
    subjects: tuple[str, ...] = ()
    grades: tuple[int, ...] = ()
    students: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise ValueError(f"end {self.end} is before start {self.start}")
        object.__setattr__(self, "subjects", tuple(sorted({str(s) for s in self.subjects or ()})))
        object.__setattr__(self, "grades", tuple(sorted({int(g) for g in self.grades or ()})))
        if self.students is not None:
            object.__setattr__(self, "students", tuple(sorted({int(i) for i in self.students})))

    @classmethod
    def from_controls(
        cls,
        time_range: str | None,
        start: Any = None,
        end: Any = None,
        subjects: Sequence[str] | str | None = None,
        grades: Sequence[int | str] | int | str | None = None,
        today: date | None = None,
        students: Sequence[int] | None = None,
    ) -> Filters:
        """Filters from the dashboard's controls (values as the browser sends them); ``students``
        as the caller's scope decided (None: everyone)."""
        first, last = resolve_range(time_range, start, end, today)
        if isinstance(subjects, str):
            subjects = [subjects]
        if isinstance(grades, int | str):
            grades = [grades]
        parsed = (_as_grade(g) for g in grades or ())
        scope = tuple(students) if students is not None else None
        return cls(first, last, tuple(subjects or ()), tuple(g for g in parsed if g is not None), scope)

    @property
    def n_days(self) -> int:
        return (self.end - self.start).days + 1

    def days(self) -> list[date]:
        return [self.start + timedelta(days=i) for i in range(self.n_days)]

    def previous(self) -> Filters:
        """The range of the same length that ends the day before this one starts."""
        return replace(self, start=self.start - timedelta(days=self.n_days), end=self.start - timedelta(days=1))


def _days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


# ------------------------------------------------------------------------------------ SQL plumbing


@contextmanager
def _reader() -> Iterator[Any]:
    """A DBAPI cursor in a read-only REPEATABLE READ transaction (rolled back afterwards)."""
    from foundation.extensions import db

    conn = db.engine.raw_connection()
    try:
        cur = conn.cursor()
        try:
            cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            yield cur
        finally:
            cur.close()
            conn.rollback()
    finally:
        conn.close()


def _frame(cur: Any, sql: str, params: dict[str, Any] | None = None) -> pd.DataFrame:
    cur.execute(sql, params or {})
    columns = [c.name for c in cur.description]
    return pd.DataFrame.from_records(cur.fetchall(), columns=columns)


def _copy_frame(cur: Any, sql: str, params: dict[str, Any], dtype: dict[str, Any]) -> pd.DataFrame:
    """A query's rows through ``COPY ... TO STDOUT`` and pandas' CSV reader (fast for many rows).

    Under the gevent web server (psycopg2 green, which cannot COPY) the rows come through a
    plain query with the same columns and types."""
    from .rollup import green

    if green():
        cur.execute(sql, params)
        names = [c.name for c in cur.description]
        frame = pd.DataFrame.from_records(cur.fetchall(), columns=names)
        for name in names:  # as the CSV reader gives them: text as str (dates as ISO), NULL and '' as missing
            if dtype.get(name) is str:
                frame[name] = frame[name].map(lambda v: None if pd.isna(v) or v == "" else str(v)).astype(object)
        return frame.astype({k: v for k, v in dtype.items() if k in names and v is not str})
    buf = io.BytesIO()
    cur.copy_expert(f"COPY ({cur.mogrify(sql, params).decode()}) TO STDOUT WITH (FORMAT csv, HEADER true)", buf)
    buf.seek(0)
    return pd.read_csv(buf, dtype=dtype, keep_default_na=False, na_values=[""])


def _raw_filters(f: Filters, params: dict[str, Any], session: str = "s", user: str = "u") -> str:
    """Filter conditions on sessions and users (the grade as the rollups record it)."""
    params.update(subjects=list(f.subjects), grades=list(f.grades), unknown=UNKNOWN_GRADE)
    params.update(students=list(f.students or ()))
    conds = [f"{session}.student_id = ANY(%(students)s::int[])"] if f.students is not None else []
    if f.subjects:
        conds.append(f"{session}.subject = ANY(%(subjects)s)")
    if f.grades:
        conds.append(f"COALESCE({user}.grade_level, %(unknown)s) = ANY(%(grades)s)")
    return "".join(f" AND {c}" for c in conds)


def _utc_bounds(first: date, last: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
    from .rollup import local_day_bounds

    return local_day_bounds(first, tz)[0], local_day_bounds(last, tz)[1]


def _rolled_through(cur: Any, today: date) -> date | None:
    """The last day before today that the nightly job has rolled up (``daily_stats``), if any."""
    cur.execute("SELECT max(date) FROM daily_stats WHERE date < %(today)s", {"today": today})
    return cur.fetchone()[0]


@dataclass(frozen=True)
class _Split:
    """Which days of a range come from the rollups (``past``) and which from raw rows (``live``)."""

    past: tuple[date, date] | None
    live: tuple[date, date] | None


def _split(first: date, last: date, rolled: date | None, today: date) -> _Split:
    live_from = max(first, (rolled + timedelta(days=1)) if rolled else first)
    past_to = min(last, live_from - timedelta(days=1))
    past = (first, past_to) if past_to >= first else None
    live_to = min(last, today)
    live = (live_from, live_to) if live_to >= live_from else None
    return _Split(past, live)


# ------------------------------------------------------------------------------------ rolled-up days


class _Codes:
    """Strings (subjects, topics) as small integers, the same for every day in the store."""

    def __init__(self) -> None:
        self.index: dict[str, int] = {}
        self.names: list[str] = []

    def encode(self, values: Sequence[str] | np.ndarray) -> np.ndarray:
        if not len(values):
            return np.zeros(0, np.int32)
        inverse, uniques = pd.factorize(np.asarray(values, dtype=object))
        codes = np.empty(len(uniques), np.int32)
        for i, name in enumerate(uniques.tolist()):
            code = self.index.get(name)
            if code is None:
                code = self.index[name] = len(self.names)
                self.names.append(name)
            codes[i] = code
        return codes[inverse]

    def lookup(self, names: Sequence[str]) -> np.ndarray:
        return np.array([self.index.get(n, -1) for n in names], np.int32)


@dataclass
class _Day:
    """One rolled-up day's rollup rows as compact arrays (subjects and topics as codes)."""

    version: tuple[Any, ...] | None
    # rollup_daily: one row per subject x grade
    d_subject: np.ndarray
    d_grade: np.ndarray
    d_sums: np.ndarray  # (rows, len(SUMS)) int64
    d_hist: np.ndarray  # (rows, width) int32: buckets h_lo .. h_lo + width - 1 (the rest are 0)
    h_lo: int
    # rollup_student_day
    s_student: np.ndarray
    s_subject: np.ndarray
    s_grade: np.ndarray
    s_sessions: np.ndarray
    s_rating_sum: np.ndarray
    s_rating_count: np.ndarray
    # rollup_topic_day
    t_topic: np.ndarray
    t_subject: np.ndarray
    t_grade: np.ndarray
    t_sessions: np.ndarray
    # rollup_hour: slot = weekday * 24 + hour
    h_slot: np.ndarray
    h_subject: np.ndarray
    h_grade: np.ndarray
    h_sessions: np.ndarray
    # rollup_models
    mo_model: np.ndarray
    mo_subject: np.ndarray
    mo_grade: np.ndarray
    mo_sums: np.ndarray  # (rows, len(MODEL_SUMS)) int64


_I32, _I16 = np.int32, np.int16


def _ints(text: str) -> np.ndarray:
    """Space-separated integers (``array_to_string`` output) as an int64 array, parsed in C."""
    return np.fromstring(text, dtype=np.int64, sep=" ") if text.strip() else np.zeros(0, np.int64)


class DayStore:
    """The rolled-up days a process has shown, in memory; see the module docstring."""

    def __init__(self, max_days: int = DAY_CACHE_DAYS) -> None:
        self.max_days = max_days
        self.subjects = _Codes()
        self.topics = _Codes()
        self.models = _Codes()
        self._days: OrderedDict[date, _Day] = OrderedDict()
        self.memo: OrderedDict[tuple[Any, ...], tuple[tuple[Any, ...], Any]] = OrderedDict()
        self.lock = threading.Lock()
        self.reads = 0  # days read from the database (tests and benchmarks look)
        self._live: dict[tuple[Any, ...], tuple[float, list[_Day]]] = {}
        self.live_reads = 0  # live computations from the raw tables (tests and benchmarks look)
        self.scoped_reads = 0  # views of some students computed from the raw tables

    def clear(self) -> None:
        with self.lock:
            self._days.clear()
            self.memo.clear()
            self._live.clear()

    def clear_live(self) -> None:
        """Forget the live days (the next view computes them from the raw tables again)."""
        with self.lock:
            self._live.clear()

    def live(self, cur: Any, first: date, last: date, tz: ZoneInfo, max_age: float) -> list[_Day]:
        """The live days ``first .. last`` (see ``_live_days``), reused for ``max_age`` seconds.

        One dashboard interaction fires several callbacks (the view, the student table,
        retention), and each needs today: they share one computation, and today's figures are
        at most ``max_age`` seconds old. ``max_age`` 0 computes them on every call.
        """
        return self._shared(
            (first, last, tz.key), max_age, lambda: _live_days(cur, first, last, tz, self), "live_reads"
        )

    def scoped(
        self, cur: Any, students: tuple[int, ...], first: date, last: date, tz: ZoneInfo, max_age: float
    ) -> list[_Day]:
        """The days ``first .. last`` of these students only, from the raw tables (``_scoped_days``),
        shared like :meth:`live` for ``max_age`` seconds."""
        key = ("students", students, first, last, tz.key)
        return self._shared(key, max_age, lambda: _scoped_days(cur, students, first, last, tz, self), "scoped_reads")

    def scoped_past(self, cur: Any, students: tuple[int, ...], first: date, last: date, tz: ZoneInfo) -> list[_Day]:
        """Rolled-up days ``first .. last`` of these students only, kept (a few dozen entries) while
        every day's ``daily_stats`` version is unchanged, like the rolled-up days themselves: a
        teacher's repeated views cost the version check, and today's part is computed live."""
        versions = self._versions(cur, first, last)
        fingerprint = tuple(versions.get(d) for d in _days(first, last))

        def compute() -> list[_Day]:
            days = _scoped_days(cur, students, first, last, tz, self)
            with self.lock:
                self.scoped_reads += 1
            return days

        return self.remember(("students", students, first, last, tz.key), fingerprint, compute)

    def remember(self, key: tuple[Any, ...], fingerprint: tuple[Any, ...], compute: Any) -> Any:
        """``compute()``, kept under ``key`` (at most ``MEMO_ENTRIES``, least recently used
        dropped) and reused while ``fingerprint`` (the days' versions) is unchanged."""
        with self.lock:
            hit = self.memo.get(key)
            if hit is not None and hit[0] == fingerprint:
                self.memo.move_to_end(key)
                return hit[1]
        value = compute()
        with self.lock:
            self.memo[key] = (fingerprint, value)
            while len(self.memo) > MEMO_ENTRIES:
                self.memo.popitem(last=False)
        return value

    @staticmethod
    def _versions(cur: Any, first: date, last: date) -> dict[date, tuple[Any, ...]]:
        """Each rolled-up day's version: its ``daily_stats`` row, rewritten with its rollup rows."""
        cur.execute(
            "SELECT date, xmin::text, total_sessions, total_messages FROM daily_stats "
            "WHERE date BETWEEN %(first)s AND %(last)s",
            {"first": first, "last": last},
        )
        return {row[0]: tuple(row[1:]) for row in cur.fetchall()}

    def _shared(self, key: tuple[Any, ...], max_age: float, compute: Any, counter: str) -> list[_Day]:
        """``compute()``'s days, kept under ``key`` for ``max_age`` seconds (0: not kept)."""
        now = time.monotonic()
        if max_age > 0:
            with self.lock:
                hit = self._live.get(key)
                if hit is not None and now - hit[0] < max_age:
                    return hit[1]
        days = compute()
        with self.lock:
            setattr(self, counter, getattr(self, counter) + 1)
            if max_age > 0:
                self._live = {k: v for k, v in self._live.items() if now - v[0] < max_age}
                self._live[key] = (now, days)
        return days

    def get(self, cur: Any, first: date, last: date) -> list[_Day]:
        """The days ``first .. last`` (all rolled up), read from the database where not current."""
        versions = self._versions(cur, first, last)
        wanted = _days(first, last)
        with self.lock:
            out: dict[date, _Day] = {}
            stale = []
            for day in wanted:
                cached = self._days.get(day)
                if cached is not None and cached.version == versions.get(day):
                    self._days.move_to_end(day)
                    out[day] = cached
                else:
                    stale.append(day)
            if stale:
                fresh = self._read(cur, stale, versions)
                self.reads += len(stale)
                out.update(fresh)
                if len(wanted) <= self.max_days:
                    self._days.update(fresh)
                    while len(self._days) > self.max_days:
                        self._days.popitem(last=False)
        return [out[d] for d in wanted]

    def _read(self, cur: Any, days: list[date], versions: dict[date, tuple[Any, ...]]) -> dict[date, _Day]:
        """The days' rollup rows, in the shape ``analytics.rollup.compute_rollups`` gives live days."""
        params = {"days": days, "buckets": LATENCY_BUCKETS}
        where = "date = ANY(%(days)s::date[])"
        sums = ", ".join(SUMS)
        key = "date, subject, grade_level"
        daily = _copy_frame(
            cur,
            f"SELECT {key}, {sums}, CASE WHEN latency_count > 0 AND cardinality(latency_hist) = %(buckets)s "
            f"THEN array_to_string(latency_hist, ' ') END AS hist FROM rollup_daily WHERE {where}",
            params,
            {"date": str, "subject": str, "hist": str} | dict.fromkeys(SUMS, np.int64),
        )
        students = _copy_frame(
            cur,
            f"SELECT {key}, array_to_string(student_ids, ' ') AS student_ids, array_to_string(sessions, ' ') AS sessions, "
            "array_to_string(rating_sums, ' ') AS rating_sums, array_to_string(rating_counts, ' ') AS rating_counts "
            f"FROM rollup_students WHERE {where}",
            params,
            {
                "date": str,
                "subject": str,
                "student_ids": str,
                "sessions": str,
                "rating_sums": str,
                "rating_counts": str,
            },
        )
        topics = _copy_frame(
            cur,
            f"SELECT {key}, array_to_string(topics, E'\\x1f') AS topics, array_to_string(sessions, ' ') AS sessions "
            f"FROM rollup_topics WHERE {where}",
            params,
            {"date": str, "subject": str, "topics": str, "sessions": str},
        )
        hours = _copy_frame(
            cur,
            f"SELECT {key}, weekday, array_to_string(sessions, ' ') AS sessions FROM rollup_hours WHERE {where}",
            params,
            {"date": str, "subject": str, "sessions": str},
        )
        models = _copy_frame(
            cur,
            f"SELECT {key}, model, {', '.join(MODEL_SUMS)} FROM rollup_models WHERE {where}",
            params,
            {"date": str, "subject": str, "model": str} | dict.fromkeys(MODEL_SUMS, np.int64),
        )
        index = {day.isoformat(): i for i, day in enumerate(days)}

        def rows(frame: pd.DataFrame, arrays: Sequence[str] = ()) -> dict[str, Any]:
            out: dict[str, Any] = {
                "day": frame["date"].map(index).to_numpy(np.int64),
                "subject": frame["subject"].to_numpy(object),
                "grade_level": frame["grade_level"].to_numpy(np.int64),
            }
            for name in arrays:
                texts = frame[name].fillna("").to_numpy(object)
                flat = _ints(" ".join(texts))
                lengths = [s.count(" ") + 1 if s else 0 for s in texts]
                out[name] = np.split(flat, np.cumsum(lengths)[:-1]) if len(texts) else []
            return out

        d = rows(daily) | {name: daily[name].to_numpy(np.int64) for name in SUMS}
        hist_text = daily["hist"].to_numpy()
        has_hist = pd.notna(daily["hist"]).to_numpy()
        hists = np.zeros((len(daily), LATENCY_BUCKETS), np.int32)
        if has_hist.any():
            hists[has_hist] = _ints(" ".join(hist_text[has_hist])).reshape(-1, LATENCY_BUCKETS)
        d["latency_hist"] = list(hists)
        t_rows = rows(topics, ["sessions"])
        t_rows["topics"] = [np.array(s.split("\x1f"), dtype=object) for s in topics["topics"].fillna("").tolist()]
        h_rows = rows(hours, ["sessions"]) | {"weekday": hours["weekday"].to_numpy(np.int64)}
        out = {
            "rollup_daily": d,
            "rollup_students": rows(students, ["student_ids", "sessions", "rating_sums", "rating_counts"]),
            "rollup_topics": t_rows,
            "rollup_hours": h_rows,
            "rollup_models": rows(models)
            | {"model": models["model"].to_numpy(object)}
            | {name: models[name].to_numpy(np.int64) for name in MODEL_SUMS},
        }
        return {day: replace(_day_from_rollups(out, i, self), version=versions.get(day)) for i, day in enumerate(days)}


STORE = DayStore()


def clear_cache() -> None:
    """Forget the rolled-up days kept in memory (the next view reads them again)."""
    STORE.clear()


_EPOCH = date(1970, 1, 1)


class _Mask:
    """The filters as a row mask over a day's arrays."""

    def __init__(self, f: Filters, store: DayStore) -> None:
        self.subjects = store.subjects.lookup(f.subjects) if f.subjects else None
        self.grades = np.array(f.grades, _I16) if f.grades else None

    def __call__(self, subject: np.ndarray, grade: np.ndarray) -> np.ndarray | slice:
        if self.subjects is None and self.grades is None:
            return slice(None)
        keep = np.ones(len(subject), bool)
        if self.subjects is not None:
            keep &= np.isin(subject, self.subjects)
        if self.grades is not None:
            keep &= np.isin(grade, self.grades)
        return keep


# ------------------------------------------------------------------------------------ live days (raw rows)


def _split_runs(rows: dict[str, Any], arrays: Sequence[str], day: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Flatten the array columns of compact rollup rows of ``day`` into one element per row.

    Returns the source row of each element and each array column flattened.
    """
    at = np.flatnonzero(np.asarray(rows["day"]) == day)
    lengths = np.array([len(rows[arrays[0]][i]) for i in at], np.int64)
    owner = np.repeat(at, lengths)
    flat = {
        name: np.concatenate([np.asarray(rows[name][i]) for i in at]) if len(at) else np.zeros(0, np.int64)
        for name in arrays
    }
    return owner, flat


def _day_from_rollups(out: dict[str, Any], i: int, store: DayStore) -> _Day:
    """Day ``i`` of ``analytics.rollup.compute_rollups`` output as a :class:`_Day`, like a rolled-up one."""
    daily = out["rollup_daily"]
    at = np.flatnonzero(np.asarray(daily["day"]) == i)
    hists = np.array([daily["latency_hist"][j] for j in at], np.int32).reshape(len(at), LATENCY_BUCKETS)
    nonzero = np.flatnonzero(hists.any(axis=0))
    lo, hi = (int(nonzero[0]), int(nonzero[-1]) + 1) if len(nonzero) else (0, 0)

    def key(rows: dict[str, Any], owner: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        subjects = np.asarray(rows["subject"], dtype=object)[owner]
        return store.subjects.encode(subjects), np.asarray(rows["grade_level"])[owner].astype(_I16)

    students = out["rollup_students"]
    s_owner, s = _split_runs(students, ("student_ids", "sessions", "rating_sums", "rating_counts"), i)
    topics = out["rollup_topics"]
    t_owner, tp = _split_runs(topics, ("topics", "sessions"), i)
    hours = out["rollup_hours"]
    h_at = np.flatnonzero(np.asarray(hours["day"]) == i)
    per_hour = np.array([hours["sessions"][j] for j in h_at], np.int64).reshape(len(h_at), 24)
    h_row, h_hour = np.nonzero(per_hour)
    h_owner = h_at[h_row]
    d_subject, d_grade = key(daily, at)
    s_subject, s_grade = key(students, s_owner)
    t_subject, t_grade = key(topics, t_owner)
    h_subject, h_grade = key(hours, h_owner)
    models = out["rollup_models"]
    mo_at = np.flatnonzero(np.asarray(models["day"]) == i)
    mo_subject, mo_grade = key(models, mo_at)
    return _Day(
        version=None,
        d_subject=d_subject,
        d_grade=d_grade,
        d_sums=np.column_stack([np.asarray(daily[name])[at] for name in SUMS])
        .astype(np.int64)
        .reshape(len(at), len(SUMS)),
        d_hist=np.ascontiguousarray(hists[:, lo:hi]),
        h_lo=lo,
        s_student=s["student_ids"].astype(_I32),
        s_subject=s_subject,
        s_grade=s_grade,
        s_sessions=s["sessions"].astype(_I32),
        s_rating_sum=s["rating_sums"].astype(_I32),
        s_rating_count=s["rating_counts"].astype(_I32),
        t_topic=store.topics.encode(tp["topics"].astype(object)),
        t_subject=t_subject,
        t_grade=t_grade,
        t_sessions=tp["sessions"].astype(_I32),
        h_slot=(np.asarray(hours["weekday"])[h_owner] * 24 + h_hour).astype(_I16),
        h_subject=h_subject,
        h_grade=h_grade,
        h_sessions=per_hour[h_row, h_hour].astype(_I32),
        mo_model=store.models.encode(np.asarray(models["model"], dtype=object)[mo_at]),
        mo_subject=mo_subject,
        mo_grade=mo_grade,
        mo_sums=np.column_stack([np.asarray(models[name])[mo_at] for name in MODEL_SUMS])
        .astype(np.int64)
        .reshape(len(mo_at), len(MODEL_SUMS)),
    )


def _live_days(cur: Any, first: date, last: date, tz: ZoneInfo, store: DayStore) -> list[_Day]:
    """The days ``first .. last`` (not rolled up yet: normally just today) from the raw tables.

    ``analytics.rollup.compute_rollups`` computes them exactly as the nightly job will, reading
    in the view's snapshot (its second connection imports it), so they fit the rolled-up days.
    """
    from .rollup import compute_rollups

    cur.execute("SELECT pg_export_snapshot()")
    out = compute_rollups(cur, first, last, tz, snapshot=cur.fetchone()[0])
    return [_day_from_rollups(out, i, store) for i in range((last - first).days + 1)]


def _scoped_days(
    cur: Any, students: tuple[int, ...], first: date, last: date, tz: ZoneInfo, store: DayStore
) -> list[_Day]:
    """The days ``first .. last`` of ``students`` only, computed from their raw rows with the
    nightly job's code (so they have exactly the figures everyone's rollups have for them)."""
    from .rollup import compute_rollups

    cur.execute("SELECT pg_export_snapshot()")
    out = compute_rollups(cur, first, last, tz, snapshot=cur.fetchone()[0], students=students)
    return [_day_from_rollups(out, i, store) for i in range((last - first).days + 1)]


def _distinct(values: np.ndarray) -> int:
    """How many distinct non-negative integers (student ids) ``values`` holds."""
    if not len(values):
        return 0
    top = int(values.max())
    if top < 50_000_000:
        seen = np.zeros(top + 1, bool)
        seen[values] = True
        return int(seen.sum())
    return len(np.unique(values))


def _distinct_per(keys: np.ndarray, values: np.ndarray) -> dict[int, int]:
    """Distinct ``values`` (student ids) per key (subject code or grade)."""
    if not len(values):
        return {}
    uniques, inverse = np.unique(keys, return_inverse=True)
    top = int(values.max()) + 1
    if len(uniques) * top <= 20_000_000:
        seen = np.zeros((len(uniques), top), bool)
        seen[inverse.ravel(), values] = True
        counts = seen.sum(axis=1)
    else:
        pairs = np.unique(inverse.ravel().astype(np.int64) * top + values)
        counts = np.bincount(pairs // top, minlength=len(uniques))
    return dict(zip(uniques.tolist(), counts.tolist(), strict=True))


def _combine(keys: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
    """One int64 code per row for the combination of the integer ``keys``, and each key's values."""
    code = np.zeros(len(keys[0]), np.int64)
    uniques = []
    for key in keys:
        values, inverse = np.unique(key, return_inverse=True)
        code = code * max(1, len(values)) + inverse.ravel()
        uniques.append(values)
    return code, uniques


def _decode(code: np.ndarray, uniques: list[np.ndarray]) -> list[np.ndarray]:
    out = []
    for values in reversed(uniques):
        n = max(1, len(values))
        out.append(values[code % n] if len(values) else code[:0])
        code = code // n
    return out[::-1]


def _group_sum(keys: list[np.ndarray], values: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
    """Sum the rows of ``values`` (2-D) per distinct combination of the integer ``keys``."""
    if not len(values):
        return [k[:0] for k in keys], values
    code, uniques = _combine(keys)
    groups, inverse = np.unique(code, return_inverse=True)
    out = np.zeros((len(groups), values.shape[1]), values.dtype)
    np.add.at(out, inverse.ravel(), values)
    return _decode(groups, uniques), out


# ------------------------------------------------------------------------------------ the main view


#: KPI name -> (label, unit, which direction is better)
KPI_SPECS: dict[str, tuple[str, str, str]] = {
    "sessions": ("Sessions", "", "up"),
    "active_students": ("Active students", "", "up"),
    "avg_duration_min": ("Avg. duration", "min", "up"),
    "avg_satisfaction": ("Avg. satisfaction", "/ 5", "up"),
    "tutor_replies": ("Tutor replies", "", "up"),
    "latency_p95_ms": ("AI p95 latency", "ms", "down"),
    "failure_rate": ("Failure rate", "%", "down"),
}


@dataclass
class View:
    """Everything the main dashboard view shows, for one :class:`Filters`."""

    filters: Filters
    today: date
    rolled_through: date | None
    daily: pd.DataFrame  # one row per day of the range, oldest first: DAILY_COLUMNS
    kpis: pd.DataFrame  # index: KPI_SPECS keys; label, unit, better, current, previous, change, change_pct
    topics: pd.DataFrame  # topic, sessions (most first)
    heatmap: pd.DataFrame  # weekday (0 = Monday), hour, sessions: all 7 x 24 cells
    subjects: pd.DataFrame  # subject, sessions, active_students
    grades: pd.DataFrame  # grade_level, sessions, active_students
    live_days: list[date] = field(default_factory=list)
    data_start: date | None = None  # the first session's local day (None: no sessions at all)
    models: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=list(MODEL_COLUMNS)))  # per day × model

    @property
    def total_sessions(self) -> int:
        return int(self.daily["sessions"].sum())

    @property
    def previous_covered(self) -> int:
        """Days of the comparison range (``filters.previous()``) on or after the first session."""
        previous = self.filters.previous()
        if self.data_start is None or self.data_start > previous.end:
            return 0
        return (previous.end - max(previous.start, self.data_start)).days + 1


@dataclass
class _Range:
    """One range's figures per day, before they are shaped for display."""

    days: list[date]
    sums: np.ndarray  # (days, len(SUMS))
    hists: list[np.ndarray | None]  # per day
    students: dict[str, np.ndarray]  # distinct student rows of the range (past and live), _STUDENT_FIELDS
    per_day_students: np.ndarray  # distinct students per day
    breakdown: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # subject code, grade, sessions
    topics: pd.DataFrame | None = None  # topic, sessions
    hours: np.ndarray | None = None  # 168 slots
    live_days: list[date] = field(default_factory=list)
    models: pd.DataFrame | None = None  # MODEL_COLUMNS


_STUDENT_FIELDS = ("day", "student_id", "subject", "grade_level", "sessions", "rating_sum", "ratings")


def _past_students(days: list[date], stored: list[_Day], mask: _Mask) -> dict[str, np.ndarray]:
    """The days' ``rollup_student_day`` rows (filtered), one array per field of ``_STUDENT_FIELDS``."""
    parts: dict[str, list[np.ndarray]] = {name: [] for name in _STUDENT_FIELDS}
    for day, d in zip(days, stored, strict=True):
        keep = mask(d.s_subject, d.s_grade)
        student = d.s_student[keep]
        parts["day"].append(np.full(len(student), (day - _EPOCH).days, np.int64))
        parts["student_id"].append(student)
        parts["subject"].append(d.s_subject[keep])
        parts["grade_level"].append(d.s_grade[keep])
        parts["sessions"].append(d.s_sessions[keep])
        parts["rating_sum"].append(d.s_rating_sum[keep])
        parts["ratings"].append(d.s_rating_count[keep])
    return {name: np.concatenate(p).astype(np.int64) if p else np.zeros(0, np.int64) for name, p in parts.items()}


def _join_students(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {
        name: np.concatenate([p[name] for p in parts]).astype(np.int64) if parts else np.zeros(0, np.int64)
        for name in _STUDENT_FIELDS
    }


@dataclass
class _Past:
    """The rolled-up part of a range, aggregated for one filter (memoised per store, see ``_past_part``)."""

    sums: np.ndarray  # (days, len(SUMS))
    hists: list[np.ndarray | None]
    per_day: np.ndarray  # distinct students per day
    students: dict[str, np.ndarray]  # distinct (student_id, subject, grade_level), "day" = -1
    breakdown: tuple[np.ndarray, np.ndarray, np.ndarray]  # subject code, grade, sessions
    topic_counts: np.ndarray  # sessions per topic code
    hours: np.ndarray  # 168 slots
    models: np.ndarray  # (rows, 2 + len(MODEL_SUMS)): day index, model code, MODEL_SUMS


def _past_part(cur: Any, f: Filters, first: date, last: date, store: DayStore) -> _Past:
    """Aggregate the rolled-up days ``first .. last`` under ``f``'s filters.

    The result depends only on those days' rollup rows, so it is kept (a few dozen entries per
    process) and reused while every day's version is unchanged: a repeated view costs the
    version check, not the aggregation.
    """
    stored = store.get(cur, first, last)
    fingerprint = tuple(d.version for d in stored)
    return store.remember(
        (f.subjects, f.grades, first, last), fingerprint, lambda: _aggregate_days(f, _days(first, last), stored, store)
    )


def _aggregate_days(f: Filters, days: list[date], stored: list[_Day], store: DayStore) -> _Past:
    """The days' rollup rows (rolled up or live) aggregated under ``f``'s filters."""
    mask = _Mask(f, store)
    sums = np.zeros((len(days), len(SUMS)), np.int64)
    hists: list[np.ndarray | None] = [None] * len(days)
    per_day = np.zeros(len(days), np.int64)
    b_subject, b_grade, b_sessions, t_topic, t_sessions = [], [], [], [], []
    hours = np.zeros(7 * 24, np.int64)
    model_rows = []
    for i, d in enumerate(stored):
        mo_keep = mask(d.mo_subject, d.mo_grade)
        (mo_model,), mo_sums = _group_sum([d.mo_model[mo_keep].astype(np.int64)], d.mo_sums[mo_keep])
        model_rows.append(np.column_stack([np.full(len(mo_model), i), mo_model, mo_sums]).astype(np.int64))
        keep = mask(d.d_subject, d.d_grade)
        rows = d.d_sums[keep]
        sums[i] = rows.sum(axis=0)
        if sums[i, _S["latency_count"]]:
            hist = np.zeros(LATENCY_BUCKETS, np.int64)
            hist[d.h_lo : d.h_lo + d.d_hist.shape[1]] = d.d_hist[keep].sum(axis=0)
            hists[i] = hist
        b_subject.append(d.d_subject[keep])
        b_grade.append(d.d_grade[keep])
        b_sessions.append(rows[:, _S["sessions"]])
        t_keep = mask(d.t_subject, d.t_grade)
        t_topic.append(d.t_topic[t_keep])
        t_sessions.append(d.t_sessions[t_keep])
        h_keep = mask(d.h_subject, d.h_grade)
        hours += np.bincount(d.h_slot[h_keep], weights=d.h_sessions[h_keep], minlength=168).astype(np.int64)
    rows = _past_students(days, stored, mask)
    first_day = (days[0] - _EPOCH).days
    for day, n in _distinct_per(rows["day"], rows["student_id"]).items():
        per_day[day - first_day] = n
    code, uniques = _combine([rows["student_id"], rows["subject"], rows["grade_level"]])
    student_id, subject, grade = _decode(np.unique(code), uniques) if len(code) else ([np.zeros(0, np.int64)] * 3)
    students = {name: np.zeros(len(student_id), np.int64) for name in _STUDENT_FIELDS}
    students |= {
        "day": np.full(len(student_id), -1),
        "student_id": student_id,
        "subject": subject,
        "grade_level": grade,
    }
    (bs, bg), bsum = _group_sum(
        [np.concatenate(b_subject).astype(np.int64), np.concatenate(b_grade).astype(np.int64)],
        np.concatenate(b_sessions).astype(np.int64)[:, None],
    )
    topics_all = np.concatenate(t_topic) if t_topic else np.zeros(0, np.int64)
    topic_counts = (
        np.bincount(topics_all, weights=np.concatenate(t_sessions)).astype(np.int64)
        if len(topics_all)
        else np.zeros(0, np.int64)
    )
    models = np.concatenate(model_rows) if model_rows else np.zeros((0, 2 + len(MODEL_SUMS)), np.int64)
    return _Past(sums, hists, per_day, students, (bs, bg, bsum[:, 0]), topic_counts, hours, models)


def _load_range(
    cur: Any, f: Filters, rolled: date | None, today: date, tz: ZoneInfo, store: DayStore, full: bool
) -> _Range:
    days = f.days()
    position = {d: i for i, d in enumerate(days)}
    sums = np.zeros((len(days), len(SUMS)), np.int64)
    hists: list[np.ndarray | None] = [None] * len(days)
    per_day = np.zeros(len(days), np.int64)
    student_parts: list[dict[str, np.ndarray]] = []
    b_subject: list[np.ndarray] = []
    b_grade: list[np.ndarray] = []
    b_sessions: list[np.ndarray] = []
    topic_counts = np.zeros(0, np.int64)
    hours = np.zeros(7 * 24, np.int64)
    model_parts: list[np.ndarray] = []
    split = _split(f.start, f.end, rolled, today)
    parts = []
    live_days: list[date] = []
    if f.students is not None:  # some students: every day from their own rows
        if split.past:
            shown = _days(*split.past)
            scoped = store.scoped_past(cur, f.students, *split.past, tz)
            parts.append((split.past[0], _aggregate_days(f, shown, scoped, store)))
        if split.live:
            live_days = _days(*split.live)
            scoped = store.scoped(cur, f.students, *split.live, tz, live_seconds())
            parts.append((split.live[0], _aggregate_days(f, live_days, scoped, store)))
        split = _Split(None, None)
    if split.past:
        parts.append((split.past[0], _past_part(cur, f, *split.past, store)))
    if split.live:
        live_days = _days(*split.live)
        live = store.live(cur, *split.live, tz, live_seconds())
        parts.append((split.live[0], _aggregate_days(f, live_days, live, store)))
    for start, part in parts:
        i = position[start]
        n = len(part.per_day)
        sums[i : i + n] = part.sums
        hists[i : i + n] = part.hists
        per_day[i : i + n] = part.per_day
        student_parts.append(part.students)
        b_subject.append(part.breakdown[0])
        b_grade.append(part.breakdown[1])
        b_sessions.append(part.breakdown[2])
        width = max(len(topic_counts), len(part.topic_counts))
        topic_counts = np.pad(topic_counts, (0, width - len(topic_counts))) + np.pad(
            part.topic_counts, (0, width - len(part.topic_counts))
        )
        hours = hours + part.hours
        model_parts.append(part.models + np.array([i] + [0] * (part.models.shape[1] - 1), np.int64))

    result = _Range(days, sums, hists, _join_students(student_parts), per_day, live_days=live_days)
    if full:
        result.breakdown = (
            np.concatenate(b_subject).astype(np.int64) if b_subject else np.zeros(0, np.int64),
            np.concatenate(b_grade).astype(np.int64) if b_grade else np.zeros(0, np.int64),
            np.concatenate(b_sessions).astype(np.int64) if b_sessions else np.zeros(0, np.int64),
        )
        nonzero = np.flatnonzero(topic_counts)
        result.topics = pd.DataFrame(
            {"topic": [store.topics.names[t] for t in nonzero.tolist()], "sessions": topic_counts[nonzero]}
        )
        result.hours = hours
        rows = np.concatenate(model_parts) if model_parts else np.zeros((0, 2 + len(MODEL_SUMS)), np.int64)
        result.models = pd.DataFrame(
            {"date": [days[int(i)] for i in rows[:, 0]], "model": [store.models.names[c] for c in rows[:, 1]]}
            | {name: rows[:, 2 + j] for j, name in enumerate(MODEL_SUMS)},
            columns=list(MODEL_COLUMNS),
        ).sort_values(["date", "model"], ignore_index=True)
    return result


def _ratio(num: float, den: float) -> float | None:
    return float(num) / float(den) if den else None


def _totals(r: _Range) -> dict[str, float | None]:
    total = r.sums.sum(axis=0)
    present = [h for h in r.hists if h is not None]
    p95 = latency_percentiles(np.sum(present, axis=0), [0.95])[0] if present else None
    replies = int(total[_S["tutor_replies_done"]] + total[_S["tutor_replies_failed"]])
    duration = _ratio(total[_S["duration_sum"]], total[_S["duration_count"]])
    failure = _ratio(total[_S["tutor_replies_failed"]], replies)
    return {
        "sessions": int(total[_S["sessions"]]),
        "active_students": _distinct(r.students["student_id"]),
        "avg_duration_min": duration / 60 if duration is not None else None,
        "avg_satisfaction": _ratio(total[_S["rating_sum"]], total[_S["rating_count"]]),
        "tutor_replies": replies,
        "latency_p95_ms": p95,
        "failure_rate": failure * 100 if failure is not None else None,
    }


def _kpis(current: dict[str, float | None], previous: dict[str, float | None]) -> pd.DataFrame:
    rows = []
    for name, (label, unit, better) in KPI_SPECS.items():
        cur, prev = current[name], previous[name]
        change = cur - prev if cur is not None and prev is not None else None
        pct = change / prev * 100 if change is not None and prev else None
        rows.append(
            {"kpi": name, "label": label, "unit": unit, "better": better, "current": cur, "previous": prev}
            | {"change": change, "change_pct": pct}
        )
    return pd.DataFrame(rows).set_index("kpi")


def _share(num: np.ndarray, den: np.ndarray, scale: float = 1.0) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1) * scale, np.nan)


def _quantiles(hists: np.ndarray, qs: Sequence[float]) -> np.ndarray:
    """``latency_percentiles`` of every row of ``hists`` at once: (rows, len(qs)), NaN for empty rows.

    The same estimate, vectorised: the q-quantile is at fractional rank ``q * (n - 1)``, each
    integer rank's value is placed evenly inside its bucket, and the two neighbouring ranks are
    interpolated linearly (the tests compare it with ``latency_percentiles``).
    """
    out = np.full((len(hists), len(qs)), np.nan)
    if not len(hists):
        return out
    cum = np.cumsum(hists, axis=1)
    n = cum[:, -1]
    lows = np.concatenate([[0.0], LATENCY_EDGES_MS])
    highs = np.concatenate([LATENCY_EDGES_MS, [LATENCY_EDGES_MS[-1]]])
    rows = np.flatnonzero(n > 0)
    cum, n, hists = cum[rows], n[rows], hists[rows]
    index = np.arange(len(rows))

    def value_at(rank: np.ndarray) -> np.ndarray:
        b = (cum <= rank[:, None]).sum(axis=1)
        before = np.where(b > 0, cum[index, np.maximum(b - 1, 0)], 0)
        c = hists[index, b]
        return lows[b] + (rank - before + 0.5) / c * (highs[b] - lows[b])

    for j, q in enumerate(qs):
        h = q * (n - 1)
        lo = np.floor(h).astype(np.int64)
        hi = np.minimum(lo + 1, n - 1)
        v_lo = value_at(lo)
        v_hi = value_at(hi)
        out[rows, j] = np.where((hi == lo) | (h == lo), v_lo, v_lo + (h - lo) * (v_hi - v_lo))
    return out


def _daily_table(r: _Range) -> pd.DataFrame:
    s = r.sums
    col = {name: s[:, i] for name, i in _S.items()}
    replies = col["tutor_replies_done"] + col["tutor_replies_failed"]
    hists = np.zeros((len(r.days), LATENCY_BUCKETS), np.int64)
    for i, hist in enumerate(r.hists):
        if hist is not None:
            hists[i] = hist
    quantiles = _quantiles(hists, (0.5, 0.95))
    live = set(r.live_days)
    return pd.DataFrame(
        {
            "date": r.days,
            "sessions": col["sessions"],
            "active_students": r.per_day_students,
            "avg_duration_min": _share(col["duration_sum"], col["duration_count"], 1 / 60),
            "avg_satisfaction": _share(col["rating_sum"], col["rating_count"]),
            "ratings": col["rating_count"],
            "student_messages": col["student_messages"],
            "tutor_replies": replies,
            "failed_replies": col["tutor_replies_failed"],
            "failure_rate": _share(col["tutor_replies_failed"], replies, 100),
            # over every finished reply, with the share the guardrail could not judge beside it
            "answer_revealed_share": _share(col["answer_revealed_count"], col["tutor_replies_done"], 100),
            "answer_unjudged_share": _share(
                col["tutor_replies_done"] - col["answer_checked_count"], col["tutor_replies_done"], 100
            ),
            "thumbs_up": col["thumbs_up"],
            "thumbs_down": col["thumbs_down"],
            "latency_p50_ms": quantiles[:, 0],
            "latency_p95_ms": quantiles[:, 1],
            "latency_mean_ms": _share(col["latency_sum_ms"], col["latency_count"]),
            "generation_mean_ms": _share(col["generation_sum_ms"], col["generation_count"]),
            "cut_short_replies": col["replies_cut_short"],
            "prompt_tokens": col["prompt_tokens"],
            "completion_tokens": col["completion_tokens"],
            "live": [d in live for d in r.days],
        },
        columns=list(DAILY_COLUMNS),
    )


def _breakdown(by: np.ndarray, sessions: np.ndarray, s_by: np.ndarray, s_student: np.ndarray) -> pd.DataFrame:
    """Sessions and distinct active students per value of ``by`` (subject code or grade)."""
    keys, inverse = np.unique(by, return_inverse=True)
    total = np.zeros(len(keys), np.int64)
    np.add.at(total, inverse.ravel(), sessions)
    active = _distinct_per(s_by, s_student)
    out = pd.DataFrame({"key": keys, "sessions": total, "active_students": [active.get(k, 0) for k in keys.tolist()]})
    return out[out["sessions"] > 0].reset_index(drop=True)


def load_view(f: Filters, today: date | None = None, tz: ZoneInfo | None = None, store: DayStore | None = None) -> View:
    """All figures of the main view for ``f``, and the KPIs' change against ``f.previous()``."""
    tz = tz or analytics_tz()
    today = today or analytics_today(tz)
    store = store or STORE
    with _reader() as cur:
        rolled = _rolled_through(cur, today)
        only = "" if f.students is None else " AND s.student_id = ANY(%(s)s::int[])"
        cur.execute(  # the index's first entries
            f"SELECT min(s.created_at) FROM sessions s WHERE {NOT_EMPTY}{only}", {"s": list(f.students or ())}
        )
        first = cur.fetchone()[0]
        current = _load_range(cur, f, rolled, today, tz, store, full=True)
        previous = _load_range(cur, f.previous(), rolled, today, tz, store, full=False)

    kpis = _kpis(_totals(current), _totals(previous))
    topics = (
        current.topics.groupby("topic", as_index=False)["sessions"].sum() if len(current.topics) else current.topics
    )
    topics = topics.astype({"sessions": np.int64}).sort_values(
        ["sessions", "topic"], ascending=[False, True], ignore_index=True
    )
    heatmap = pd.DataFrame(
        {"weekday": np.repeat(np.arange(7), 24), "hour": np.tile(np.arange(24), 7), "sessions": current.hours}
    )
    b_subject, b_grade, b_sessions = current.breakdown
    st = current.students
    subjects = _breakdown(b_subject, b_sessions, st["subject"], st["student_id"])
    subjects = pd.DataFrame(
        {
            "subject": [store.subjects.names[c] for c in subjects["key"].tolist()],
            "sessions": subjects["sessions"],
            "active_students": subjects["active_students"],
        }
    ).sort_values(["sessions", "subject"], ascending=[False, True], ignore_index=True)
    grades = _breakdown(b_grade, b_sessions, st["grade_level"], st["student_id"]).rename(columns={"key": "grade_level"})
    daily = _daily_table(current)
    data_start = first.astimezone(tz).date() if first is not None else None
    return View(
        f, today, rolled, daily, kpis, topics, heatmap, subjects, grades, current.live_days, data_start, current.models
    )


# ------------------------------------------------------------------------------------ lists and students


def recent_sessions(f: Filters, topic: str | None = None, limit: int = 25, tz: ZoneInfo | None = None) -> pd.DataFrame:
    """The latest sessions in the range (newest first), optionally only those touching ``topic``."""
    tz = tz or analytics_tz()
    lo, hi = _utc_bounds(f.start, f.end, tz)
    params: dict[str, Any] = {"lo": lo, "hi": hi, "limit": int(limit), "topic": topic, "tz": tz.key}
    params |= {"first": f.start, "last": f.end}
    filters = _raw_filters(f, params)
    topic_cond = (
        " AND EXISTS (SELECT 1 FROM session_topics t WHERE t.session_id = s.id AND t.topic = %(topic)s)"
        if topic
        else ""
    )
    with _reader() as cur:
        return _frame(
            cur,
            f"""
            SELECT s.id::text AS session_id, (s.created_at AT TIME ZONE %(tz)s) AS started, s.student_id,
                   COALESCE(NULLIF(u.display_name, ''), u.email) AS student, s.subject,
                   COALESCE(u.grade_level, %(unknown)s) AS grade_level, s.status,
                   round(s.duration_seconds / 60.0, 1)::float8 AS duration_min, s.satisfaction,
                   (SELECT string_agg(t.topic, ', ' ORDER BY t.topic) FROM session_topics t WHERE t.session_id = s.id) AS topics
            FROM sessions s JOIN users u ON u.id = s.student_id
            WHERE s.created_at >= %(lo)s AND s.created_at < %(hi)s AND {NOT_EMPTY}
              AND (s.created_at AT TIME ZONE %(tz)s)::date BETWEEN %(first)s AND %(last)s{filters}{topic_cond}
            ORDER BY s.created_at DESC
            LIMIT %(limit)s
            """,
            params,
        )


#: Columns of ``judge_scores``.
JUDGE_COLUMNS = [
    "subject", "model", "judged", "unrated", "judge_reveals", "rules_reveals", "identifies_mistake",
    "gives_guidance", "actionable",
]  # fmt: skip


def judge_scores(f: Filters, tz: ZoneInfo | None = None) -> pd.DataFrame:
    """The LLM judge's verdicts on the range's replies (judged when they were made), per subject
    and model: replies judged, unrated, how many it says reveal the answer beside how many the
    guardrail's rules flagged, and its mean scores (0 no, 1 to some extent, 2 yes)."""
    tz = tz or analytics_tz()
    lo, hi = _utc_bounds(f.start, f.end, tz)
    params: dict[str, Any] = {"lo": lo, "hi": hi}
    filters = _raw_filters(f, params)
    with _reader() as cur:
        frame = _frame(
            cur,
            f"""
            SELECT s.subject, COALESCE(j.model, m.model, m.provider, 'unknown') AS model, count(*) AS judged,
                   count(*) FILTER (WHERE j.status = 'unrated') AS unrated,
                   count(*) FILTER (WHERE j.reveals_answer) AS judge_reveals,
                   count(*) FILTER (WHERE m.answer_revealed) AS rules_reveals,
                   avg(j.identifies_mistake)::float8 AS identifies_mistake,
                   avg(j.gives_guidance)::float8 AS gives_guidance, avg(j.actionable)::float8 AS actionable
            FROM reply_judgements j
            JOIN messages m ON m.id = j.message_id
            JOIN sessions s ON s.id = m.session_id
            JOIN users u ON u.id = s.student_id
            WHERE j.judged_at >= %(lo)s AND j.judged_at < %(hi)s{filters}
            GROUP BY 1, 2 ORDER BY 1, 2
            """,
            params,
        )
    return frame if len(frame) else pd.DataFrame(columns=JUDGE_COLUMNS)


STUDENT_COLUMNS = [
    "student_id",
    "name",
    "email",
    "grade_level",
    "sessions",
    "last_active",
    "topics_covered",
    "avg_rating",
    "ratings",
]


def _range_students(cur: Any, f: Filters, today: date, tz: ZoneInfo, store: DayStore) -> pd.DataFrame:
    """The range's ``rollup_student_day`` rows (rolled-up days from the store, live days from sessions)."""
    rolled = _rolled_through(cur, today)
    split = _split(f.start, f.end, rolled, today)
    parts = []
    if f.students is not None:
        if split.past:
            scoped = store.scoped_past(cur, f.students, *split.past, tz)
            parts.append(_past_students(_days(*split.past), scoped, _Mask(f, store)))
        if split.live:
            scoped = store.scoped(cur, f.students, *split.live, tz, live_seconds())
            parts.append(_past_students(_days(*split.live), scoped, _Mask(f, store)))
        split = _Split(None, None)
    if split.past:
        parts.append(_past_students(_days(*split.past), store.get(cur, *split.past), _Mask(f, store)))
    if split.live:
        parts.append(
            _past_students(_days(*split.live), store.live(cur, *split.live, tz, live_seconds()), _Mask(f, store))
        )
    return pd.DataFrame(_join_students(parts))


def students_frame(
    f: Filters,
    search: str | None = None,
    limit: int | None = None,
    today: date | None = None,
    tz: ZoneInfo | None = None,
    store: DayStore | None = None,
) -> pd.DataFrame:
    """Students with sessions in the range: sessions, last active day, distinct topics, average rating.

    ``search`` matches the name or e-mail (case-insensitive substring). Sorted by sessions (most
    first), then name; ``limit`` keeps the first rows (topics are counted only for those).
    ``frame.attrs["total"]`` is the number of matching students before the limit.
    """
    tz = tz or analytics_tz()
    today = today or analytics_today(tz)
    store = store or STORE
    with _reader() as cur:
        rows = _range_students(cur, f, today, tz, store)
        if not len(rows):
            return pd.DataFrame(columns=STUDENT_COLUMNS)
        stats = rows.groupby("student_id").agg(
            sessions=("sessions", "sum"),
            last_day=("day", "max"),
            rating_sum=("rating_sum", "sum"),
            ratings=("ratings", "sum"),
        )
        term = (search or "").strip().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        people = _frame(
            cur,
            """SELECT id AS student_id, COALESCE(NULLIF(display_name, ''), email) AS name, email,
                      COALESCE(grade_level, %(unknown)s) AS grade_level
               FROM users WHERE id = ANY(%(ids)s) AND (display_name ILIKE %(search)s OR email ILIKE %(search)s)""",
            {"ids": stats.index.astype(int).tolist(), "search": f"%{term}%", "unknown": UNKNOWN_GRADE},
        )
        if not len(people):
            return pd.DataFrame(columns=STUDENT_COLUMNS)
        out = people.merge(stats.reset_index(), on="student_id")
        out = out.sort_values(["sessions", "name"], ascending=[False, True], ignore_index=True)
        total = len(out)
        if limit is not None:
            out = out.head(limit)
        lo, hi = _utc_bounds(f.start, f.end, tz)
        params: dict[str, Any] = {"ids": out["student_id"].astype(int).tolist(), "lo": lo, "hi": hi}
        params |= {"tz": tz.key, "first": f.start, "last": f.end, "subjects": list(f.subjects)}
        subject = " AND s.subject = ANY(%(subjects)s)" if f.subjects else ""
        # Per student, an index range scan of their sessions (student_id, created_at).
        topics = _frame(
            cur,
            f"""SELECT a.id AS student_id,
                       (SELECT count(DISTINCT t.topic) FROM sessions s JOIN session_topics t ON t.session_id = s.id
                        WHERE s.student_id = a.id AND s.created_at >= %(lo)s AND s.created_at < %(hi)s
                          AND (s.created_at AT TIME ZONE %(tz)s)::date BETWEEN %(first)s AND %(last)s{subject}
                       )::bigint AS topics_covered
                FROM unnest(%(ids)s::int[]) AS a(id)""",
            params,
        )
    out = out.merge(topics, on="student_id", how="left")
    out["topics_covered"] = out["topics_covered"].fillna(0).astype(np.int64)
    out["last_active"] = [_EPOCH + timedelta(days=int(d)) for d in out["last_day"]]
    out["avg_rating"] = _share(out["rating_sum"].to_numpy(float), out["ratings"].to_numpy(float))
    out = out.astype({"sessions": np.int64, "ratings": np.int64, "grade_level": np.int64})[STUDENT_COLUMNS]
    out.attrs["total"] = total
    return out


def student_timeline(
    student_id: int, tz: ZoneInfo | None = None, students: tuple[int, ...] | None = None
) -> dict[str, Any]:
    """One student's whole history: who, sessions per week, cumulative curriculum coverage, ratings.

    ``student``: id, name, email, grade_level (None for an unknown id). ``weekly``: week
    (Monday), sessions, every week from the first to the last. ``students``: the viewer's
    students (None: everyone); anyone else is "not found". ``coverage``: date, subject,
    covered (distinct curriculum topics of the subject touched so far), total (the subject's
    topics), share. ``ratings``: date, rating, oldest first.
    """
    from tutor.curriculum import get_curriculum

    tz = tz or analytics_tz()
    if students is not None and int(student_id) not in students:
        student_id = -1  # not one of the viewer's students: as unknown as an id that does not exist
    with _reader() as cur:
        people = _frame(
            cur,
            "SELECT id, COALESCE(NULLIF(display_name, ''), email) AS name, email, grade_level FROM users WHERE id = %(id)s",
            {"id": int(student_id)},
        )
        sessions = _frame(
            cur,
            """SELECT s.id AS session_id, (s.created_at AT TIME ZONE %(tz)s) AS started, s.subject,
                      s.satisfaction, t.topic
               FROM sessions s LEFT JOIN session_topics t ON t.session_id = s.id
               WHERE s.student_id = %(id)s AND """
            + NOT_EMPTY
            + """ ORDER BY s.created_at""",
            {"id": int(student_id), "tz": tz.key},
        )
    person = people.iloc[0].to_dict() if len(people) else None
    if not len(sessions):
        return {
            "student": person,
            "weekly": pd.DataFrame(columns=["week", "sessions"]),
            "coverage": pd.DataFrame(columns=["date", "subject", "covered", "total", "share"]),
            "ratings": pd.DataFrame(columns=["date", "rating"]),
        }
    sessions["started"] = pd.to_datetime(sessions["started"])
    sessions["date"] = sessions["started"].dt.date
    one = sessions.drop_duplicates("session_id")  # one row per session (its topics repeat it)
    week = (one["started"].dt.normalize() - pd.to_timedelta(one["started"].dt.day_of_week, unit="D")).dt.date
    weekly = week.value_counts().sort_index()
    every_week = pd.date_range(min(weekly.index), max(weekly.index), freq="7D").date
    weekly = weekly.reindex(every_week, fill_value=0).rename_axis("week").rename("sessions").reset_index()

    curriculum = get_curriculum()
    rows = []
    for subject, group in sessions.dropna(subset=["topic"]).groupby("subject"):
        known = curriculum.subject(subject)
        ids = {t.id for t in known.topics} if known else set()
        seen: set[str] = set()
        for day, topics in group.groupby("date")["topic"]:
            seen.update(t for t in topics if t in ids)
            rows.append({"date": day, "subject": subject, "covered": len(seen), "total": len(ids)})
    coverage = pd.DataFrame(rows, columns=["date", "subject", "covered", "total"])
    coverage["share"] = _share(coverage["covered"].to_numpy(float), coverage["total"].to_numpy(float))
    ratings = one.dropna(subset=["satisfaction"])
    ratings = pd.DataFrame(
        {"date": ratings["started"].to_numpy(), "rating": ratings["satisfaction"].astype(int).to_numpy()}
    )
    return {"student": person, "weekly": weekly, "coverage": coverage, "ratings": ratings}


def retention_frame(
    f: Filters, today: date | None = None, tz: ZoneInfo | None = None, store: DayStore | None = None
) -> pd.DataFrame:
    """Weekly retention by the week students started: cohort, offset, students, cohort_size, share.

    A student's cohort is the week (Monday) of their first session ever in the filtered
    subjects and grades; cohorts from the range's first week on are shown, with the share of
    each cohort active (a session) in each of its weeks up to the range's end.
    """
    tz = tz or analytics_tz()
    today = today or analytics_today(tz)
    store = store or STORE
    columns = ["cohort", "offset", "students", "cohort_size", "share"]
    with _reader() as cur:
        rows = _range_students(cur, f, today, tz, store)
        if not len(rows):
            return pd.DataFrame(columns=columns)
        days = rows["day"].to_numpy(np.int64)
        # Monday of each day's week (1970-01-01 was a Thursday)
        rows = pd.DataFrame({"student_id": rows["student_id"].to_numpy(np.int64), "week": days - (days + 3) % 7})
        activity = rows.drop_duplicates()
        params: dict[str, Any] = {"ids": activity["student_id"].unique().tolist(), "tz": tz.key}
        filters = _raw_filters(f, params)
        first = _frame(
            cur,
            f"""SELECT a.id AS student_id, ((f.first AT TIME ZONE %(tz)s)::date - DATE '1970-01-01') AS first_day
                FROM unnest(%(ids)s::int[]) AS a(id)
                JOIN users u ON u.id = a.id
                CROSS JOIN LATERAL (SELECT min(s.created_at) AS first FROM sessions s
                                    WHERE s.student_id = a.id AND {NOT_EMPTY}{filters}) f""",
            params,
        )
    first_days = first["first_day"].to_numpy(np.int64)
    first = pd.DataFrame({"student_id": first["student_id"], "cohort": first_days - (first_days + 3) % 7})
    start = (f.start - _EPOCH).days
    first = first[first["cohort"] >= start - (start + 3) % 7]
    joined = activity.merge(first, on="student_id")
    joined = joined[joined["week"] >= joined["cohort"]]
    if not len(joined):
        return pd.DataFrame(columns=columns)
    joined["offset"] = (joined["week"] - joined["cohort"]) // 7
    counts = joined.groupby(["cohort", "offset"])["student_id"].nunique()
    sizes = first.groupby("cohort")["student_id"].nunique()
    # every week of each cohort up to the range's end, with 0 for weeks nobody came back
    end = (f.end - _EPOCH).days
    last_week = end - (end + 3) % 7
    grid = [(c, o) for c in sizes.index.tolist() for o in range((last_week - c) // 7 + 1)]
    out = pd.DataFrame(grid, columns=["cohort", "offset"])
    out["students"] = counts.reindex(pd.MultiIndex.from_frame(out), fill_value=0).to_numpy(np.int64)
    out["cohort_size"] = sizes.reindex(out["cohort"]).to_numpy(np.int64)
    out["share"] = out["students"] / out["cohort_size"]
    out["cohort"] = [_EPOCH + timedelta(days=int(c)) for c in out["cohort"]]
    return out.sort_values(["cohort", "offset"], ignore_index=True)[columns]


def grade_levels(students: tuple[int, ...] | None = None) -> list[int]:
    """The grade levels students have (for the grade filter); only ``students``' when given."""
    only = " AND id = ANY(%(s)s::int[])" if students is not None else ""
    with _reader() as cur:
        cur.execute(
            f"SELECT DISTINCT grade_level FROM users WHERE role = 'student' AND grade_level IS NOT NULL{only} ORDER BY 1",
            {"s": list(students or ())},
        )
        return [int(r[0]) for r in cur.fetchall()]
