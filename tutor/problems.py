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
    kind: str  # equation | arithmetic | fraction | simplify | percentage | rate | geometry
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
            "geometry": "area and perimeter",
        }[self.kind]

    def answer_text(self) -> str:
        value = format_value(self.answer)
        if self.kind == "equation":
            return f"{self.variable} = {value}"
        if self.kind == "rate" and self.unit:
            return f"{value} {self.unit}"
        if self.kind == "geometry":
            exact = value.replace("*pi", "π")
            if self.answer.has(sympy.pi):
                exact += f" ≈ {float(self.answer):.2f}"
            return f"{exact} {self.unit}" if self.unit else exact
        return value


def format_value(value: sympy.Expr) -> str:
    value = sympy.nsimplify(value)
    if isinstance(value, sympy.Rational) and not isinstance(value, sympy.Integer):
        return f"{value.p}/{value.q}"
    return str(value)


def _clean(text: str) -> str:
    text = text.replace("×", "*").replace("÷", " / ").replace("−", "-").replace("–", "-").replace("^", "**")
    text = text.replace("π", " pi ").replace("²", "")
    for words, symbol in ((r"times|multiplied\s+by", "*"), (r"divided\s+by|over", "/"), ("plus", "+"), ("minus", "-")):
        text = re.sub(rf"(?<=\d)\s*\b(?:{words})\b\s*(?=\d)", f" {symbol} ", text)
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
    return (
        _percentage(cleaned)
        or _rate(cleaned)
        or _geometry(cleaned)
        or _equation(cleaned)
        or _simplify(cleaned)
        or _expression(cleaned)
    )


def find_claim(text: str) -> tuple[Problem, sympy.Expr, str] | None:
    """A worked sum with its result ("i think 3/4 + 2/3 = 5/7", "12 x 7 = 84?"): the problem
    on the left, the value the student claims and that value as written; None otherwise."""
    cleaned = _clean(text.lower()).replace(",", "")
    match = re.search(rf"([\d(][\d\s.+\-*/()]*[\d)])\s*=\s*({_NUM})(?![\d./])", cleaned)
    if not match:
        return None
    problem = _expression(match.group(1))
    value = _parse(match.group(2))
    if problem is None or value is None:
        return None
    return problem, sympy.nsimplify(value), match.group(2).replace(" ", "")


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


_LENGTH_UNIT = r"(?:\s*(mm|cm|m|km|in|ft)\b)?"


def _dimension(text: str, *names: str) -> tuple[sympy.Expr, str | None] | None:
    for name in names:
        match = re.search(rf"\b{name}s?\b(?:\s+(?:of|is|=|length|:))*\s*({_NUM}){_LENGTH_UNIT}", text)
        if match:
            return sympy.nsimplify(match.group(1)), match.group(2)
    return None


def _geometry(text: str) -> Problem | None:
    """Area, perimeter or circumference of a circle, rectangle, square or triangle."""
    match = re.search(r"\b(area|perimeter|circumference)\b.{0,40}?\b(circle|rectangle|square|triangle)\b", text)
    if not match:
        return None
    quantity, shape = match.groups()
    rest = text[match.end() :]
    dims: dict[str, sympy.Expr] = {}
    unit: str | None = None
    if shape == "circle":
        found = _dimension(rest, "radius", "r")
        if found:
            dims["radius"], unit = found
        elif found := _dimension(rest, "diameter", "d"):
            dims["radius"], unit = found[0] / 2, found[1]
        else:
            return None
        r = dims["radius"]
        value = sympy.pi * r**2 if quantity == "area" else 2 * sympy.pi * r
    elif shape in {"rectangle", "square"}:
        by = re.search(rf"({_NUM}){_LENGTH_UNIT}\s*(?:by|\*|x)\s*({_NUM}){_LENGTH_UNIT}", rest)
        length, width = _dimension(rest, "length", "long"), _dimension(rest, "width", "wide", "breadth")
        side = _dimension(rest, "side", "sides", "side length")
        if by:
            a, b, unit = sympy.nsimplify(by.group(1)), sympy.nsimplify(by.group(3)), by.group(2) or by.group(4)
        elif length and width:
            (a, unit), (b, _u) = length, width
        elif side:
            (a, unit), b = side, side[0]
        else:
            return None
        if shape == "square" and not by:
            b = a
        dims = {"side": a} if a == b and shape == "square" else {"length": a, "width": b}
        if quantity == "circumference":
            return None
        value = a * b if quantity == "area" else 2 * (a + b)
    else:  # triangle: area from base and height
        base, height = _dimension(rest, "base"), _dimension(rest, "height", "perpendicular height")
        if quantity != "area" or not base or not height:
            return None
        (b, unit), (h, _u) = base, height
        dims = {"base": b, "height": h}
        value = b * h / 2
    shown = f"{quantity} of a {shape} with " + " and ".join(
        f"{k} {format_value(v)}{' ' + unit if unit else ''}" for k, v in dims.items()
    )
    unit_text = (f"{unit}²" if quantity == "area" else unit) if unit else None
    return Problem("geometry", shown, value, unit=unit_text, parts=(quantity, shape, tuple(dims.items())))


def _expression(text: str) -> Problem | None:
    candidates = re.findall(r"[\d(][\d\s.+\-*/()]*[\d)]", text)
    for candidate in sorted(candidates, key=len, reverse=True):
        if not re.search(r"\d\s*[-+*/]\s*[\d(]|\)\s*[-+*/]", candidate):
            continue
        if re.fullmatch(r"\s*\d+/\d+\s*", candidate):
            continue  # a single fraction is an answer ("I got 7/8"), not a problem; "144 / 12" is a division
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


_ANSWER = rf"({_NUM}(?:\s*\*?\s*pi\b)?)"
_PROPOSAL_PATTERNS = [
    # "x = 2", "so x is 2?", "y equals 3"
    rf"(?<![a-z'])([{_VARS}])\s*(?:=|is|equals|must\s+be)\s*{_ANSWER}\s*%?",
    # "is the answer 391?", "I think it's 28.27", "I got 7/8", "would it be 60?", "my answer is 14"
    rf"\b(?:i\s+got|i\s+get|i\s+make\s+it|i\s+think(?:\s+(?:it'?s|it\s+is|the\s+answer\s+is|that'?s|its))?|"
    rf"i\s+reckon|(?:is|was|would|could|should|will)\s+(?:it|that|this)(?:\s+be)?|is\s+the\s+answer|"
    rf"answer'?s|answer\s+(?:is|=|would\s+be)|that'?s|it'?s|its|it\s+is|equals|=|makes|gives|maybe|"
    rf"probably|must\s+be|so)\s*:?\s*(?:[{_VARS}]\s*=\s*)?{_ANSWER}\s*%?",
    # a number alone: "391", "28.27?", "5/7 cm"
    rf"^\s*{_ANSWER}\s*%?\s*(?:[a-z]{{0,3}}²?)?\s*[?.!]*\s*(?:right|correct|is that right|is that correct)?\s*[?.!]*\s*$",
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
    if sympy.simplify(proposal - problem.answer) == 0 or _rounded_match(problem.answer, proposal):
        return Verdict(True)
    return Verdict(False, _slip(problem, proposal))


def _rounded_match(answer: sympy.Expr, proposal: sympy.Expr) -> bool:
    """A decimal with at least two places is right if the exact answer rounds to it, when that
    answer has no exact decimal (9π, 1/3); with π taken as 3.14 too, as many pupils are taught."""
    if not isinstance(proposal, sympy.Rational) or proposal.q == 1:
        return False
    places = next((d for d in range(7) if (proposal * 10**d).q == 1), None)  # decimal places as written
    if places is None or places < 2:
        return False
    exact = sympy.nsimplify(answer)
    if (
        isinstance(exact, sympy.Rational)
        and not (exact.q // (2 ** sympy.multiplicity(2, exact.q))) // (5 ** sympy.multiplicity(5, exact.q)) - 1
    ):
        return False  # 7/8 is exactly 0.875: an approximation is not the answer
    candidates = [exact]
    if exact.has(sympy.pi):
        candidates.append(exact.subs(sympy.pi, sympy.Rational(314, 100)))
    return any(abs(sympy.N(c, 30) - proposal) <= sympy.Rational(1, 2 * 10**places) for c in candidates)


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
    if problem.kind == "geometry":
        quantity, shape, dims = problem.parts
        d = dict(dims)
        if shape in {"rectangle", "square"}:
            other = 2 * (d.get("length", d.get("side")) + d.get("width", d.get("side")))
            if quantity == "perimeter":
                other = d.get("length", d.get("side")) * d.get("width", d.get("side"))
            if proposal == other:
                return "area or perimeter"
        if shape == "circle":
            r = d["radius"]
            swapped = 2 * sympy.pi * r if quantity == "area" else sympy.pi * r**2
            if sympy.simplify(proposal - swapped) == 0 or _rounded_match(swapped, proposal):
                return "circle formula"
            if sympy.simplify(proposal - sympy.pi * r * 2) == 0 or _rounded_match(sympy.pi * r * 2, proposal):
                return "circle formula"
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
