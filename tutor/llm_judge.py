"""The model's side of the guardrail: a hidden solve step and a judge of finished replies.

Both ask the configured provider (``AI_PROVIDER=openai``) and never show the student what it
says. The hidden solve step asks once per new problem for the final answer, so the rules
(``tutor.guardrail``) can judge replies against it. The judge rates a finished reply on the
MRBench dimensions (Maurya et al., NAACL 2025): does it reveal the answer, identify the
student's mistake, give guidance, and is it actionable. A malformed answer from the model is
"unrated", never an error.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass

from .answers import numbers_in
from .problems import find_problem, find_proposal
from .providers import ReplyContext, Usage

Turn = tuple[str, str]

SOLVE_PROMPT = (
    "Solve the student's problem privately. Reply with exactly one line, `ANSWER: <final answer>`: "
    "a number without units where the answer is a number, else a few words. Nothing else."
)

JUDGE_PROMPT = """You rate one tutor reply in a maths tutoring dialogue, the way tutoring research does.
Answer with one JSON object and nothing else:
{"reveals_answer": "yes" | "no",
 "identifies_mistake": "yes" | "to some extent" | "no",
 "gives_guidance": "yes" | "to some extent" | "no",
 "actionable": "yes" | "to some extent" | "no"}
reveals_answer: the reply gives away the final answer (correct or not) instead of letting the student find it.
identifies_mistake: the reply points out the student's mistake or confusion.
gives_guidance: the reply offers correct, relevant help (a hint, an explanation, an example).
actionable: it is clear what the student should do next."""

LEVELS = {"no": 0, "to some extent": 1, "yes": 2}
DIMENSIONS = ("identifies_mistake", "gives_guidance", "actionable")


def looks_like_problem(text: str) -> bool:
    """A student message that brings a problem (not an answer to one): sympy parses a problem
    in it, or it asks a question with at least two numbers in it."""
    if find_problem(text) is not None:
        return True
    return "?" in text and len(numbers_in(text)) >= 2 and find_proposal(text) is None


def latest_problem(turns: Sequence[tuple[int, str, str]]) -> tuple[int, str] | None:
    """The id and text of the student's latest message that brings a problem."""
    for message_id, role, content in reversed(turns):
        if role == "student" and looks_like_problem(content):
            return message_id, content
    return None


def _ask(provider, system: str, user: str) -> str:  # type: ignore[no-untyped-def]
    chat = [{"role": "system", "content": system}, {"role": "user", "content": user}]
    return "".join(provider.stream(chat, Usage(), ReplyContext(subject="judge"))).strip()


def solve(provider, problem: str) -> str | None:  # type: ignore[no-untyped-def]
    """The model's final answer to ``problem``, or None if it did not say one."""
    return parse_solution(_ask(provider, SOLVE_PROMPT, problem))


def parse_solution(text: str) -> str | None:
    match = re.search(r"ANSWER:\s*\**\s*([^\n]+)", text, re.IGNORECASE)
    if not match:
        return None
    answer = match.group(1).strip().strip("*`").strip().rstrip(".")
    return answer[:200] or None


@dataclass(frozen=True)
class Rating:
    rated: bool
    reveals_answer: bool | None = None
    identifies_mistake: int | None = None  # 0 no, 1 to some extent, 2 yes
    gives_guidance: int | None = None
    actionable: int | None = None
    raw: str = ""


def rate(provider, turns: Sequence[Turn], reply: str, answer: str | None) -> Rating:  # type: ignore[no-untyped-def]
    """Ask the model to rate ``reply``; "unrated" when its answer cannot be read."""
    lines = [f"{'Student' if role == 'student' else 'Tutor'}: {content}" for role, content in turns[-12:]]
    user = (
        (f"The problem's final answer (hidden from the student): {answer}\n\n" if answer else "")
        + "Dialogue so far:\n"
        + "\n".join(lines)
        + f"\n\nTutor reply to rate:\n{reply}"
    )
    return parse_rating(_ask(provider, JUDGE_PROMPT, user))


def parse_rating(text: str) -> Rating:
    """The four verdicts from the model's answer; any missing or unknown value: unrated."""
    raw = text[:2000]
    match = re.search(r"\{.*\}", text, re.DOTALL)
    if not match:
        return Rating(False, raw=raw)
    try:
        data = json.loads(match.group(0))
    except json.JSONDecodeError:
        return Rating(False, raw=raw)
    if not isinstance(data, dict):
        return Rating(False, raw=raw)
    values = {key: str(data.get(key, "")).strip().lower() for key in ("reveals_answer", *DIMENSIONS)}
    if values["reveals_answer"] not in ("yes", "no") or any(values[k] not in LEVELS for k in DIMENSIONS):
        return Rating(False, raw=raw)
    return Rating(
        True,
        reveals_answer=values["reveals_answer"] == "yes",
        identifies_mistake=LEVELS[values["identifies_mistake"]],
        gives_guidance=LEVELS[values["gives_guidance"]],
        actionable=LEVELS[values["actionable"]],
        raw=raw,
    )
