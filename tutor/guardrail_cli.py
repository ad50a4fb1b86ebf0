"""``flask --app app guardrail judge FILE``: the guardrail over a file of dialogues, offline.

Each line of FILE is a JSON object with ``id``, ``problem``, ``reference_answer``,
``conversation`` (``[{"role": "tutor" | "student", "content": ...}]``) and ``reply`` (the
format of MRBench-derived evaluation files; any ``label`` is ignored). One line per row is
written to stdout: ``{"id": ..., "reveals_answer": true | false | null}`` (null: could not be
judged). No database, queue or AI provider is touched.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

import click
from flask import Flask
from flask.cli import AppGroup

from .answers import parse_answer
from .guardrail import Verdict, judge, student_problem_verdict

guardrail_cli = AppGroup("guardrail", help="The answer guardrail, offline.")


class RowError(ValueError):
    pass


def _turns(row: dict[str, Any]) -> list[tuple[str, str]]:
    conversation = row.get("conversation") or []
    if not isinstance(conversation, list):
        raise RowError("'conversation' must be a list of {role, content} objects")
    turns = []
    for turn in conversation:
        if not isinstance(turn, dict) or turn.get("role") not in ("tutor", "student"):
            raise RowError("each conversation turn needs a role of 'tutor' or 'student'")
        turns.append((turn["role"], str(turn.get("content") or "")))
    return turns


def judge_row(row: dict[str, Any]) -> Verdict:
    """The new guardrail's verdict on one row of a judge file."""
    if not isinstance(row.get("reply"), str):
        raise RowError("'reply' must be a string")
    reference = parse_answer(row.get("reference_answer"), "reference")
    answers = [reference] if reference is not None else []
    problem = str(row.get("problem") or "")
    turns = _turns(row)
    if problem and not any(problem in content for _, content in turns):
        turns.insert(0, ("tutor", problem))
    return judge(turns, row["reply"], answers=answers, problem=problem)


def baseline_row(row: dict[str, Any]) -> bool | None:
    """The first guardrail's verdict (sympy on the student's messages only), for comparison."""
    students = [content for role, content in _turns(row) if role == "student"]
    return student_problem_verdict(students, row["reply"])


def read_rows(lines: Iterable[str]) -> Iterator[dict[str, Any]]:
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise click.ClickException(f"line {number}: not JSON ({exc.msg})") from None
        if not isinstance(row, dict) or "id" not in row:
            raise click.ClickException(f"line {number}: expected an object with an 'id'")
        row["_line"] = number
        yield row


@guardrail_cli.command("judge")
@click.argument("file", type=click.File("r", encoding="utf-8"))
def judge_command(file) -> None:  # type: ignore[no-untyped-def]
    """Judge each reply in FILE (JSONL; '-' reads stdin): does it give the answer away?"""
    for row in read_rows(file):
        try:
            verdict = judge_row(row)
        except RowError as exc:
            raise click.ClickException(f"line {row['_line']}: {exc}") from None
        click.echo(json.dumps({"id": row["id"], "reveals_answer": verdict.reveals}))


def init_app(app: Flask) -> None:
    app.cli.add_command(guardrail_cli)
