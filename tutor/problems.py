"""Recognising the problem a student brings, and checking a proposed answer, with sympy.

Shared by the builtin tutor (to hint and to check) and the guardrail (to know what "the
final answer" is, whatever provider wrote the reply). Everything here is exact: sympy
rationals, no floating-point comparisons of answers that are fractions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

import sympy
from sympy.parsing.sympy_parser import (
    convert_xor,
    implicit_multiplication_application,
    parse_expr,
    standard_transformations,
)

_TRANSFORMS = (*standard_transformations, implicit_multiplication_application, convert_xor)
_NUM = r"-?\d+(?:\.\d+)?(?:\s*/\s*\d+)?"
_VARS = "xyzabnmtpqk"


@dataclass(frozen=True)
class Problem:
    kind: str  # equation | arithmetic | fraction | simplify | percentage | rate
    display: str  # the problem as the student wrote it (tidied)
    answer: sympy.Expr
    variable: str | None = None
    unit: str | None = None  # for rates, e.g. "km per hour"
    parts: tuple = ()  # numbers the slip detector needs

    @property
    def topic(self) -> str:
        return {
            "equation": "linear equations",
            "arithmetic": "arithmetic",
            "fraction": "fractions",
            "simplify": "fractions",
            "percentage": "percentages",
            "rate": "ratios and rates",
        }[self.kind]

    def answer_text(self) -> str:
        value = format_value(self.answer)
        if self.kind == "equation":
            return f"{self.variable} = {value}"
        if self.kind == "rate" and self.unit:
            return f"{value} {self.unit}"
        return value


def format_value(value: sympy.Expr) -> str:
    value = sympy.nsimplify(value)
    if isinstance(value, sympy.Rational) and not isinstance(value, sympy.Integer):
        return f"{value.p}/{value.q}"
    return str(value)


def _clean(text: str) -> str:
    text = text.replace("×", "*").replace("÷", "/").replace("−", "-").replace("–", "-").replace("^", "**")
    return re.sub(r"(?<=\d)\s*[xX]\s*(?=\d)", "*", text)  # 12 x 7 means times


def _parse(expr: str) -> sympy.Expr | None:
    expr = expr.strip().rstrip("?.!,").strip()
    if not expr or len(expr) > 120 or not re.fullmatch(r"[\d\s.+\-*/()a-z]+", expr):
        return None
    try:
        return parse_expr(expr, transformations=_TRANSFORMS, evaluate=True)
    except Exception:  # noqa: BLE001 - anything sympy cannot read is simply not a problem
        return None


@lru_cache(maxsize=4096)
def find_problem(text: str) -> Problem | None:
    """The mathematical problem in a student's message, if there is one we can solve.

    Cached by text: the guardrail reads a session's earlier messages again for every reply,
    and sympy takes milliseconds per parse (``Problem`` is immutable).
    """
    raw = text.lower()
    cleaned = _clean(raw)
    return _percentage(cleaned) or _rate(cleaned) or _equation(cleaned) or _simplify(cleaned) or _expression(cleaned)


def _equation(text: str) -> Problem | None:
    for match in re.finditer(r"([\d\s.+\-*/()" + _VARS + r"]+)=([\d\s.+\-*/()" + _VARS + r"]+)", text):
        left_s, right_s = match.group(1).strip(), match.group(2).strip().rstrip("?.!,")
        letters = set(re.findall(r"(?<![a-z])([" + _VARS + r"])(?![a-z])", left_s + " " + right_s))
        if len(letters) != 1:
            continue
        var = letters.pop()
        # "x = 9" alone is an answer, not a problem.
        if re.fullmatch(rf"{var}", left_s) and _parse(right_s) is not None and not re.search(var, right_s):
            continue
        left, right = _parse(left_s), _parse(right_s)
        if left is None or right is None:
            continue
        symbol = sympy.Symbol(var)
        try:
            poly = sympy.Poly(left - right, symbol)
        except sympy.PolynomialError:
            continue
        if poly.degree() != 1:
            continue
        (solution,) = sympy.solve(sympy.Eq(left, right), symbol)
        a, b = poly.all_coeffs()
        return Problem("equation", f"{left_s} = {right_s}", sympy.nsimplify(solution), var, parts=(a, b, left, right))
    return None


def _expression(text: str) -> Problem | None:
    candidates = re.findall(r"[\d(][\d\s.+\-*/()]*[\d)]", text)
    for candidate in sorted(candidates, key=len, reverse=True):
        if not re.search(r"\d\s*[-+*/]\s*[\d(]|\)\s*[-+*/]", candidate):
            continue
        if re.fullmatch(r"\s*\d+\s*/\s*\d+\s*", candidate):
            continue  # a single fraction is an answer ("I got 7/8"), not a problem
        value = _parse(candidate)
        if value is None or not value.is_number:
            continue
        fractions = re.findall(r"\d+/\d+", candidate)  # fractions are written tight: 3/4
        kind = "fraction" if fractions and re.search(r"[-+]", candidate) else "arithmetic"
        return Problem(kind, re.sub(r"\s+", " ", candidate.strip()), sympy.nsimplify(value), parts=(candidate,))
    return None


def _simplify(text: str) -> Problem | None:
    match = re.search(r"(?:simplify|reduce|lowest terms)\D*?(\d+)\s*/\s*(\d+)", text) or re.search(
        r"(\d+)\s*/\s*(\d+)\D*(?:simplif|lowest terms|reduce)", text
    )
    if not match or int(match.group(2)) == 0:
        return None
    value = sympy.Rational(int(match.group(1)), int(match.group(2)))
    return Problem("simplify", f"{match.group(1)}/{match.group(2)}", value)


def _percentage(text: str) -> Problem | None:
    match = re.search(rf"({_NUM})\s*(?:%|percent)\s*of\s*\$?({_NUM})", text)
    if match:
        pct, whole = sympy.nsimplify(match.group(1)), sympy.nsimplify(match.group(2))
        return Problem("percentage", f"{match.group(1)}% of {match.group(2)}", pct * whole / 100, parts=(pct, whole))
    match = re.search(rf"what\s+percent(?:age)?\s+(?:is|of)\s+({_NUM})\s+(?:is\s+)?(?:of|out of)\s+({_NUM})", text)
    if match:
        part, whole = sympy.nsimplify(match.group(1)), sympy.nsimplify(match.group(2))
        if whole != 0:
            return Problem(
                "percentage", f"{match.group(1)} as a percentage of {match.group(2)}", part * 100 / whole, unit="%"
            )
    return None


_TIME_UNITS = {"hour": "hour", "hours": "hour", "h": "hour", "minute": "minute", "minutes": "minute", "min": "minute",
               "second": "second", "seconds": "second", "s": "second", "day": "day", "days": "day"}  # fmt: skip


def _rate(text: str) -> Problem | None:
    match = re.search(
        rf"({_NUM})\s*(km|kilometres|kilometers|miles|m|metres|meters|pages|words|litres|liters)\s+in\s+({_NUM})\s*(hours?|h|minutes?|min|seconds?|s|days?)\b",
        text,
    )
    if not match:
        return None
    amount, time = sympy.nsimplify(match.group(1)), sympy.nsimplify(match.group(3))
    if time == 0:
        return None
    unit = f"{match.group(2)} per {_TIME_UNITS[match.group(4)]}"
    return Problem(
        "rate", f"{match.group(1)} {match.group(2)} in {match.group(3)} {match.group(4)}", amount / time, unit=unit
    )


# ----------------------------------------------------------------------------- proposals


_PROPOSAL_PATTERNS = [
    rf"\b([{_VARS}])\s*=\s*({_NUM})\s*%?",
    rf"\b(?:i\s+got|i\s+get|i\s+think\s+it'?s|is\s+it|it'?s|it\s+is|answer\s+is|equals|=|makes|gives)\s*:?\s*(?:[{_VARS}]\s*=\s*)?({_NUM})\s*%?",
    rf"^\s*({_NUM})\s*%?\s*[?.!]*\s*$",
]


def find_proposal(text: str) -> sympy.Expr | None:
    """A value the student proposes as the answer ("x = 2", "I got 7/8", "is it 42?")."""
    found = find_proposal_with_text(text)
    return found[0] if found else None


def find_proposal_with_text(text: str) -> tuple[sympy.Expr, str] | None:
    """The proposed value and the number as the student wrote it."""
    lowered = _clean(text.lower()).replace(",", "")
    for pattern in _PROPOSAL_PATTERNS:
        match = re.search(pattern, lowered)
        if match:
            number = match.groups()[-1].replace(" ", "")
            value = _parse(number)
            if value is not None and value.is_number:
                return sympy.nsimplify(value), number
    return None


@dataclass(frozen=True)
class Verdict:
    correct: bool
    slip: str | None = None


def check(problem: Problem, proposal: sympy.Expr) -> Verdict:
    """Exact comparison; for a wrong answer, a guess at the slip behind it."""
    if sympy.simplify(proposal - problem.answer) == 0:
        return Verdict(True)
    return Verdict(False, _slip(problem, proposal))


def _slip(problem: Problem, proposal: sympy.Expr) -> str | None:
    if proposal == -problem.answer and problem.answer != 0:
        return "sign"
    if problem.kind == "equation":
        a, _b, left, right = problem.parts
        var = sympy.Symbol(problem.variable)
        c = sympy.expand(left).subs(var, 0)  # constant on the left: a x + c = d
        d = sympy.expand(right).subs(var, 0)
        if a:
            if proposal == (d + c) / a:  # added the constant instead of taking it away
                return "sign"
            if proposal == d - c:  # stopped before dividing by the coefficient
                return "divide"
            if proposal == d / a - c:  # divided only one term
                return "order of operations"
    if problem.kind == "fraction":
        fractions = [tuple(map(int, f.split("/"))) for f in re.findall(r"\d+/\d+", problem.parts[0].replace(" ", ""))]
        if len(fractions) == 2 and "+" in problem.parts[0]:
            (a, b), (c, d) = fractions
            if d and b and proposal == sympy.Rational(a + c, b + d):
                return "common denominator"
    if problem.kind == "arithmetic" and proposal == _left_to_right(problem.parts[0]):
        return "order of operations"
    if problem.kind == "percentage" and problem.parts:
        pct, whole = problem.parts
        if proposal in {pct * whole, whole / pct if pct else None}:
            return "percent means per hundred"
    return None


def _left_to_right(expr: str) -> sympy.Expr | None:
    tokens = re.findall(r"\d+(?:\.\d+)?|[-+*/]", expr.replace(" ", ""))
    if "(" in expr or len(tokens) < 3:
        return None
    try:
        value = sympy.nsimplify(tokens[0])
        for op, num in zip(tokens[1::2], tokens[2::2], strict=False):
            n = sympy.nsimplify(num)
            value = {"+": value + n, "-": value - n, "*": value * n, "/": value / n if n else value}[op]
        return value
    except (TypeError, ValueError, ZeroDivisionError):
        return None
