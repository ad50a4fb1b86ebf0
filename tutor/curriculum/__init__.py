"""The tutor's curriculum: subjects and topics shipped as TOML data, plus the topic matcher.

Why data files: an admin adds or corrects a subject by dropping a ``*.toml`` file into a
folder, with no code change, and the offline tutor can build replies from the same
explanations, worked examples, hints and check questions. The files are validated in full
when they are loaded (at start-up), so a typo fails loudly with the file and the field named
instead of surfacing later as a broken reply in the middle of a session.

Why a deterministic matcher: ``session_topics`` feeds counts and reports, so the same
message must always map to the same topic ids, without a model or the network.
"""

from __future__ import annotations

import re
import tomllib
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from foundation.config import ConfigError

from .search import Document, TopicSearch

__all__ = [
    "DEFAULT_DIRECTORY",
    "use_directory",
    "CheckQuestion",
    "Curriculum",
    "CurriculumError",
    "Subject",
    "Topic",
    "get_curriculum",
    "load_curriculum",
    "match_topics",
    "normalize_text",
    "subjects_payload",
    "topic_count",
]

DEFAULT_DIRECTORY = Path(__file__).resolve().parent / "subjects"
"""The shipped subject files; kept inside the package so they work from the source tree."""

MIN_HINTS = 3
MIN_CHECK_QUESTIONS = 2
MAX_SUBJECT_ID_LENGTH = 64  # sessions.subject is String(64)
MAX_TOPIC_ID_LENGTH = 120  # session_topics.topic is String(120)
MAX_MATCHES = 3
MAX_MATCH_TEXT = 10_000  # characters of a message the matcher reads; bounds the work per message

# Subject ids: lower-case words of [a-z0-9] separated by single spaces or hyphens.
_SUBJECT_ID_RE = re.compile(r"[a-z0-9]+(?:[ -][a-z0-9]+)*")
# Topic ids: lower-case words separated by single spaces; a word may contain inner hyphens
# ("subject-verb agreement"). Such an id is unchanged by SessionTopic.clean, so it can be
# stored in session_topics as is.
_TOPIC_ID_RE = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*(?: [a-z0-9]+(?:-[a-z0-9]+)*)*")

_SUBJECT_FIELDS = {"id", "name", "description", "topics", "starters"}
MAX_STARTERS = 6
STARTERS_SHOWN = 3
_TOPIC_REQUIRED = ("id", "name", "keywords", "explanation", "worked_example", "hints", "check_questions")
_TOPIC_OPTIONAL = ("misconceptions",)
_CHECK_FIELDS = {"question", "answer"}


class CurriculumError(ConfigError, ValueError):
    """A subject file is missing, unreadable or invalid.

    The message always starts with the file name and, where there is one, the field
    (``"mathematics.toml: topics[3].hints: must be ..."``) so an admin can fix it without
    reading code. ``file`` and ``field`` carry the same information for programs.
    """

    def __init__(self, message: str, *, file: str | None = None, field: str | None = None) -> None:
        super().__init__(message)
        self.file = file
        self.field = field


@dataclass(frozen=True)
class CheckQuestion:
    """A short question to check understanding; ``answer`` is short so it can be compared."""

    question: str
    answer: str


@dataclass(frozen=True)
class Topic:
    """One teachable topic; ``id`` is the exact value stored in ``session_topics``."""

    id: str
    name: str
    keywords: tuple[str, ...]
    explanation: str
    worked_example: str
    hints: tuple[str, ...]  # ordered from general to specific, so hints can be revealed one by one
    check_questions: tuple[CheckQuestion, ...]
    misconceptions: tuple[str, ...] = ()


@dataclass(frozen=True)
class Subject:
    """A subject file: its topics keep the order of the file (the teaching order)."""

    id: str
    name: str
    description: str
    topics: tuple[Topic, ...]
    starters: tuple[str, ...] = ()  # questions a new session suggests (optional in the file)

    def suggested_starters(self) -> list[str]:
        """Three questions to offer a new session: the file's ``starters``, else the first check
        question of the first topics."""
        chosen = list(self.starters) or [t.check_questions[0].question for t in self.topics]
        return chosen[:STARTERS_SHOWN]

    def topic(self, topic_id: str) -> Topic | None:
        """The topic with this id (compared trimmed and lower-case, like session_topics), or None."""
        wanted = _clean(topic_id)
        for topic in self.topics:
            if topic.id == wanted:
                return topic
        return None


@dataclass(frozen=True)
class Curriculum:
    """All subjects, keyed by subject id, in file-name order.

    The keyword index the matcher uses is built once here, so matching a message costs a
    few dictionary look-ups rather than a scan over every keyword.
    """

    subjects: dict[str, Subject]
    _index: _Index = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_index", _build_index(self.subjects.values()))

    def subject(self, subject_id: str) -> Subject | None:
        """The subject with this id (trimmed, lower-case), or None."""
        return self.subjects.get(_clean(subject_id))

    def topic(self, subject_id: str, topic_id: str) -> Topic | None:
        """A topic of a subject, or None when either is unknown."""
        subject = self.subject(subject_id)
        return subject.topic(topic_id) if subject else None


# --------------------------------------------------------------------------- loading


def load_curriculum(directory: Path | None = None) -> Curriculum:
    """Load and validate every ``*.toml`` file in ``directory`` (default: the shipped subjects).

    Files are read in file-name order, which is also the order of ``Curriculum.subjects`` and
    of :func:`subjects_payload`, so the UI never reshuffles. Dot-files (editor back-ups) are
    skipped. Any problem raises :class:`CurriculumError`; nothing is half-loaded.
    The caller decides the directory (e.g. from ``CURRICULUM_DIR``); this function reads no
    settings.
    """
    directory = Path(directory) if directory is not None else DEFAULT_DIRECTORY
    if not directory.is_dir():
        raise CurriculumError(f"{directory}: curriculum directory not found", file=str(directory))
    files = sorted(p for p in directory.glob("*.toml") if p.is_file() and not p.name.startswith("."))
    if not files:
        raise CurriculumError(f"{directory}: no subject files (*.toml) found", file=str(directory))

    subjects: dict[str, Subject] = {}
    defined_in: dict[str, str] = {}
    for path in files:
        subject = _load_subject_file(path)
        if subject.id in subjects:
            _fail(path.name, "id", f"duplicate subject id {subject.id!r} (also in {defined_in[subject.id]})")
        subjects[subject.id] = subject
        defined_in[subject.id] = path.name
    return Curriculum(subjects)


_current: Curriculum | None = None


def use_directory(directory: str | Path | None) -> Curriculum:
    """Load and validate ``directory`` (``CURRICULUM_DIR``; None: the shipped subjects) and make
    it the process's curriculum; a broken file raises and leaves the current one in place."""
    global _current
    curriculum = load_curriculum(Path(directory) if directory else None)
    _current = curriculum
    return curriculum


def get_curriculum() -> Curriculum:
    """The process's curriculum (see :func:`use_directory`), loaded once: the files don't
    change while it runs."""
    return _current if _current is not None else use_directory(None)


def topic_count(subject_id: str, curriculum: Curriculum | None = None) -> int:
    """Number of topics in a subject; 0 for an unknown subject so callers needn't check first."""
    subject = (curriculum or get_curriculum()).subject(subject_id)
    return len(subject.topics) if subject else 0


def subjects_payload(curriculum: Curriculum | None = None) -> list[dict[str, Any]]:
    """Subjects and their topics as plain JSON-ready data for pages and APIs, in a stable order."""
    return [
        {
            "id": s.id,
            "name": s.name,
            "description": s.description,
            "topics": [{"id": t.id, "name": t.name} for t in s.topics],
            "starters": s.suggested_starters(),
        }
        for s in (curriculum or get_curriculum()).subjects.values()
    ]


def _fail(file: str, field_name: str, problem: str) -> NoReturn:
    raise CurriculumError(f"{file}: {field_name}: {problem}", file=file, field=field_name)


def _clean(value: str) -> str:
    # Same rule as SessionTopic.clean: trimmed, single spaces, lower-case.
    return " ".join(value.split()).lower()


def _load_subject_file(path: Path) -> Subject:
    name = path.name
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CurriculumError(f"{name}: not valid UTF-8 ({exc})", file=name) from None
    except OSError as exc:
        raise CurriculumError(f"{name}: cannot be read ({exc.strerror or exc})", file=name) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise CurriculumError(f"{name}: not valid TOML: {exc}", file=name) from None
    return _parse_subject(name, data)


def _parse_subject(file: str, data: dict[str, Any]) -> Subject:
    for key in sorted(set(data) - _SUBJECT_FIELDS):
        _fail(file, key, f"unknown field (allowed: {', '.join(sorted(_SUBJECT_FIELDS))})")
    for key in ("id", "name", "description", "topics"):
        if key not in data:
            _fail(file, key, "missing required field")

    subject_id = _text(file, "id", data["id"])
    if not _SUBJECT_ID_RE.fullmatch(subject_id) or len(subject_id) > MAX_SUBJECT_ID_LENGTH:
        _fail(
            file,
            "id",
            f"{subject_id!r} must be lower-case letters, digits, single spaces or hyphens "
            f"(at most {MAX_SUBJECT_ID_LENGTH} characters)",
        )
    subject_name = _text(file, "name", data["name"])
    description = _text(file, "description", data["description"])

    raw_topics = data["topics"]
    if not isinstance(raw_topics, list) or not raw_topics or not all(isinstance(t, dict) for t in raw_topics):
        _fail(file, "topics", "must be a non-empty array of tables ([[topics]] sections)")

    topics: list[Topic] = []
    seen: dict[str, int] = {}
    for i, raw in enumerate(raw_topics):
        topic = _parse_topic(file, i, raw)
        if topic.id in seen:
            _fail(file, f"topics[{i}].id", f"duplicate topic id {topic.id!r} (also topics[{seen[topic.id]}])")
        seen[topic.id] = i
        topics.append(topic)
    starters: tuple[str, ...] = ()
    if "starters" in data:
        raw = data["starters"]
        if (
            not isinstance(raw, list)
            or len(raw) > MAX_STARTERS
            or not all(isinstance(x, str) and x.strip() and len(x) <= 200 for x in raw)
        ):
            _fail(file, "starters", f"must be a list of at most {MAX_STARTERS} non-empty strings (200 characters each)")
        starters = tuple(x.strip() for x in raw)
    return Subject(id=subject_id, name=subject_name, description=description, topics=tuple(topics), starters=starters)


def _parse_topic(file: str, i: int, raw: dict[str, Any]) -> Topic:
    where = f"topics[{i}]"
    topic_id = raw.get("id")

    def fail(key: str, problem: str) -> NoReturn:
        suffix = f" (topic {topic_id!r})" if isinstance(topic_id, str) and topic_id.strip() else ""
        _fail(file, f"{where}.{key}", problem + suffix)

    allowed = set(_TOPIC_REQUIRED) | set(_TOPIC_OPTIONAL)
    for key in sorted(set(raw) - allowed):
        fail(key, f"unknown field (allowed: {', '.join(sorted(allowed))})")
    for key in _TOPIC_REQUIRED:
        if key not in raw:
            fail(key, "missing required field")

    def text(key: str) -> str:
        value = raw[key]
        if not isinstance(value, str) or not value.strip():
            fail(key, "must be a non-empty string")
        return value.strip()

    def strings(key: str, minimum: int) -> tuple[str, ...]:
        value = raw.get(key, [])
        if (
            not isinstance(value, list)
            or len(value) < minimum
            or not all(isinstance(v, str) and v.strip() for v in value)
        ):
            fail(key, f"must be a list of at least {minimum} non-empty string{'s' if minimum != 1 else ''}")
        return tuple(v.strip() for v in value)

    tid = text("id")
    if not _TOPIC_ID_RE.fullmatch(tid) or len(tid) > MAX_TOPIC_ID_LENGTH:
        fail(
            "id",
            "must be lower-case words separated by single spaces (letters, digits, inner hyphens; "
            f"at most {MAX_TOPIC_ID_LENGTH} characters)",
        )
    name = text("name")
    keywords = strings("keywords", 1)
    for k, keyword in enumerate(keywords):
        if not _tokens(keyword):
            _fail(file, f"{where}.keywords[{k}]", f"{keyword!r} has no letters, digits or maths symbols to match")
    explanation = text("explanation")
    worked_example = text("worked_example")
    hints = strings("hints", MIN_HINTS)

    raw_checks = raw["check_questions"]
    if not isinstance(raw_checks, list) or len(raw_checks) < MIN_CHECK_QUESTIONS:
        fail("check_questions", f"must be a list of at least {MIN_CHECK_QUESTIONS} tables {{question, answer}}")
    checks: list[CheckQuestion] = []
    for q, item in enumerate(raw_checks):
        key = f"check_questions[{q}]"
        if not isinstance(item, dict):
            fail(key, 'must be a table like {question = "...", answer = "..."}')
        for extra in sorted(set(item) - _CHECK_FIELDS):
            fail(f"{key}.{extra}", "unknown field (allowed: answer, question)")
        values = []
        for part in ("question", "answer"):
            value = item.get(part)
            if not isinstance(value, str) or not value.strip():
                fail(f"{key}.{part}", "must be a non-empty string")
            values.append(value.strip())
        checks.append(CheckQuestion(question=values[0], answer=values[1]))

    misconceptions = strings("misconceptions", 0) if "misconceptions" in raw else ()
    return Topic(
        id=tid,
        name=name,
        keywords=keywords,
        explanation=explanation,
        worked_example=worked_example,
        hints=hints,
        check_questions=tuple(checks),
        misconceptions=misconceptions,
    )


def _text(file: str, key: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        _fail(file, key, "must be a non-empty string")
    return value.strip()


# --------------------------------------------------------------------------- matching

# Weights: a phrase is much stronger evidence than one word ("food chain" vs "food"), a
# topic's own name slightly stronger than a keyword of the same length, and a recognised
# maths structure ("2x + 3 = 7") the strongest of all.
_MAX_PHRASE_WEIGHT = 3
_NAME_BONUS = 1
_STRUCTURE_WEIGHT = 4
_TEXT_WEIGHT = 1.5  # the best whole-text (BM25) match; the others in proportion

_CHAR_MAP = str.maketrans(
    {
        "×": "*",
        "·": "*",
        "÷": "/",
        "⁄": "/",
        "∕": "/",
        "−": "-",
        "–": "-",
        "—": " ",
        "‘": "'",
        "’": "'",
        "`": "'",
        "²": "^2",
        "³": "^3",
        "√": " sqrt ",
    }
)
_KEEP_RE = re.compile(r"[^a-z0-9+\-*/=^%():.'<>\s]")
_TOKEN_RE = re.compile(r"\d+(?:\.\d+)?[a-z]*|[a-z][a-z0-9]*(?:'[a-z]+)*|[+\-*/=^%():<>]")


def normalize_text(text: str) -> str:
    """Lower-case, accent-free, single-spaced text that keeps maths recognisable.

    Letters, digits and ``+ - * / = ^ % ( ) : < >`` survive (so ``2x+3=7``, ``3/4`` and
    ``3:4`` still look like maths); other punctuation becomes a space. Apostrophes survive
    only inside words (``it's``), full stops only inside numbers (``3.5``), hyphens between
    words become spaces (``right-angled`` = ``right angled``), and ``×``, ``÷``, ``²`` are
    spelled the ASCII way.
    """
    text = unicodedata.normalize("NFKD", text.lower().translate(_CHAR_MAP))
    text = "".join(ch for ch in text if not unicodedata.combining(ch)).translate(_CHAR_MAP)
    text = re.sub(r"(?<=\d),(?=\d{3}(?!\d))", "", text)  # 1,000 -> 1000
    text = re.sub(r"(?<=[a-z]{2})-(?=[a-z]{2})", " ", text)
    text = _KEEP_RE.sub(" ", text)
    text = re.sub(r"(?<![a-z])'|'(?![a-z])", " ", text)
    text = re.sub(r"(?<!\d)\.|\.(?!\d)", " ", text)
    return " ".join(text.split())


def _stem(token: str) -> str:
    # Crude plural folding, applied to text and keywords alike so "fractions" finds
    # "fraction" and "forces" finds "force". Consistency matters more than linguistics.
    if len(token) <= 3 or not token.isalpha():
        return token
    if token.endswith("ies") and len(token) > 4:
        return token[:-3] + "y"
    if token.endswith(("sses", "xes", "ches", "shes")):
        return token[:-2]
    if token.endswith("s") and not token.endswith(("ss", "us", "is")):
        return token[:-1]
    return token


def _tokens(text: str) -> tuple[str, ...]:
    return tuple(_stem(t) for t in _TOKEN_RE.findall(normalize_text(text)))


@dataclass(frozen=True)
class _Index:
    phrases: dict[tuple[str, ...], tuple[tuple[str, str, int], ...]]  # tokens -> (subject, topic, weight)
    longest: int
    topics: dict[str, tuple[tuple[str, str], ...]]  # topic id -> ((subject id, topic id), ...)
    search: TopicSearch  # BM25 over each topic's whole text, and typo correction


def _build_index(subjects: Iterable[Subject]) -> _Index:
    subjects = list(subjects)
    best: dict[tuple[str, ...], dict[tuple[str, str], int]] = {}
    topics: dict[str, list[tuple[str, str]]] = {}
    for subject in subjects:
        for topic in subject.topics:
            key = (subject.id, topic.id)
            topics.setdefault(topic.id, []).append(key)
            entries = [(k, 0) for k in topic.keywords] + [(topic.name, _NAME_BONUS), (topic.id, _NAME_BONUS)]
            for phrase, bonus in entries:
                tokens = _tokens(phrase)
                if not tokens:
                    continue
                weight = min(len(tokens), _MAX_PHRASE_WEIGHT) + bonus
                slot = best.setdefault(tokens, {})
                slot[key] = max(slot.get(key, 0), weight)
    phrases = {tokens: tuple((s, t, w) for (s, t), w in slot.items()) for tokens, slot in best.items()}
    return _Index(
        phrases=phrases,
        longest=max((len(t) for t in phrases), default=0),
        topics={tid: tuple(keys) for tid, keys in topics.items()},
        search=TopicSearch(_document(subject, topic) for subject in subjects for topic in subject.topics),
    )


def _document(subject: Subject, topic: Topic) -> Document:
    body = [topic.explanation, topic.worked_example, *topic.hints, *topic.misconceptions]
    body += [q.question for q in topic.check_questions]
    return Document((subject.id, topic.id), " ".join((topic.name, *topic.keywords)), "\n".join(body))


# Maths structures, matched against normalize_text() output. Each maps to a topic id; the
# structure counts for any loaded subject that has a topic with that id.
_NUM = r"\d+(?:\.\d+)?"
_TERM = rf"(?:(?<![a-z0-9.]){_NUM}(?:[a-z](?![a-z']))?|(?<![a-z0-9'])[a-z](?![a-z0-9']))"
_ATOM = rf"(?:{_TERM}|\([^()=]*\))"
_SIDE = rf"-?\s*{_ATOM}(?:\s*[-+*/]\s*{_ATOM}|\s*\([^()=]*\))*"
_EQUATION_RE = re.compile(rf"(?<![\^\w.])(?:{_SIDE})\s*=\s*(?:{_SIDE})(?!\s*\^)(?![\w.])")
_LONE_LETTER_RE = re.compile(r"(?<![a-z])[a-z](?![a-z])")
_BINOMIAL = r"\((?=[^()]*[a-z])[^()]*[-+][^()]*\)"


def _is_linear_equation(text: str) -> bool:
    # An equation with numbers and a one-letter unknown, and no powers: "2x + 3 = 7",
    # "x/3 + 1 = 5", "4(x - 1) = 12", but not "12 x 7 = 84", "f = ma" or "a^2 + b^2 = c^2".
    return any(re.search(r"\d", m.group()) and _LONE_LETTER_RE.search(m.group()) for m in _EQUATION_RE.finditer(text))


def _regex(pattern: str) -> Callable[[str], bool]:
    compiled = re.compile(pattern)
    return lambda text: compiled.search(text) is not None


_STRUCTURES: tuple[tuple[str, Callable[[str], bool]], ...] = (
    ("linear equations", _is_linear_equation),
    ("fractions", _regex(r"(?<![\d./])\d+/\d+(?![\d./])")),
    ("percentages", _regex(r"%")),
    ("pythagorean theorem", _regex(r"(?<![a-z])[a-z]\s*\^\s*2\s*\+\s*[a-z]\s*\^\s*2")),
    (
        "expanding brackets",
        _regex(
            rf"{_BINOMIAL}\s*\*?\s*\(|\)\s*\*?\s*{_BINOMIAL}"
            rf"|(?<![a-z0-9.])(?:-?{_NUM}[a-z]?|[a-z])\s*\*?\s*{_BINOMIAL}"
            rf"|{_BINOMIAL}\s*\^\s*2"
        ),
    ),
    (
        "ratios and rates",
        _regex(
            r"(?<![\d:.])\d+\s*:\s*\d+(?![\d:])"
            r"|\b(?:km|m|mi|cm)\s*/\s*(?:h|hr|s|min)\b|\b(?:mph|kph)\b"
            r"|\b\d+(?:\.\d+)?\s*(?:km|kilomet(?:re|er)s?|miles?|m|met(?:re|er)s?)\s+in\s+\d+(?:\.\d+)?\s*"
            r"(?:hours?|hrs?|h|minutes?|mins?|seconds?|secs?|s)\b"
        ),
    ),
    # Plain sums: "15 + 27", "12 * 7", "12 x 7", "100 - 37", "144 / 12" (spaced; 12/4 reads as a fraction).
    (
        "arithmetic",
        _regex(
            r"(?<![a-z0-9.^/])\d+(?:\.\d+)?\s*(?:[+*x]|(?<=\s)-|-(?=\s)|(?<=\s)/|/(?=\s))\s*"
            r"\d+(?:\.\d+)?(?![a-z0-9.^/])"
        ),
    ),
)
_FALLBACK_STRUCTURE = "arithmetic"  # only counts when no more specific structure was seen


def match_topics(text: str, subject_id: str | None = None, curriculum: Curriculum | None = None) -> list[str]:
    """Topic ids a student's message is about: best first, at most three, possibly none.

    Keywords (and each topic's name and id) are matched as whole words or phrases after
    :func:`normalize_text` and plural folding; each distinct keyword counts once, weighted
    by its length in words (capped), plus a bonus for the topic's own name. Maths
    structures such as ``2x + 3 = 7`` or ``3/4 + 1/8`` add a strong weight to their topic.
    Topics scoring under half the best score are dropped as incidental; the rest are sorted
    by score (descending) then id, so the same input always gives the same output.

    With ``subject_id`` only that subject's topics are considered (an unknown subject, or
    no match in it, gives ``[]``). Without it, every subject is searched and a topic id
    found in several subjects keeps its best score. ``curriculum`` defaults to
    :func:`get_curriculum`.
    """
    curriculum = curriculum or get_curriculum()
    index = curriculum._index
    wanted: str | None = None
    if subject_id is not None:
        wanted = _clean(subject_id)
        if wanted not in curriculum.subjects:
            return []

    norm = normalize_text(text[:MAX_MATCH_TEXT])
    tokens = [_stem(index.search.correct(t)) for t in _TOKEN_RE.findall(norm)]
    scores: dict[tuple[str, str], float] = {}

    for n in range(1, min(index.longest, len(tokens)) + 1):
        for gram in {tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)}:
            for subject, topic, weight in index.phrases.get(gram, ()):
                if wanted is None or subject == wanted:
                    scores[(subject, topic)] = scores.get((subject, topic), 0) + weight

    seen = {topic_id for topic_id, detect in _STRUCTURES if topic_id in index.topics and detect(norm)}
    if seen - {_FALLBACK_STRUCTURE}:
        seen.discard(_FALLBACK_STRUCTURE)
    for topic_id in seen:
        for subject, topic in index.topics[topic_id]:
            if wanted is None or subject == wanted:
                scores[(subject, topic)] = scores.get((subject, topic), 0) + _STRUCTURE_WEIGHT

    allowed = {key for key in index.search.keys if wanted is None or key[0] == wanted}
    relevance = index.search.scores(norm, allowed)
    if relevance:
        top = max(relevance.values())
        for key, score in relevance.items():
            scores[key] = scores.get(key, 0) + _TEXT_WEIGHT * score / top

    best: dict[str, float] = {}
    for (_, topic), score in scores.items():
        best[topic] = max(best.get(topic, 0), score)
    if not best:
        return []
    top = max(best.values())
    ranked = sorted((t for t, s in best.items() if 2 * s >= top), key=lambda t: (-best[t], t))
    return ranked[:MAX_MATCHES]
