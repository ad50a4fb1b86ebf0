"""Realistic demo data, written straight into the tables with PostgreSQL ``COPY``.

``seed_demo`` generates students, tutoring sessions, their topics and their messages with
numpy (column at a time, no per-row Python code), turns each batch into CSV bytes with
vectorised byte arithmetic and streams it to PostgreSQL with ``COPY ... FROM STDIN``. A worker
thread builds the next batch while the current one is being copied, so generation mostly hides
behind the database's own work. Everything happens in one transaction: an error or Ctrl-C
leaves the database exactly as it was.

The data has the shapes the analytics are meant to show: fewer sessions at weekends, afternoon
and evening peaks (UTC), mathematics the most popular subject, a few popular topics per subject
with a long tail, lognormal durations and AI latencies, mostly positive ratings with many
sessions unrated, the odd failed AI reply, a handful of sessions still active right now, and
graded attempts whose answers follow learning curves (students who improve, plateau or stop),
so mastery tells a story (run the refit, ``analytics.knowledge.refit``, to compute it).
The same ``seed`` and ``end`` give the same rows (apart from sessions on the current day,
which are placed before the moment of seeding).
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np

__all__ = [
    "DEMO_EMAIL_DOMAIN",
    "DEMO_STUDENT_EMAIL_RE",
    "SUBJECTS",
    "SUBJECT_TOPICS",
    "DemoSeedError",
    "SeedResult",
    "demo_email",
    "seed_demo",
]

DEMO_EMAIL_DOMAIN = "demo.aitutor.local"
#: PostgreSQL regex for the demo students' e-mails (not the demo admin's, same domain).
DEMO_STUDENT_EMAIL_RE = r"^student[0-9]+@demo\.aitutor\.local$"
SESSIONS_PER_STUDENT_DAY = 0.3
BATCH_SESSIONS = 50_000
# Bytes handed to libpq per call. psycopg2 sends each chunk with the GIL released, so large
# chunks keep PostgreSQL fed while the worker thread holds the GIL building the next batch.
COPY_CHUNK = 16 << 20
PROVIDER = "builtin"
MODEL = "builtin-tutor"
MAX_TOKENS = 800  # AI_MAX_TOKENS's default: a reply that reaches it is cut short

SUBJECTS: tuple[str, ...] = ("mathematics", "science", "english")
SUBJECT_SHARE: tuple[float, ...] = (0.5, 0.3, 0.2)

#: Topic ids per subject, most popular first (popularity falls off like a Zipf law). They are
#: the curriculum's topic ids (tutor/curriculum/subjects/*.toml), the values the topic matcher
#: stores in ``session_topics``; tests/devtools/test_demo.py checks that the two agree.
SUBJECT_TOPICS: dict[str, list[str]] = {
    "mathematics": [
        "fractions",
        "linear equations",
        "percentages",
        "arithmetic",
        "ratios and rates",
        "area and perimeter",
        "pythagorean theorem",
        "expanding brackets",
        "averages",
    ],
    "science": [
        "photosynthesis",
        "forces and motion",
        "cells",
        "chemical reactions",
        "electric circuits",
        "energy",
        "states of matter",
        "ecosystems",
        "the water cycle",
        "light",
        "earth and space",
    ],
    "english": [
        "essay structure",
        "reading comprehension",
        "punctuation",
        "figurative language",
        "sentence structure",
        "parts of speech",
        "tenses",
        "spelling",
        "subject-verb agreement",
        "homophones",
    ],
}
TOPIC_ZIPF_EXPONENT = 1.1

# -- shapes -------------------------------------------------------------------------------------

WEEKDAY_FACTOR = np.array([1.0, 1.04, 1.0, 0.95, 0.78, 0.42, 0.55])  # Monday .. Sunday
WEEKDAY_HOURS = np.array(
    [0.12, 0.06, 0.04, 0.03, 0.04, 0.08, 0.2, 0.4, 0.45, 0.42, 0.42, 0.48]
    + [0.58, 0.62, 0.8, 1.2, 1.5, 1.4, 1.2, 1.3, 1.35, 1.0, 0.6, 0.28]
)
WEEKEND_HOURS = np.array(
    [0.15, 0.08, 0.05, 0.03, 0.03, 0.05, 0.1, 0.2, 0.4, 0.7, 0.95, 1.05]
    + [1.0, 1.0, 1.05, 1.1, 1.15, 1.1, 1.0, 1.05, 1.0, 0.75, 0.45, 0.25]
)
ABANDONED_SHARE = 0.10
FAILED_REPLY_SHARE = 0.005
# The guardrail's verdict (messages.answer_revealed) exists when the student brought a problem
# it can solve: here, most finished mathematics replies; a few of those give the answer away.
CHECKED_MATH_REPLY_SHARE = 0.7
ANSWER_REVEALED_SHARE = 0.06
RATING_P = {"ended": [0.04, 0.06, 0.15, 0.35, 0.40], "abandoned": [0.25, 0.25, 0.25, 0.15, 0.10]}
UNRATED_SHARE = {"ended": 0.35, "abandoned": 0.85}

# -- text pools ---------------------------------------------------------------------------------

FIRST_NAMES = [
    "Aisha",
    "Alex",
    "Amara",
    "Ana",
    "Ben",
    "Carlos",
    "Chloe",
    "Daniel",
    "Dev",
    "Elena",
    "Ella",
    "Ethan",
    "Fatima",
    "Finn",
    "Grace",
    "Hana",
    "Harper",
    "Isaac",
    "Isla",
    "Jack",
    "Jamal",
    "Jin",
    "Kai",
    "Layla",
    "Leo",
    "Liam",
    "Lucia",
    "Maya",
    "Mateo",
    "Mia",
    "Mohammed",
    "Nia",
    "Noah",
    "Olivia",
    "Omar",
    "Priya",
    "Rafael",
    "Riya",
    "Ruby",
    "Sam",
    "Sara",
    "Sofia",
    "Tariq",
    "Theo",
    "Uma",
    "Victor",
    "Wei",
    "Yara",
    "Yusuf",
    "Zara",
    "Zoe",
]
LAST_NAMES = [
    "Adams",
    "Ahmed",
    "Alvarez",
    "Bailey",
    "Brown",
    "Chen",
    "Clarke",
    "Cohen",
    "Costa",
    "Davies",
    "Diaz",
    "Evans",
    "Fischer",
    "Garcia",
    "Gupta",
    "Hall",
    "Hughes",
    "Ito",
    "Jackson",
    "Johnson",
    "Kaur",
    "Khan",
    "Kim",
    "Kowalski",
    "Lee",
    "Lopez",
    "Martin",
    "Moreno",
    "Murphy",
    "Nguyen",
    "Novak",
    "Okafor",
    "Patel",
    "Petrov",
    "Quinn",
    "Reyes",
    "Rossi",
    "Santos",
    "Schmidt",
    "Silva",
    "Singh",
    "Smith",
    "Tanaka",
    "Taylor",
    "Thomas",
    "Walker",
    "Wang",
    "Williams",
    "Wilson",
    "Wright",
    "Yilmaz",
    "Young",
]

OPENERS = (
    "Can you help me with {t}?",
    "I don't get {t} at all.",
    "We're doing {t} in class and I'm stuck.",
    "Can you explain {t} simply?",
    "I have a test on {t} tomorrow, can we practise?",
    "My homework is on {t}. Where do I start?",
)
OPENER_REPLIES = (
    "Of course! What do you already know about {t}?",
    "Sure. Let's start with a simple {t} example and build up from there.",
    "No problem, {t} is easier than it looks. Let's go step by step.",
    "Happy to help with {t}. Can you show me a question you're working on?",
)
#: (topic, student question, tutor answer) per subject; other turns use the generic lines.
SUBJECT_QA: dict[str, tuple[tuple[str, str, str], ...]] = {
    "mathematics": (
        ("fractions", "How do I simplify 12/18?", "Find a common factor: 12 and 18 both divide by 6, so 12/18 = 2/3."),
        (
            "fractions",
            "Why do you flip the second fraction when you divide?",
            "Dividing by a fraction is multiplying by its reciprocal: 1/2 ÷ 1/4 = 1/2 × 4 = 2.",
        ),
        ("fractions", "How do I turn 0.375 into a fraction?", "0.375 is 375/1000; divide top and bottom by 125: 3/8."),
        (
            "linear equations",
            "Is x = 5 right for 3x + 5 = 20?",
            "Check it: 3 × 5 + 5 = 20. Yes! You undid the +5, then the ×3.",
        ),
        (
            "linear equations",
            "I got x = -7 for 2x + 9 = -5, is that right?",
            "Substitute it back: 2 × (-7) + 9 = -5. Both sides match, so yes.",
        ),
        ("percentages", "What's 15% of 80?", "10% of 80 is 8 and 5% is 4, so 15% is 8 + 4 = 12."),
        (
            "percentages",
            "How do I increase 60 by 20%?",
            "Multiply by 1.2: 60 × 1.2 = 72. Or find 20% (12) and add it on.",
        ),
        ("arithmetic", "What's 7 × 8 again?", "56. A handy trick: 5, 6, 7, 8 → 56 = 7 × 8."),
        (
            "ratios and rates",
            "What does a ratio of 3:2 actually mean?",
            "For every 3 of the first thing there are 2 of the second, so 5 parts in total.",
        ),
        (
            "area and perimeter",
            "Do I add or multiply to get the area?",
            "Area is length × width; perimeter adds up all the sides. Which one does the question ask for?",
        ),
        (
            "pythagorean theorem",
            "Is the hypotenuse always the longest side?",
            "Yes: it's opposite the right angle, and a² + b² = c² with c the hypotenuse.",
        ),
        (
            "expanding brackets",
            "How do I expand 3(x + 4)?",
            "Multiply the 3 by each term inside the brackets: 3 × x + 3 × 4 = 3x + 12.",
        ),
        (
            "averages",
            "How do I find the mean of 4, 7 and 10?",
            "Add them up (21) and divide by how many there are (3): the mean is 7.",
        ),
    ),
    "science": (
        (
            "photosynthesis",
            "Why do plants need light?",
            "Light is the energy source for photosynthesis: carbon dioxide + water → glucose + oxygen.",
        ),
        (
            "photosynthesis",
            "Where does the oxygen from plants come from?",
            "From splitting water molecules during photosynthesis; the carbon ends up in glucose.",
        ),
        (
            "forces and motion",
            "What's the difference between mass and weight?",
            "Mass is how much matter there is (kg); weight is the force of gravity on it (N).",
        ),
        (
            "cells",
            "Is a virus a cell?",
            "No. A virus has no cell membrane or cytoplasm and only reproduces inside cells.",
        ),
        ("chemical reactions", "What does a catalyst do?", "A catalyst speeds up a reaction without being used up."),
        (
            "chemical reactions",
            "What does an acid do to litmus paper?",
            "Acids turn blue litmus red; alkalis turn red litmus blue.",
        ),
        (
            "electric circuits",
            "Why does current split in a parallel circuit?",
            "Each branch is a separate path, so the current divides between them.",
        ),
        (
            "energy",
            "Where does the energy in food come from?",
            "Ultimately from the Sun: plants store it in glucose and animals eat the plants.",
        ),
        (
            "states of matter",
            "Is melting a chemical change?",
            "No, it's physical: the particles stay the same, only their arrangement changes.",
        ),
        (
            "ecosystems",
            "What does a food chain show?",
            "Who eats whom: energy passes from producers (plants) to the consumers that eat them.",
        ),
        (
            "the water cycle",
            "What makes it rain?",
            "Water vapour cools as it rises, condenses into cloud droplets, and falls once they get heavy.",
        ),
    ),
    "english": (
        (
            "essay structure",
            "How do I start my introduction?",
            "Start with a hook, give a little context, then state your argument clearly.",
        ),
        (
            "essay structure",
            "How long should a paragraph be?",
            "Long enough for one idea: Point, Evidence, Explain is usually 4 to 6 sentences.",
        ),
        (
            "reading comprehension",
            "What is the main idea of this passage?",
            "Read the first and last paragraphs again: what do they both keep coming back to?",
        ),
        (
            "reading comprehension",
            "How do I quote the text properly?",
            "Keep quotations short, put them in quotation marks and weave them into your own sentence.",
        ),
        (
            "punctuation",
            "When do I use a semicolon?",
            "A semicolon joins two complete sentences that are closely related.",
        ),
        (
            "figurative language",
            "What's the difference between a simile and a metaphor?",
            "A simile compares using 'like' or 'as'; a metaphor says one thing is another.",
        ),
        (
            "sentence structure",
            "Is this a run-on sentence?",
            "If two full sentences are joined with only a comma, yes. Try a full stop.",
        ),
        ("parts of speech", "Is 'quickly' an adjective?", "No, it's an adverb: it describes how something is done."),
        (
            "tenses",
            "Is it 'I have went' or 'I have gone'?",
            "'I have gone': the present perfect uses the past participle.",
        ),
        ("spelling", "How do I remember how to spell 'necessary'?", "One collar, two sleeves: one c and two s's."),
        (
            "subject-verb agreement",
            "Is it 'the list of names is' or 'are'?",
            "'Is': the subject is 'list', which is singular.",
        ),
    ),
}
STUDENT_GENERIC = (
    "Can you give me another example?",
    "Oh, that makes sense now.",
    "Wait, why does that work?",
    "Can you check my working?",
    "I'm still a bit confused.",
    "Can you explain that step again?",
    "OK, let me try the next one.",
    "Thanks, that helped!",
    "Is there a quicker way?",
    "What would a harder question look like?",
)
TUTOR_GENERIC = (
    "Great question! Let's break it down step by step.",
    "You're close. Have another look at the second step.",
    "Exactly right, well done!",
    "Here's a similar example to try on your own.",
    "Let's check your answer together.",
    "Good effort. What do you think the next step is?",
    "That's a common mistake, so don't worry. Let's see why it happens.",
    "Try explaining it back to me in your own words.",
)
SUBJECT_QUESTION_SHARE = 0.6  # of later student turns, when the topic has questions
ERRORS = (
    "AI provider did not answer within 60 s (3 attempts)",
    "AI provider error: 503 Service Unavailable (3 attempts)",
    "AI provider error: connection reset by peer (3 attempts)",
)

MS_PER_DAY = 86_400_000
MS_PER_HOUR = 3_600_000


class DemoSeedError(RuntimeError):
    """The demo data cannot be written (the message says why and what to do)."""


@dataclass(frozen=True)
class SeedResult:
    users: int
    sessions: int
    messages: int
    topics: int
    seconds: float
    attempts: int = 0

    @property
    def rows(self) -> int:
        return self.users + self.sessions + self.messages + self.topics + self.attempts

    def summary(self) -> str:
        rate = self.sessions / self.seconds if self.seconds > 0 else 0.0
        return (
            f"seeded {self.users:,} students, {self.sessions:,} sessions, {self.messages:,} messages, "
            f"{self.topics:,} topic rows, {self.attempts:,} graded attempts in {self.seconds:.1f} s "
            f"({rate:,.0f} sessions/s)"
        )


def demo_email(number: int, students: int | None = None) -> str:
    """The e-mail of demo student ``number`` (1-based), e.g. ``student00001@demo.aitutor.local``."""
    width = max(5, len(str(students or number)))
    return f"student{number:0{width}d}@{DEMO_EMAIL_DOMAIN}"


# -- CSV encoding -------------------------------------------------------------------------------
#
# A field is a uint8 matrix (one row per record, fixed width, or one row broadcast to all) plus
# a mask of the bytes that belong to the value. ``_csv`` lays the fields side by side with
# separators and keeps the masked bytes, which is the CSV text.


@dataclass
class _Field:
    mat: np.ndarray  # (n, w) or (1, w) uint8
    mask: np.ndarray | None  # (n, w) bool; None: every byte

    @property
    def width(self) -> int:
        return self.mat.shape[1]


def _csv_quote(text: str) -> bytes:
    return ('"' + text.replace('"', '""') + '"').encode()


def _bytes_field(values: np.ndarray, null: np.ndarray | None = None) -> _Field:
    """From a numpy ``S`` array (no NUL bytes inside values)."""
    values = np.ascontiguousarray(values)
    width = max(values.dtype.itemsize, 1)
    mat = (
        values.view(np.uint8).reshape(len(values), width)
        if values.dtype.itemsize
        else np.zeros((len(values), 1), np.uint8)
    )
    mask = mat != 0
    if null is not None:
        mask &= ~null[:, None]
    return _Field(mat, mask)


def _pool(pool: np.ndarray, idx: np.ndarray, null: np.ndarray | None = None) -> _Field:
    return _bytes_field(pool[idx], null)


def _const(value: str | bytes) -> _Field:
    raw = value.encode() if isinstance(value, str) else value
    return _Field(np.frombuffer(raw, np.uint8).reshape(1, -1), None)


def _digits(values: np.ndarray, width: int) -> np.ndarray:
    """Zero-padded decimal digits of non-negative ints as an (n, width) uint8 matrix."""
    out = np.empty((len(values), width), np.uint8)
    v = values.astype(np.int64)
    for col in range(width - 1, -1, -1):
        out[:, col] = 48 + v % 10
        v = v // 10
    return out


def _int_field(values: np.ndarray, null: np.ndarray | None = None) -> _Field:
    values = values.astype(np.int64)
    if len(values) and values.min() < 0:
        return _bytes_field(values.astype("S21"), null)
    top = int(values.max()) if len(values) else 0
    width = len(str(top))
    mat = _digits(values, width)
    # leading zeros are not part of the value (but the last digit always is)
    ndig = np.ones(len(values), np.int64)
    for k in range(1, width):
        ndig += values >= 10**k
    mask = np.arange(width)[None, :] >= (width - ndig)[:, None]
    if null is not None:
        mask &= ~null[:, None]
    return _Field(mat, mask)


def _ts_field(ms: np.ndarray, null: np.ndarray | None = None) -> _Field:
    """Epoch milliseconds (UTC) as ``YYYY-MM-DD HH:MM:SS.mmm+00``."""
    ms = ms.astype(np.int64)
    n = len(ms)
    mat = np.empty((n, 26), np.uint8)
    if n:
        day = ms // MS_PER_DAY
        lo = int(day.min()) if null is None or null.all() else int(day[~null].min())
        hi = int(day.max()) if null is None or null.all() else int(day[~null].max())
        day = np.clip(day, lo, hi)
        table = np.datetime_as_string(np.arange(lo, hi + 1).astype("datetime64[D]")).astype("S10")
        mat[:, :10] = table.view(np.uint8).reshape(-1, 10)[day - lo]
        rest = ms - day * MS_PER_DAY
        mat[:, 10] = ord(" ")
        mat[:, 11:13] = _digits(rest // MS_PER_HOUR, 2)
        mat[:, 13] = ord(":")
        mat[:, 14:16] = _digits(rest // 60_000 % 60, 2)
        mat[:, 16] = ord(":")
        mat[:, 17:19] = _digits(rest // 1000 % 60, 2)
        mat[:, 19] = ord(".")
        mat[:, 20:23] = _digits(rest % 1000, 3)
        mat[:, 23:26] = np.frombuffer(b"+00", np.uint8)
    mask = None if null is None else np.repeat(~null[:, None], 26, axis=1)
    return _Field(mat, mask)


def _csv(fields: Sequence[_Field], n: int) -> bytes:
    if n == 0:
        return b""
    total = sum(f.width for f in fields) + len(fields)
    mat = np.empty((n, total), np.uint8)
    mask = np.ones((n, total), bool)
    col = 0
    for i, f in enumerate(fields):
        w = f.width
        mat[:, col : col + w] = f.mat
        if f.mask is not None:
            mask[:, col : col + w] = f.mask
        col += w
        mat[:, col] = ord("\n") if i == len(fields) - 1 else ord(",")
        col += 1
    return mat.ravel()[mask.ravel()].tobytes()


def _uuid_text(raw: np.ndarray) -> np.ndarray:
    """(n, 16) uint8 -> canonical UUID strings as an ``S36`` array."""
    hexchars = np.frombuffer(b"0123456789abcdef", np.uint8)
    hexed = np.empty((len(raw), 32), np.uint8)
    hexed[:, 0::2] = hexchars[raw >> 4]
    hexed[:, 1::2] = hexchars[raw & 0x0F]
    out = np.full((len(raw), 36), ord("-"), np.uint8)
    for src, dst, length in ((0, 0, 8), (8, 9, 4), (12, 14, 4), (16, 19, 4), (20, 24, 12)):
        out[:, dst : dst + length] = hexed[:, src : src + length]
    return out.view("S36").ravel()


def _session_ids(rng: np.random.Generator, created_ms: np.ndarray) -> np.ndarray:
    """Random session ids; time-ordered (UUIDv7: creation ms, then 74 random bits) by default.

    Time-ordered ids keep the inserts into the primary key and the ``session_id`` indexes of
    ``session_topics`` and ``messages`` near the right-hand edge of each B-tree instead of all
    over it; for the app they are ordinary UUIDs.
    """
    raw = rng.integers(0, 256, size=(len(created_ms), 16), dtype=np.uint8)
    if _UUID_VERSION == 7:
        raw[:, :6] = (created_ms[:, None] >> np.arange(40, -1, -8)) & 0xFF
        raw[:, 6] = (raw[:, 6] & 0x0F) | 0x70
    else:
        raw[:, 6] = (raw[:, 6] & 0x0F) | 0x40
    raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80
    return _uuid_text(raw)


_UUID_VERSION = 7  # 4 for fully random ids (measured in docs/PERFORMANCE.md)


# -- generation ---------------------------------------------------------------------------------


@dataclass
class _Plan:
    """Session-level facts decided up front for all sessions, in created_at order."""

    created: np.ndarray  # epoch ms
    student: np.ndarray  # 0-based index into the students
    subject: np.ndarray  # index into SUBJECTS
    status: np.ndarray  # 0 ended, 1 abandoned, 2 active
    cutoff: int  # epoch ms; nothing is later than this


@dataclass
class _Batch:
    sessions: bytes
    topics: bytes
    messages: bytes
    n_sessions: int
    n_topics: int
    n_messages: int
    attempted: _Attempted | None = None


def _epoch_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _lognormal(rng: np.random.Generator, median: float, sigma: float, size: int) -> np.ndarray:
    return rng.lognormal(np.log(median), sigma, size)


def _users(rng: np.random.Generator, students: int, start_ms: int, cutoff: int) -> tuple[np.ndarray, ...]:
    """Signup times (sorted), grade levels, name indices and activity weights of the students."""
    latest = max(start_ms, cutoff - MS_PER_DAY)
    before = rng.random(students) < 0.6
    signup = np.where(
        before,
        start_ms - rng.integers(1, 90 * MS_PER_DAY, students),
        start_ms + (rng.random(students) * (latest - start_ms)).astype(np.int64),
    )
    signup[0] = start_ms - 90 * MS_PER_DAY - rng.integers(0, MS_PER_DAY)  # someone is always there
    signup.sort()
    grade = rng.integers(5, 13, students)
    name = rng.integers(0, len(FIRST_NAMES) * len(LAST_NAMES), students)
    activity = _lognormal(rng, 1.0, 0.9, students)
    favourite = rng.choice(len(SUBJECTS), size=students, p=SUBJECT_SHARE)
    return signup, grade, name, activity, favourite


def _plan(
    rng: np.random.Generator,
    n: int,
    start_day: date,
    days: int,
    cutoff: int,
    signup: np.ndarray,
    activity: np.ndarray,
    favourite: np.ndarray,
) -> _Plan:
    day_ord = np.arange(days)
    first_ms = _epoch_ms(datetime(start_day.year, start_day.month, start_day.day, tzinfo=UTC))
    weekday = (start_day.weekday() + day_ord) % 7
    growth = np.linspace(0.75, 1.0, days)
    day_w = WEEKDAY_FACTOR[weekday] * growth * _lognormal(rng, 1.0, 0.08, days)
    hours = np.where((weekday >= 5)[:, None], WEEKEND_HOURS[None, :], WEEKDAY_HOURS[None, :])
    cell_start = first_ms + day_ord[:, None] * MS_PER_DAY + np.arange(24)[None, :] * MS_PER_HOUR
    cell_len = np.clip(cutoff - cell_start, 0, MS_PER_HOUR)
    weights = (day_w[:, None] * hours * cell_len / MS_PER_HOUR).ravel()
    if weights.sum() <= 0:
        raise DemoSeedError("there is no time before 'now' in the requested history; try again in a second")
    cell = rng.choice(weights.size, size=n, p=weights / weights.sum())
    created = cell_start.ravel()[cell] + (rng.random(n) * cell_len.ravel()[cell]).astype(np.int64)
    created.sort()

    # Students who had signed up (12 h margin, as a few sessions move earlier later on), weighted
    # by how keen each one is.
    eligible = np.searchsorted(signup, created - 12 * MS_PER_HOUR, side="right")
    eligible = np.maximum(eligible, 1)
    cum = np.cumsum(activity)
    student = np.searchsorted(cum, rng.random(n) * cum[eligible - 1], side="right")
    student = np.minimum(student, eligible - 1)

    subject = np.where(rng.random(n) < 0.55, favourite[student], rng.choice(len(SUBJECTS), size=n, p=SUBJECT_SHARE))
    status = (rng.random(n) < ABANDONED_SHARE).astype(np.int8)
    n_active = min(max(3, n // 5000), 50, max(1, n // 10)) if n else 0
    if n_active:
        status[-n_active:] = 2
    return _Plan(created, student, subject, status, cutoff)


def _topic_pick(rng: np.random.Generator, subject: np.ndarray, k: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct topics per session, weighted by popularity (Gumbel top-k).

    Returns (session index, global topic index) pairs, the session's first pick first.
    """
    n = len(subject)
    sizes = [len(SUBJECT_TOPICS[s]) for s in SUBJECTS]
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    width = max(sizes)
    logw = np.full((len(SUBJECTS), width), -np.inf)
    for i, size in enumerate(sizes):
        logw[i, :size] = -TOPIC_ZIPF_EXPONENT * np.log(np.arange(1, size + 1))
    keys = logw[subject] + rng.gumbel(size=(n, width))
    order = np.argsort(-keys, axis=1)[:, :3]
    take = np.arange(3)[None, :] < k[:, None]
    rows = np.repeat(np.arange(n)[:, None], 3, axis=1)[take]
    topics = (order + offsets[subject][:, None])[take]
    return rows, topics


class _Pools:
    """CSV-ready text pools (``S`` arrays) and where each kind of text starts in them."""

    def __init__(self) -> None:
        self.topic_names = [t for s in SUBJECTS for t in SUBJECT_TOPICS[s]]
        self.n_topics = len(self.topic_names)
        self.topic_quoted = np.array([_csv_quote(t) for t in self.topic_names])
        self.topic_plain = np.array([t.encode() for t in self.topic_names])
        self.topic_subject = np.repeat(np.arange(len(SUBJECTS)), [len(SUBJECT_TOPICS[s]) for s in SUBJECTS])
        self.sources = np.array([b"problem", b"check", b"quiz"])
        self.graders = np.array([b"sympy", b"text"])
        index = {t: i for i, t in enumerate(self.topic_names)}
        qa = [(index[t], q, a) for s in SUBJECTS for t, q, a in SUBJECT_QA[s]]
        questions = [q for _, q, _ in qa]
        answers = [a for _, _, a in qa]
        # per topic: how many questions it has and which (padded table)
        per_topic: list[list[int]] = [[] for _ in self.topic_names]
        for i, (t, _, _) in enumerate(qa):
            per_topic[t].append(i)
        self.qa_count = np.array([len(x) for x in per_topic], np.int64)
        self.qa_table = np.zeros((self.n_topics, max(1, int(self.qa_count.max()))), np.int64)
        for t, x in enumerate(per_topic):
            self.qa_table[t, : len(x)] = x
        openers = [o.format(t=t) for o in OPENERS for t in self.topic_names]
        replies = [r.format(t=t) for r in OPENER_REPLIES for t in self.topic_names]
        texts = openers + questions + list(STUDENT_GENERIC) + replies + answers + list(TUTOR_GENERIC) + [""]
        self.student_question = len(openers)
        self.student_generic = self.student_question + len(questions)
        self.tutor_opener = self.student_generic + len(STUDENT_GENERIC)
        self.tutor_answer = self.tutor_opener + len(replies)
        self.tutor_generic = self.tutor_answer + len(answers)
        self.empty = len(texts) - 1  # a failed reply has no text
        self.texts = np.array([_csv_quote(t) for t in texts])
        self.errors = np.array([_csv_quote(e) for e in ERRORS])
        self.subjects = np.array([s.encode() for s in SUBJECTS])
        self.statuses = np.array([b"ended", b"abandoned", b"active"])
        self.roles = np.array([b"student", b"tutor"])
        self.msg_status = np.array([b"done", b"failed"])
        self.booleans = np.array([b"f", b"t"])
        self.names = np.array([_csv_quote(f"{a} {b}") for a in FIRST_NAMES for b in LAST_NAMES])


def _segment_cumsum(values: np.ndarray, starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    total = np.cumsum(values)
    before = np.repeat(total[starts] - values[starts], counts)
    return total - before


def _batch(plan: _Plan, lo: int, hi: int, seed: int, batch_no: int, user_ids: np.ndarray, pools: _Pools) -> _Batch:
    rng = np.random.default_rng([seed, 0x5EED, batch_no])
    n = hi - lo
    created = plan.created[lo:hi].copy()
    subject = plan.subject[lo:hi]
    status = plan.status[lo:hi]
    student = plan.student[lo:hi]
    ended, abandoned, active = status == 0, status == 1, status == 2
    # topics
    k = rng.choice([1, 2, 3], size=n, p=[0.5, 0.35, 0.15])
    t_rows, t_topics = _topic_pick(rng, subject, k)
    first_topic = t_topics[np.concatenate([[0], np.cumsum(k)[:-1]])] if n else np.zeros(0, np.int64)

    # message counts: student/tutor pairs; abandoned sessions sometimes end on an unanswered question
    lam = np.where(ended, 2.3, np.where(abandoned, 1.3, 1.0))
    count = 2 * (1 + np.minimum(rng.poisson(lam), 5))
    count -= (abandoned & (count >= 4) & (rng.random(n) < 0.35)).astype(count.dtype)
    m = int(count.sum())
    starts = np.concatenate([[0], np.cumsum(count)[:-1]]).astype(np.int64) if n else np.zeros(0, np.int64)
    sess = np.repeat(np.arange(n), count)
    pos = np.arange(m) - starts[sess]
    tutor = pos % 2 == 1

    # AI replies
    failed = tutor & (rng.random(m) < FAILED_REPLY_SHARE)
    done_reply = tutor & ~failed
    completion = np.clip(_lognormal(rng, 140, 0.55, m), 5, MAX_TOKENS).astype(np.int64)
    prompt = 380 + 105 * pos + rng.integers(0, 60, m)
    queued = _lognormal(rng, 550, 0.35, m)  # queue, history and the model's first token
    generation = completion * _lognormal(rng, 6.5, 0.25, m)
    latency = (queued + generation).astype(np.int64)
    failed_for = rng.integers(20_000, 90_000, m)  # three attempts with back-off
    reply_time = np.where(failed, failed_for, np.where(done_reply, latency, 0))

    # timeline (ms from the session's start): first question, queue pick-up, thinking between turns
    pace = _lognormal(rng, 1.0, 0.45, n)[sess]
    think = np.clip(_lognormal(rng, 200_000, 0.7, m) * pace, 4_000, 20 * 60_000).astype(np.int64)
    prev_reply = np.concatenate([[0], reply_time[:-1]])
    inc = np.where(
        pos == 0,
        rng.integers(3_000, 40_000, m),
        np.where(tutor, rng.integers(30, 400, m), prev_reply + think),
    )
    offset = _segment_cumsum(inc, starts, count)
    event_end = offset + reply_time
    last = starts + count - 1
    span = event_end[last] if n else np.zeros(0, np.int64)

    closing = rng.integers(5_000, 90_000, n)
    duration = np.where(ended, -(-(span + closing) // 1000), -(-span // 1000))
    # active sessions: the last reply came a little while ago; nothing ends in the future
    idle = rng.integers(30_000, 20 * 60_000, n)
    created = np.where(active, plan.cutoff - span - idle, created)
    overrun = ~active & (created + duration * 1000 > plan.cutoff)
    created = np.where(overrun, plan.cutoff - duration * 1000 - rng.integers(1_000, 60_000, n), created)
    ended_at = created + duration * 1000

    rating = (
        np.where(
            ended,
            rng.choice(5, size=n, p=RATING_P["ended"]),
            rng.choice(5, size=n, p=RATING_P["abandoned"]),
        )
        + 1
    )
    unrated = active | np.where(
        ended, rng.random(n) < UNRATED_SHARE["ended"], rng.random(n) < UNRATED_SHARE["abandoned"]
    )

    ids = _session_ids(rng, created)

    # message texts: an opener about the first topic, then subject questions or generic lines;
    # each reply answers the question before it
    topic_m = first_topic[sess]
    has_qa = pools.qa_count[topic_m] > 0
    kind = np.where(pos == 0, 0, np.where(has_qa & (rng.random(m) < SUBJECT_QUESTION_SHARE), 1, 2))
    question = pools.qa_table[topic_m, (rng.random(m) * pools.qa_count[topic_m]).astype(np.int64)]
    student_text = np.select(
        [kind == 0, kind == 1],
        [rng.integers(0, len(OPENERS), m) * pools.n_topics + topic_m, pools.student_question + question],
        pools.student_generic + rng.integers(0, len(STUDENT_GENERIC), m),
    )
    asked = np.concatenate([[0], kind[:-1]])  # the student message before a reply (same session)
    asked_q = np.concatenate([[0], question[:-1]])
    tutor_text = np.select(
        [failed, asked == 0, asked == 1],
        [
            pools.empty,
            pools.tutor_opener + rng.integers(0, len(OPENER_REPLIES), m) * pools.n_topics + topic_m,
            pools.tutor_answer + asked_q,
        ],
        pools.tutor_generic + rng.integers(0, len(TUTOR_GENERIC), m),
    )
    text_idx = np.where(tutor, tutor_text, student_text)
    error_idx = rng.integers(0, len(ERRORS), m)
    checked = done_reply & (subject[sess] == SUBJECTS.index("mathematics")) & (rng.random(m) < CHECKED_MATH_REPLY_SHARE)
    revealed = rng.random(m) < ANSWER_REVEALED_SHARE
    msg_created = created[sess] + offset

    # Rows go out in time order, as the live app would have written them: sessions by start,
    # their topics with them, messages by creation time (so message ids follow time too).
    s_ord = np.argsort(created, kind="stable")
    rank = np.empty(n, np.int64)
    rank[s_ord] = np.arange(n)
    t_ord = np.argsort(rank[t_rows], kind="stable")
    m_ord = np.argsort(msg_created, kind="stable")

    def s_(a: np.ndarray) -> np.ndarray:
        return a[s_ord]

    sessions_csv = _csv(
        [
            _bytes_field(s_(ids)),
            _int_field(s_(user_ids[student])),
            _pool(pools.subjects, s_(subject)),
            _ts_field(s_(created)),
            _ts_field(s_(ended_at), null=s_(active)),
            _int_field(s_(duration), null=s_(active)),
            _pool(pools.statuses, s_(status)),
            _int_field(s_(rating), null=s_(unrated)),
        ],
        n,
    )
    topics_csv = _csv([_bytes_field(ids[t_rows[t_ord]]), _pool(pools.topic_quoted, t_topics[t_ord])], len(t_rows))

    sess, tutor, failed, done_reply = sess[m_ord], tutor[m_ord], failed[m_ord], done_reply[m_ord]
    msg_created, reply_time, not_done = msg_created[m_ord], reply_time[m_ord], ~done_reply
    messages_csv = _csv(
        [
            _bytes_field(ids[sess]),
            _pool(pools.roles, tutor.astype(np.int8)),
            _pool(pools.texts, text_idx[m_ord]),
            _pool(pools.msg_status, failed.astype(np.int8)),
            _ts_field(msg_created),
            _ts_field(msg_created + reply_time, null=~tutor),
            _int_field(latency[m_ord], null=not_done),
            _int_field(prompt[m_ord], null=not_done),
            _int_field(completion[m_ord], null=not_done),
            _int_field(generation[m_ord].astype(np.int64), null=not_done),
            _pool(pools.booleans, (done_reply & (completion == MAX_TOKENS))[m_ord].astype(np.int8)),
            _bytes_field(np.where(tutor, PROVIDER.encode(), b"")),
            _bytes_field(np.where(tutor, MODEL.encode(), b"")),
            _int_field(np.where(failed, 3, np.where(tutor, 1, 0))),
            _pool(pools.errors, error_idx[m_ord], null=~failed),
            _pool(pools.booleans, revealed[m_ord].astype(np.int8), null=~checked[m_ord]),
        ],
        m,
    )
    end_ms = np.where(active, plan.cutoff, ended_at)
    attempted = _Attempted(ids[t_rows], student[t_rows], t_topics, created[t_rows], end_ms[t_rows])
    return _Batch(sessions_csv, topics_csv, messages_csv, n, len(t_rows), m, attempted)


# -- writing ------------------------------------------------------------------------------------

USER_COLUMNS = "email, password_hash, role, display_name, grade_level, created_at"
SESSION_COLUMNS = "id, student_id, subject, created_at, ended_at, duration_seconds, status, satisfaction"
TOPIC_COLUMNS = "session_id, topic"
MESSAGE_COLUMNS = (
    "session_id, role, content, status, created_at, completed_at, latency_ms, prompt_tokens, "
    "completion_tokens, generation_ms, cut_short, provider, model, attempts, error, answer_revealed"
)


ATTEMPT_COLUMNS = (
    "student_id, session_id, subject, topic, item, correct, hints_seen, source, graded_by, provider, created_at"
)
# Graded attempts: most session topics get one to three, numbered per student and topic in time
# order (k). Whether an answer is right follows the student's learning curve: "improvers" climb
# from their starting ability towards 92 % right, "plateaus" gain a little and stay there,
# "stoppers" do not improve and stop answering after four attempts on a topic.
ATTEMPTED_SHARE = 0.6  # session topics with graded answers
PROFILE_SHARE = (0.55, 0.30, 0.15)  # improve, plateau, stop
STOP_AFTER = 4


@dataclass
class _Attempted:
    """Per session topic, what the attempts are generated from once every batch is known."""

    session_id: np.ndarray  # S36
    student: np.ndarray
    topic: np.ndarray  # global topic index
    start: np.ndarray  # epoch ms: the session's start
    end: np.ndarray  # epoch ms: nothing later (the session's end, or the cutoff)


def _attempts_csv(
    parts: list[_Attempted], seed: int, students: int, user_ids: np.ndarray, pools: _Pools
) -> tuple[bytes, int]:
    if not parts:
        return b"", 0
    src = _Attempted(*(np.concatenate([getattr(p, f) for p in parts]) for f in _Attempted.__dataclass_fields__))
    rng = np.random.default_rng([seed, 0xA77E])
    profile = rng.choice(3, size=students, p=PROFILE_SHARE)
    ability = 0.15 + 0.3 * rng.random(students)
    chosen = np.flatnonzero(rng.random(len(src.student)) < ATTEMPTED_SHARE)
    count = rng.integers(1, 4, len(chosen))
    row = np.repeat(chosen, count)
    g = np.arange(len(row)) - np.repeat(np.cumsum(count) - count, count) + 1
    at = np.minimum(src.start[row] + (60 + 150 * g) * 1000, src.end[row])
    student, topic = src.student[row], src.topic[row]
    order = np.lexsort((g, at, topic, student))
    row, g, at, student, topic = row[order], g[order], at[order], student[order], topic[order]
    new_group = np.r_[True, (student[1:] != student[:-1]) | (topic[1:] != topic[:-1])]
    group_start = np.flatnonzero(new_group)
    k = np.arange(len(row)) - np.repeat(group_start, np.diff(np.r_[group_start, len(row)])) + 1
    keep = (profile[student] != 2) | (k <= STOP_AFTER)
    row, at, student, topic, k = row[keep], at[keep], student[keep], topic[keep], k[keep]
    a, p = ability[student], profile[student]
    right = np.select(
        [p == 0, p == 1],
        [a + (0.92 - a) * (1 - np.exp(-(k - 1) / 3.0)), a + 0.25 * (1 - np.exp(-(k - 1) / 2.0))],
        a,
    )
    correct = rng.random(len(k)) < right
    maths = pools.topic_subject[topic] == SUBJECTS.index("mathematics")
    u = rng.random(len(k))
    source = np.where(maths & (u < 0.5), 0, np.where(u < 0.8, 1, 2))
    hints = np.where(source == 0, np.floor(rng.random(len(k)) * 3 * np.exp(-k / 4.0)), 0).astype(np.int64)
    n = len(k)
    item = _csv_join_inline(
        [_const('"Demo question '), _int_field(k), _const(" on "), _pool(pools.topic_plain, topic), _const('"')], n
    )
    data = _csv(
        [
            _int_field(user_ids[student]),
            _bytes_field(src.session_id[row]),
            _pool(pools.subjects, pools.topic_subject[topic]),
            _pool(pools.topic_quoted, topic),
            item,
            _pool(pools.booleans, correct.astype(np.int8)),
            _int_field(hints),
            _pool(pools.sources, source),
            _pool(pools.graders, (~maths).astype(np.int8)),
            _const(PROVIDER),
            _ts_field(at),
        ],
        n,
    )
    return data, n


def _copy(cursor: Any, table: str, columns: str, data: bytes) -> None:
    if data:
        cursor.copy_expert(f"COPY {table} ({columns}) FROM STDIN WITH (FORMAT csv)", io.BytesIO(data), size=COPY_CHUNK)


def _users_csv(students: int, signup: np.ndarray, grade: np.ndarray, name: np.ndarray, pools: _Pools) -> bytes:
    width = max(5, len(str(students)))
    number = _Field(_digits(np.arange(1, students + 1), width), None)
    email = _csv_join_inline([_const("student"), number, _const(f"@{DEMO_EMAIL_DOMAIN}")], students)
    return _csv(
        [
            email,
            _Field(np.zeros((1, 1), np.uint8), np.zeros((students, 1), bool)),  # password_hash: NULL
            _const("student"),
            _pool(pools.names, name),
            _int_field(grade),
            _ts_field(signup),
        ],
        students,
    )


def _csv_join_inline(parts: Sequence[_Field], n: int) -> _Field:
    """Several fields glued together into one (no separators)."""
    width = sum(p.width for p in parts)
    mat = np.empty((n, width), np.uint8)
    mask = np.ones((n, width), bool)
    col = 0
    for p in parts:
        mat[:, col : col + p.width] = p.mat
        if p.mask is not None:
            mask[:, col : col + p.width] = p.mask
        col += p.width
    return _Field(mat, mask)


def _batches(
    plan: _Plan, seed: int, user_ids: np.ndarray, pools: _Pools, batch_size: int
) -> Iterator[Callable[[], _Batch]]:
    n = len(plan.created)
    for batch_no, lo in enumerate(range(0, n, batch_size)):
        hi = min(n, lo + batch_size)
        yield lambda lo=lo, hi=hi, batch_no=batch_no: _batch(plan, lo, hi, seed, batch_no, user_ids, pools)


def seed_demo(
    engine: Any,
    *,
    students: int,
    days: int,
    sessions: int | None = None,
    seed: int = 42,
    end: date | None = None,
    progress: bool = True,
    now: datetime | None = None,
    batch_size: int = BATCH_SESSIONS,
) -> SeedResult:
    """Write ``students`` demo students and their sessions over the ``days`` days ending ``end``.

    ``sessions`` defaults to about 0.3 per student per day. ``end`` defaults to today (UTC);
    nothing is dated after ``now`` (default: the current time), and a handful of the latest
    sessions are still ``active``. ``engine`` is a SQLAlchemy engine on PostgreSQL. Raises
    ``DemoSeedError`` when demo students already exist (their e-mails are unique).
    """
    if students < 1 or days < 1:
        raise ValueError("students and days must be at least 1")
    if sessions is None:
        sessions = round(students * days * SESSIONS_PER_STUDENT_DAY)
    if sessions < 0:
        raise ValueError("sessions must not be negative")
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    started = time.perf_counter()
    now = (now or datetime.now(UTC)).astimezone(UTC)
    end = end or now.date()
    start_day = end - timedelta(days=days - 1)
    end_of_history = datetime(end.year, end.month, end.day, tzinfo=UTC) + timedelta(days=1)
    cutoff = _epoch_ms(min(now, end_of_history))
    start_ms = _epoch_ms(datetime(start_day.year, start_day.month, start_day.day, tzinfo=UTC))

    root = np.random.SeedSequence(seed)
    user_rng, plan_rng = (np.random.default_rng(s) for s in root.spawn(2))
    signup, grade, name, activity, favourite = _users(user_rng, students, start_ms, cutoff)
    plan = _plan(plan_rng, sessions, start_day, days, cutoff, signup, activity, favourite)
    pools = _Pools()
    users_csv = _users_csv(students, signup, grade, name, pools)

    raw = engine.raw_connection()
    totals = {"sessions": 0, "messages": 0, "topics": 0, "attempts": 0}
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="demo-seed")
    bar = None
    try:
        cur = raw.cursor()
        cur.execute("SET LOCAL synchronous_commit = off")
        cur.execute("SET LOCAL statement_timeout = 0")
        cur.execute("SELECT count(*) FROM users WHERE lower(email) ~ %s", (DEMO_STUDENT_EMAIL_RE,))
        existing = cur.fetchone()[0]
        if existing:
            raise DemoSeedError(
                f"{existing:,} demo students (@{DEMO_EMAIL_DOMAIN}) already exist; "
                "delete them (their sessions go with them) or use a fresh database"
            )
        _copy(cur, "users", USER_COLUMNS, users_csv)
        cur.execute("SELECT id, email FROM users WHERE lower(email) ~ %s ORDER BY id", (DEMO_STUDENT_EMAIL_RE,))
        rows = cur.fetchall()
        if (
            len(rows) != students
            or rows[0][1] != demo_email(1, students)
            or rows[-1][1] != demo_email(students, students)
        ):
            raise DemoSeedError("demo students were not read back in the order they were written")
        user_ids = np.array([r[0] for r in rows], np.int64)
        del rows, users_csv

        if progress:
            from tqdm import tqdm

            bar = tqdm(total=sessions, unit="sessions", unit_scale=True, desc="demo seed", smoothing=0.1)
        jobs = iter(_batches(plan, seed, user_ids, pools, batch_size))
        pending: Future[_Batch] | None = None
        attempted: list[_Attempted] = []
        first = next(jobs, None)
        if first is not None:
            pending = executor.submit(first)
        attempts_job: Future[tuple[bytes, int]] | None = None
        while pending is not None:
            batch = pending.result()
            if batch.attempted is not None:
                attempted.append(batch.attempted)
            nxt = next(jobs, None)
            pending = executor.submit(nxt) if nxt is not None else None
            if pending is None:  # the attempts need every batch; built while the last one is copied
                attempts_job = executor.submit(_attempts_csv, attempted, seed, students, user_ids, pools)
            _copy(cur, "sessions", SESSION_COLUMNS, batch.sessions)
            _copy(cur, "session_topics", TOPIC_COLUMNS, batch.topics)
            _copy(cur, "messages", MESSAGE_COLUMNS, batch.messages)
            totals["sessions"] += batch.n_sessions
            totals["messages"] += batch.n_messages
            totals["topics"] += batch.n_topics
            if bar is not None:
                bar.update(batch.n_sessions)
            del batch
        if attempts_job is not None:
            attempts_csv, totals["attempts"] = attempts_job.result()
            del attempted
            _copy(cur, "attempts", ATTEMPT_COLUMNS, attempts_csv)
        cur.close()
        raw.commit()
    except BaseException:
        try:
            raw.rollback()
        except Exception:  # the connection is unusable (e.g. interrupted mid-COPY): drop it
            raw.invalidate()
        raise
    finally:
        executor.shutdown(wait=False, cancel_futures=True)
        if bar is not None:
            bar.close()
        raw.close()
    return SeedResult(
        users=students,
        sessions=totals["sessions"],
        messages=totals["messages"],
        topics=totals["topics"],
        seconds=time.perf_counter() - started,
        attempts=totals["attempts"],
    )
