"""What the answer *is*: numbers as people write them, and the answer to the question asked.

The guardrail judges a reply against the answer, and the answer comes from several places:
a reference answer (the judge file, the hidden solve step), a curriculum check question the
tutor asked, sympy on the student's problem, or sympy on the tutor's own question ("What is
the product of 26 and 6?"). This module turns each into a comparable value: an exact
``Fraction`` for numbers ("$2,520,000", "7/8", "0.875", "twelve", "50%"), else the
lower-cased words for answers such as "pentagon".
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache

from .problems import find_problem

_WORDS = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
    "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15,
    "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19, "twenty": 20, "thirty": 30,
    "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90, "hundred": 100,
    "thousand": 1000,
}  # fmt: skip
_WORD_RE = "|".join(sorted(_WORDS, key=len, reverse=True))

# A number as written in a reply: "$1,260.00", "2,520,000", "7/8", "0.875", "-3", "twelve".
# Thousands separators only in groups of three, so "3, 13 and 39" stays three numbers.
NUMBER = re.compile(
    r"(?<![\w.,/])(-?)\$?(\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?(?:\s*/\s*\d+(?!\d|\.\d))?|\.\d+)(?![\w/]|\.\d)"
    rf"|\b({_WORD_RE})\b",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Mention:
    value: Fraction
    start: int
    end: int


def to_fraction(token: str) -> Fraction | None:
    """The exact value of one written number, or None."""
    token = token.strip().lower().replace("$", "").replace(",", "").rstrip("%").strip()
    if token in _WORDS:
        return Fraction(_WORDS[token])
    try:
        if "/" in token:
            top, bottom = (part.strip() for part in token.split("/", 1))
            return Fraction(int(top), int(bottom)) if int(bottom) else None
        return Fraction(token)
    except (ValueError, ZeroDivisionError):
        return None


def numbers_in(text: str) -> list[Mention]:
    """Every number written in ``text``, with where it stands."""
    found = []
    for match in NUMBER.finditer(text):
        value = to_fraction(match.group(3) or match.group(1) + match.group(2))
        if value is not None:
            found.append(Mention(value, match.start(), match.end()))
    return found


def values_in(text: str) -> set[Fraction]:
    return {m.value for m in numbers_in(text)}


@dataclass(frozen=True)
class Answer:
    """A final answer the reply is judged against, and where it came from."""

    value: Fraction | None  # numbers
    words: str | None  # a word answer ("pentagon"), lower-case
    source: str  # reference | solve | curriculum | problem | question

    def found_in(self, text: str) -> list[tuple[int, int]]:
        """Where in ``text`` the answer is written (start and end offsets)."""
        if self.value is not None:
            return [(m.start, m.end) for m in numbers_in(text) if m.value == self.value]
        assert self.words is not None
        return [m.span() for m in re.finditer(rf"(?<!\w){re.escape(self.words)}(?!\w)", text.lower())]

    def written_in(self, text: str) -> bool:
        """Loosely: is the answer written anywhere in ``text``, also as a coefficient ("2x")?"""
        if self.found_in(text):
            return True
        if self.value is None or self.value.denominator != 1:
            return False
        return re.search(rf"(?<![\d.]){self.value.numerator}(?![\d]|\.\d)", text.replace(",", "")) is not None


def parse_answer(text: str | None, source: str) -> Answer | None:
    """An answer as stored or given ("$2,520,000", "x = 4", "7/8", "pentagon")."""
    if text is None:
        return None
    cleaned = text.strip().rstrip(".").strip()
    if not cleaned:
        return None
    cleaned = re.sub(r"^(?:[a-z]\s*=\s*|the answer is\s*)", "", cleaned, flags=re.IGNORECASE)
    mentions = numbers_in(cleaned)
    if mentions:
        # "18 vacuum cleaners" or "$96": the last number is the answer.
        return Answer(mentions[-1].value, None, source)
    words = " ".join(cleaned.lower().split())
    if len(words) > 40:
        return None  # a sentence, not an answer we can look for
    return Answer(None, words, source)


def from_value(value: object, source: str) -> Answer | None:
    """An answer from a sympy number (the student's problem, solved)."""
    try:
        return Answer(Fraction(str(value)), None, source)
    except (TypeError, ValueError, ZeroDivisionError):
        return None


# ----------------------------------------------------------------------------- the question asked

# Words for the operations, turned into symbols so sympy (through ``find_problem``) can solve
# the questions tutors ask in words.
_PHRASES = [
    (r"\bproduct(?: value)? of (\S+) and (\S+)", r"\1 * \2"),
    (r"\bsum of (\S+) and (\S+)", r"\1 + \2"),
    (r"\bdifference (?:between|of) (\S+) and (\S+)", r"\1 - \2"),
    (r"\bsubtract (\S+) from (\S+)", r"\2 - \1"),
    (r"\bquotient of (\S+) and (\S+)", r"\1 / \2"),
    (r"\b(?:multiplied by|times)\b", "*"),
    (r"\bdivided by\b", "/"),
    (r"\b(?:minus|take away)\b", "-"),
    (r"\b(?:plus|added to)\b", "+"),
]
_HOW_MANY_TIMES = re.compile(r"how many (?:times|groups of) (\d+) (?:goes?|go|fits?|can \w+) (?:in|into) (\d+)")
_ROUND = re.compile(r"round (?:the number )?(\d+) to the nearest (ten|hundred|thousand)")
_PLACE_VALUE = re.compile(r"value of (?:the (?:digit )?)?(\d) in (?:the number )?([\d,]+)")


@lru_cache(maxsize=4096)
def answer_to_question(question: str) -> Answer | None:
    """The answer to an arithmetic question the tutor asked, worked out with sympy."""
    text = question.lower().replace("×", "*").replace("÷", "/")
    text = re.sub(r"(?<=\d),(?=\d{3}\b)", "", text)
    text = re.sub(r"\b(centimet(?:er|re)s?|met(?:er|re)s?|cm|km|kg|grams?|dollars?|cents?)\b", "", text)
    text = re.sub(r"[=_]+\s*\?|\?", " ", text)
    if match := _HOW_MANY_TIMES.search(text):
        divisor, whole = int(match.group(1)), int(match.group(2))
        return Answer(Fraction(whole // divisor), None, "question") if divisor else None
    if match := _ROUND.search(text):
        step = {"ten": 10, "hundred": 100, "thousand": 1000}[match.group(2)]
        number = int(match.group(1))
        return Answer(Fraction((number + step // 2) // step * step), None, "question")
    if match := _PLACE_VALUE.search(text):
        digit, number = match.group(1), match.group(2).replace(",", "")
        if digit in number:
            place = len(number) - 1 - number.index(digit)
            return Answer(Fraction(int(digit) * 10**place), None, "question")
    for pattern, replacement in _PHRASES:
        text = re.sub(pattern, replacement, text)
    problem = find_problem(text)
    if problem is None or problem.kind in {"simplify"}:
        return None
    return from_value(problem.answer, "question")
