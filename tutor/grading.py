"""Grading a student's answer, and the check questions that can be graded.

Mastery is only as good as the grading behind it, so every verdict here is one a teacher
would agree with: maths answers are compared exactly with sympy (``3/4`` = ``0.75`` = ``6/8``
as values, ``x = 2`` = ``2``, ``12 + 3x`` = ``3x + 12``), other answers as normalised text
against the expected answer and its accepted alternatives (written ``"it's | it is"`` in a
subject file). With a model behind the tutor, a free-text answer the rules reject can be
given to the model for a second opinion (:func:`grade_with_model`, on a worker only); its
words are kept with the attempt.

Check questions come from the curriculum (``check_questions``) and, for maths topics, from
generators that ask the same kind of question with different numbers. A generated question
is recognised again from its text alone (:func:`answer_for`), so nothing has to remember
what was asked: a quiz, or a tutor reply that asked one, is enough to grade the answer.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from dataclasses import dataclass

import sympy
from sympy.parsing.sympy_parser import (
    convert_xor,
    implicit_multiplication_application,
    parse_expr,
    standard_transformations,
)

from .curriculum import get_curriculum, normalize_text
from .problems import find_proposal_with_text, format_value

MATHS_SUBJECT = "mathematics"
ALTERNATIVE_SEPARATOR = "|"
ITEM_MAX_CHARS = 300


@dataclass(frozen=True)
class Grade:
    correct: bool
    graded_by: str  # sympy | text | model
    verdict: str | None = None  # the model's words, when a model graded


@dataclass(frozen=True)
class Question:
    subject: str
    topic: str
    text: str
    answer: str  # the expected answer, as a student would write it ("x = 2", "3/4", "adverb")

    @property
    def maths(self) -> bool:
        return self.subject == MATHS_SUBJECT


# ----------------------------------------------------------------------------- grading


def grade(expected: str, answer: str, *, maths: bool) -> Grade:
    """Is ``answer`` right? Maths first as values (sympy), then as text."""
    if maths:
        verdict = grade_maths(expected, answer)
        if verdict is not None:
            return Grade(verdict, "sympy")
    return Grade(grade_text(expected, answer), "text")


_TRANSFORMS = (*standard_transformations, implicit_multiplication_application, convert_xor)
_NUMBER = r"-?\d+(?:\.\d+)?(?:/\d+)?"
_UNITS = re.compile(
    r"\b(?:cm\^2|cm2|m\^2|cm|mm|km/h|kmh|km per hour|kilometres per hour|kilometers per hour|mph|km|kg|g|"
    r"metres|meters|m|per ?cent|hours?|h|minutes?|mins?|seconds?|s|pounds?|dollars?|pence|p|units?)\b"
)
_LEAD_IN = re.compile(
    r"^(?:(?:so|well|ok|okay|um+|hmm+|i think|i got|i get|my answer is|the answer is|answer|it'?s|it is|is it|"
    r"that'?s|that is|equals|=)\s*[:,]?\s*)+"
)


def _maths_text(text: str) -> str:
    text = text.lower().strip()
    for old, new in (("×", "*"), ("÷", "/"), ("−", "-"), ("–", "-"), ("²", "^2"), ("·", "*")):
        text = text.replace(old, new)
    text = re.sub(r"(?<=\d),(?=\d{3}(?!\d))", "", text)  # 1,000
    text = re.sub(r"[£$€]", "", text)
    text = text.replace("%", " ")
    text = _UNITS.sub(" ", text)
    text = _LEAD_IN.sub("", text.strip())
    return " ".join(text.rstrip(" .!?").split())


def _parse(expr: str) -> sympy.Expr | None:
    expr = expr.strip()
    if not expr or len(expr) > 80 or not re.fullmatch(r"[\d\s.+\-*/()^a-z]+", expr):
        return None
    if re.search(r"[a-z]{2}", expr):  # words, not maths
        return None
    try:
        value = parse_expr(expr.replace("^", "**"), transformations=_TRANSFORMS, evaluate=True)
    except Exception:  # noqa: BLE001 - anything sympy cannot read is not a maths answer
        return None
    return value if isinstance(value, sympy.Expr) else None


def _numbers(text: str) -> list[sympy.Expr]:
    return [sympy.nsimplify(n) for n in re.findall(_NUMBER, text)]


def _equal(a: sympy.Expr, b: sympy.Expr) -> bool:
    try:
        return bool(sympy.simplify(a - b) == 0)
    except Exception:  # noqa: BLE001
        return False


def grade_maths(expected: str, answer: str) -> bool | None:
    """True/False when ``expected`` is a maths answer (a value, ``x = v``, an expression, a
    ratio or several values); None when it is not (grade it as text)."""
    want, got = _maths_text(expected), _maths_text(answer)
    if not want:
        return None
    if re.fullmatch(rf"{_NUMBER}(?:\s*:\s*{_NUMBER})+", want):  # a ratio: the same parts, in order
        return _numbers(want) == _numbers(got.replace(" to ", ":")) and ":" in got.replace(" to ", ":")
    wanted_numbers = re.findall(_NUMBER, want)
    if len(wanted_numbers) >= 2 and re.fullmatch(rf"{_NUMBER}(?:\s*(?:and|,|&)\s*{_NUMBER})+", want):
        return _numbers(want) == _numbers(got)
    equation = re.fullmatch(r"([a-z])\s*=\s*(.+)", want)
    if equation:
        value = _parse(equation.group(2))
        if value is None:
            return None
        said = re.search(rf"(?<![a-z]){equation.group(1)}\s*=\s*(.+)", got)
        got = said.group(1) if said else got
        return _value_matches(value, got, answer)
    value = _parse(want)
    if value is None:
        return None
    if value.free_symbols:  # an expression: equal as polynomials, written out (no brackets left)
        given = _parse(got)
        if given is None:
            return False
        return _equal(value, given) and ("(" in want or "(" not in got)
    return _value_matches(value, got, answer)


def _value_matches(value: sympy.Expr, got: str, raw: str) -> bool:
    given = _parse(got)
    if given is None or given.free_symbols:
        found = find_proposal_with_text(raw)
        given = found[0] if found else None
    return given is not None and not given.free_symbols and _equal(sympy.nsimplify(given), sympy.nsimplify(value))


_FILLER = re.compile(r"^(?:(?:i think|i got|my answer is|the answer is|answer|it'?s|it is|it|that'?s|is|a|an|the)\s+)+")
_NEGATION = re.compile(r"\b(?:not|isn't|aren't|wasn't|don't|doesn't|never|no)\b")
_NUMBER_WORDS = {"zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6",
                 "seven": "7", "eight": "8", "nine": "9", "ten": "10"}  # fmt: skip


def _text(value: str) -> str:
    words = normalize_text(value).split()
    return " ".join(_NUMBER_WORDS.get(w, w) for w in words)


def grade_text(expected: str, answer: str) -> bool:
    """The answer matches the expected text or one of its ``|``-separated alternatives:
    the same words once case, accents, punctuation, articles and lead-ins ("I think it's
    an ...") are set aside; or a short answer that contains the expected words and no
    negation ("it's a simile" for "simile", but not "not a simile")."""
    said = _text(answer)
    said_core = _FILLER.sub("", said)
    if not said_core:
        return False
    for option in expected.split(ALTERNATIVE_SEPARATOR):
        want = _FILLER.sub("", _text(option))
        if not want:
            continue
        if said_core == want:
            return True
        extra = len(said.split()) - len(want.split())
        negated = _NEGATION.search(said) and not _NEGATION.search(want)
        if 0 <= extra <= 5 and not negated and re.search(rf"(?<![\w']){re.escape(want)}(?![\w'])", said):
            return True
    return False


# ----------------------------------------------------------------------------- model grading

MODEL_GRADING_PROMPT = (
    "You grade a student's answer to a short question. The expected answer is given; accept "
    "answers that mean the same (other wording, spelling slips, a synonym), reject wrong or "
    "vague ones. Reply with one word, CORRECT or INCORRECT, then one short sentence why."
)


def model_grading_messages(question: str, expected: str, answer: str) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": MODEL_GRADING_PROMPT},
        {
            "role": "user",
            "content": f"Question: {question}\nExpected answer: {expected}\nStudent's answer: {answer}",
        },
    ]


def parse_model_verdict(text: str) -> bool | None:
    """CORRECT -> True, INCORRECT -> False; anything else -> None (not a verdict)."""
    first = re.match(r"\W*(incorrect|correct)\b", text.strip().lower())
    return None if first is None else first.group(1) == "correct"


def grade_with_model(provider, question: Question, answer: str) -> Grade | None:  # type: ignore[no-untyped-def]
    """The model's verdict on a free-text answer, or None when it gave none or failed.
    Runs on a worker (it calls the model)."""
    from .providers import ProviderError, ReplyContext, Usage

    try:
        reply = "".join(
            provider.stream(
                model_grading_messages(question.text, question.answer, answer),
                Usage(),
                ReplyContext(subject=question.subject),
            )
        )
    except ProviderError:
        return None
    verdict = parse_model_verdict(reply)
    return None if verdict is None else Grade(verdict, "model", reply.strip()[:500])


# ----------------------------------------------------------------------------- check questions


@dataclass(frozen=True)
class _Variant:
    """A maths question with fresh numbers: ``make`` writes one, ``pattern`` recognises one
    (in a quiz or a tutor's reply) and ``solve`` gives its answer from the numbers in it."""

    topic: str
    make: Callable[[random.Random], str] | None  # None: another wording of a generator listed before
    pattern: re.Pattern[str]
    solve: Callable[[list[int]], str]


def _ints(match: re.Match[str]) -> list[int]:
    return [int(g) for g in match.groups()]


def _linear(rng: random.Random) -> str:
    a, x, b = rng.randint(2, 9), rng.choice([n for n in range(-6, 13) if n]), rng.randint(1, 15)
    if rng.random() < 0.5:
        return f"Solve {a}x + {b} = {a * x + b}."
    return f"Solve {a}x - {b} = {a * x - b}."


def _linear_answer(n: list[int], sign: str) -> str:
    a, b, c = n
    return f"x = {format_value(sympy.Rational(c - b if sign == '+' else c + b, a))}"


def _fraction_sum(rng: random.Random) -> str:
    b, d = rng.choice([(2, 3), (3, 4), (2, 5), (4, 8), (3, 6), (5, 10), (4, 6), (2, 7)])
    return f"What is {rng.randint(1, b - 1)}/{b} + {rng.randint(1, d - 1)}/{d}?"


def _percent_of(rng: random.Random) -> str:
    return f"What is {rng.choice([5, 10, 15, 20, 25, 30, 40, 50, 75])}% of {rng.choice(range(20, 401, 20))}?"


def _speed(rng: random.Random) -> str:
    speed, hours = rng.choice(range(20, 121, 5)), rng.randint(2, 6)
    return f"A car travels {speed * hours} km in {hours} hours. What is its average speed in km/h?"


def _rectangle(rng: random.Random) -> str:
    what = rng.choice(["area in cm²", "perimeter in cm"])
    return f"A rectangle is {rng.randint(3, 15)} cm by {rng.randint(2, 12)} cm. What is its {what}?"


def _hypotenuse(rng: random.Random) -> str:
    a, b, _c = rng.choice([(3, 4, 5), (5, 12, 13), (8, 15, 17), (7, 24, 25), (20, 21, 29)])
    k = rng.randint(1, 4) if a < 8 else 1
    return f"A right-angled triangle has shorter sides {a * k} cm and {b * k} cm. How long is the hypotenuse in cm?"


def _mean(rng: random.Random) -> str:
    values = [rng.randint(2, 30) for _ in range(4)]
    values[3] += -sum(values) % 4  # a whole-number mean
    return f"What is the mean of {values[0]}, {values[1]}, {values[2]} and {values[3]}?"


VARIANTS: tuple[_Variant, ...] = (
    _Variant("linear equations", _linear, re.compile(r"Solve (\d+)x \+ (\d+) = (-?\d+)\."),
             lambda n: _linear_answer(n, "+")),
    _Variant("linear equations", None, re.compile(r"Solve (\d+)x - (\d+) = (-?\d+)\."),
             lambda n: _linear_answer(n, "-")),
    _Variant("arithmetic", lambda r: f"What is {r.randint(2, 30)} + {r.randint(2, 12)} × {r.randint(2, 12)}?",
             re.compile(r"What is (\d+) \+ (\d+) × (\d+)\?"), lambda n: str(n[0] + n[1] * n[2])),
    _Variant("fractions", _fraction_sum, re.compile(r"What is (\d+)/(\d+) \+ (\d+)/(\d+)\?"),
             lambda n: format_value(sympy.Rational(n[0], n[1]) + sympy.Rational(n[2], n[3]))),
    _Variant("percentages", _percent_of, re.compile(r"What is (\d+)% of (\d+)\?"),
             lambda n: format_value(sympy.Rational(n[0] * n[1], 100))),
    _Variant("ratios and rates", _speed,
             re.compile(r"A car travels (\d+) km in (\d+) hours\. What is its average speed in km/h\?"),
             lambda n: format_value(sympy.Rational(n[0], n[1]))),
    _Variant("expanding brackets", lambda r: f"Expand {r.randint(2, 9)}(x + {r.randint(1, 12)}).",
             re.compile(r"Expand (\d+)\(x \+ (\d+)\)\."), lambda n: f"{n[0]}x + {n[0] * n[1]}"),
    _Variant("area and perimeter", _rectangle,
             re.compile(r"A rectangle is (\d+) cm by (\d+) cm\. What is its area in cm²\?"),
             lambda n: str(n[0] * n[1])),
    _Variant("area and perimeter", None,
             re.compile(r"A rectangle is (\d+) cm by (\d+) cm\. What is its perimeter in cm\?"),
             lambda n: str(2 * (n[0] + n[1]))),
    _Variant("pythagorean theorem", _hypotenuse,
             re.compile(r"A right-angled triangle has shorter sides (\d+) cm and (\d+) cm\. "
                        r"How long is the hypotenuse in cm\?"),
             lambda n: format_value(sympy.sqrt(n[0] ** 2 + n[1] ** 2))),
    _Variant("averages", _mean, re.compile(r"What is the mean of (\d+), (\d+), (\d+) and (\d+)\?"),
             lambda n: format_value(sympy.Rational(sum(n), 4))),
)  # fmt: skip


def variant_question(topic: str, rng: random.Random) -> Question | None:
    """A new maths question on ``topic`` with fresh numbers, or None for a topic without a generator."""
    makers = [v.make for v in VARIANTS if v.topic == topic and v.make is not None]
    if not makers:
        return None
    text = rng.choice(makers)(rng)
    return Question(MATHS_SUBJECT, topic, text, _solve_variant(text) or "")


def _solve_variant(text: str) -> str | None:
    for variant in VARIANTS:
        match = variant.pattern.search(text)
        if match:
            return variant.solve(_ints(match))
    return None


def check_questions(subject: str, topic: str) -> list[Question]:
    """The curriculum's check questions of a topic (empty for an unknown topic)."""
    found = get_curriculum().topic(subject, topic)
    if found is None:
        return []
    return [Question(subject, found.id, q.question, q.answer) for q in found.check_questions]


def answer_for(subject: str, topic: str, text: str) -> Question | None:
    """The question ``text`` of a topic with its expected answer: a curriculum check question,
    or a generated maths question recognised by its wording; None if it is neither."""
    for question in check_questions(subject, topic):
        if question.text == text:
            return question
    if subject == MATHS_SUBJECT:
        for variant in VARIANTS:
            match = variant.pattern.fullmatch(text)
            if match and variant.topic == topic:
                return Question(subject, topic, text, variant.solve(_ints(match)))
    return None


def find_asked_question(subject: str, tutor_text: str) -> Question | None:
    """The check question a tutor's reply asked (the last one in it), if it is one we can
    grade: a curriculum check question of the subject quoted in the reply, or a generated
    maths question. Any provider can be graded this way."""
    plain = tutor_text.replace("*", "").replace("_", "")
    best: tuple[int, Question] | None = None
    found_subject = get_curriculum().subject(subject)
    for topic in found_subject.topics if found_subject else ():
        for q in topic.check_questions:
            at = plain.rfind(q.question)
            if at >= 0 and (best is None or at > best[0]):
                best = (at, Question(found_subject.id, topic.id, q.question, q.answer))
    if found_subject is not None and found_subject.id == MATHS_SUBJECT:
        for variant in VARIANTS:
            for match in variant.pattern.finditer(plain):
                if best is None or match.start() > best[0]:
                    best = (match.start(), Question(MATHS_SUBJECT, variant.topic, match.group(0),
                                                    variant.solve(_ints(match))))  # fmt: skip
    return best[1] if best else None


def quiz_questions(subject: str, topic: str, answered: set[str], rng: random.Random, size: int = 5) -> list[Question]:
    """Questions for a "Quiz me" on a topic: the curriculum's check questions the student has
    not answered yet, then generated maths questions (never asked before) to make ``size``.
    A topic with no generator and every check question answered gives fewer, or none."""
    chosen = [q for q in check_questions(subject, topic) if clip_item(q.text) not in answered][:size]
    seen = {q.text for q in chosen} | answered
    tries = 0
    while len(chosen) < size and tries < 50 and subject == MATHS_SUBJECT:
        tries += 1
        question = variant_question(topic, rng)
        if question is None:
            break
        if clip_item(question.text) not in seen:
            seen.add(clip_item(question.text))
            chosen.append(question)
    return chosen


def clip_item(text: str) -> str:
    """The stored form of a problem or question: single-spaced, at most ``ITEM_MAX_CHARS``."""
    return " ".join(text.split())[:ITEM_MAX_CHARS]
