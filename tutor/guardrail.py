"""The guardrail every provider shares: does a finished reply give away the final answer?

Research on AI tutoring (Bastani et al., PNAS 2025) found that unrestricted answers raised
practice scores but lowered exam scores; hints did no harm. So each finished reply is
checked against the problem the student brought, and the verdict is stored on the message
(``answer_revealed``) for the quality chart. A reply that confirms an answer the student
already proposed is not a give-away.
"""

from __future__ import annotations

import re
from functools import lru_cache

import sympy

from .problems import Problem, check, find_problem, find_proposal, format_value


def active_problem(student_messages: list[str]) -> tuple[Problem, int] | None:
    """The most recent problem the student brought, and the index of that message."""
    for index in range(len(student_messages) - 1, -1, -1):
        problem = find_problem(student_messages[index])
        if problem is not None:
            return problem, index
    return None


def reveals_answer(student_messages: list[str], reply: str) -> bool | None:
    """True if ``reply`` states the final answer to the student's problem; None if there is
    no problem we can solve in the conversation (the reply is then unchecked)."""
    found = active_problem(student_messages)
    if found is None:
        return None
    problem, index = found
    for later in student_messages[index:]:
        proposal = find_proposal(later) if find_problem(later) is None else None
        if proposal is not None and check(problem, proposal).correct:
            return False  # the student got there first: confirming is teaching
    return mentions_answer(problem, reply, student_messages[index])


@lru_cache(maxsize=4096)
def _value_patterns(value: sympy.Expr) -> tuple[str, ...]:
    """The ways a value may be written in a reply, as regexes (cached: nsimplify is slow)."""
    value = sympy.nsimplify(value)
    texts = {format_value(value)}
    if not value.is_integer:
        decimal = f"{float(value):.6f}".rstrip("0").rstrip(".")
        if len(decimal) <= 8:
            texts.add(decimal)
    # 7/8 written "7 / 8"; a number must not be part of a longer number.
    return tuple(r"(?<![\d./])" + re.escape(t).replace("/", r"\s*/\s*") + r"(?![\w]|\.\d|\s*/\s*\d)" for t in texts)


def mentions_answer(problem: Problem, reply: str, problem_text: str) -> bool:
    text = reply.lower().replace("*", "").replace("−", "-")
    for value in _value_patterns(problem.answer):
        if problem.kind == "equation":
            var = re.escape(problem.variable or "x")
            if re.search(rf"(?<![a-z]){var}\s*(?:=|is|equals|must be)\s*{value}", text):
                return True
        if re.search(
            rf"(?:=|\bis\b|\bequals\b|\banswer\b[^.\n]{{0,20}}?|\bget\b|\bgives\b|\bmakes\b)\s*\$?{value}", text
        ):
            return True
        # A distinctive answer (a fraction or several digits) that is not in the question.
        plain = format_value(problem.answer)
        distinctive = "/" in plain or len(plain.lstrip("-")) >= 3
        if distinctive and re.search(value, text) and not re.search(value, problem_text.lower()):
            return True
    return False
