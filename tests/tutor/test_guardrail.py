"""The answer-aware guardrail and ``flask guardrail judge`` on hand-written dialogues.

(The labelled evaluation data is not needed here: bench/guardrail_eval.py measures on it.)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import pytest

from tutor.answers import answer_to_question, numbers_in, parse_answer
from tutor.guardrail import judge, reveals_answer
from tutor.guardrail_cli import guardrail_cli

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("text", "values"),
    [
        ("he took 2,000 steps", [2000]),
        ("$1,260.00 in total", [1260]),
        ("factors 3, 13 and 39", [3, 13, 39]),
        ("7/8 or 0.875", [Fraction(7, 8), Fraction(7, 8)]),
        ("twelve eggs", [12]),
        ("x2 and 3x are not numbers, -4 is", [-4]),
    ],
)
def test_numbers_as_people_write_them(text, values):
    assert [m.value for m in numbers_in(text)] == values


@pytest.mark.parametrize(
    ("question", "value"),
    [
        ("What is the product of 26 and 6?", 156),
        ("what is the value of 85-77?", 8),
        ("What is 3 multiplied by 4?", 12),
        ("2800-65=?", 2735),
        ("How many times 4 go in 6?", 1),
        ("How can we round the number 17 to the nearest ten?", 20),
        ("What is the value of 5 in 2,593?", 500),
        ("What is the value of 10 times 0.621?", Fraction(621, 100)),
    ],
)
def test_the_answer_to_the_tutors_question(question, value):
    found = answer_to_question(question)
    assert found is not None and found.value == value


def test_no_answer_to_a_question_without_arithmetic():
    assert answer_to_question("What is a rectangle?") is None


STEPS = "Tom walks 400 steps a day for 5 days. How many steps does he take?"

CASES = [
    # (conversation, reply, reference answer, verdict)
    ([("student", "I think 900")], "Good try! He took 2,000 steps.", "2000", True),
    ([("student", "I think 900")], "So the answer is 2000.", "2000", True),
    ([("student", "I think 900")], "How many steps is that each day, times how many days?", "2000", False),
    ([("student", "I think 900")], "400 x 5 = 2000, so 2000 steps.", "2000", True),
    ([("student", "I added 400 + 5")], "Adding gives 405, but the days repeat the steps. Try again?", "2000", False),
    ([("student", "it is $12")], "Close: each costs $1,260.00 altogether.", "$1260", True),
    ([("student", "It's 2000")], "Yes, 2000 steps is right. Well done!", "2000", False),  # confirming
    ([("student", "7/8")], "Exactly, 7/8.", "0.875", False),
    ([("student", "1/2")], "Not quite: it's 0.875.", "7/8", True),
    # the tutor's own arithmetic question
    (
        [("tutor", "What is the product of 26 and 6?"), ("student", "4")],
        "When you multiply 26 by 6, you get 156.",
        None,
        True,
    ),
    (
        [("tutor", "What is the product of 26 and 6?"), ("student", "4")],
        "Let's try again: what is 26 times 6?",
        None,
        False,
    ),
    (
        [("tutor", "What is 3 multiplied by 4?"), ("student", "20")],
        "Great job, 3 times 4 is 20!",
        None,
        True,
    ),  # wrong, praised
    ([("tutor", "What is 3 multiplied by 4?"), ("student", "12")], "Great job, 3 times 4 is 12!", None, False),
    # answers in words and corrections
    (
        [("tutor", "What is the name of the 5 sided shape?"), ("student", "hexagon")],
        "Not quite: a shape with 5 sides is called a pentagon.",
        None,
        True,
    ),  # fmt: skip
    (
        [("tutor", "What is the name of the 5 sided shape?"), ("student", "hexagon")],
        "How many sides does a hexagon have? Count them on the picture.",
        None,
        None,
    ),  # fmt: skip
    ([("tutor", "What is 24 - 15?"), ("student", "11")], "Close, but the answer should be 9, not 11.", None, True),
]


@pytest.mark.parametrize(("conversation", "reply", "reference", "verdict"), CASES)
def test_answer_aware_verdicts(conversation, reply, reference, verdict):
    answers = [parse_answer(reference, "reference")] if reference else []
    assert judge([("tutor", STEPS), *conversation], reply, answers=answers).reveals is verdict


def test_a_worked_similar_problem_is_teaching_not_the_answer():
    reply = "Here is a similar one: 3x + 1 = 7, so 3x = 6 and 6 / 3 = 2. Now try yours."
    assert reveals_answer(["solve 5x + 2 = 17"], reply, turns=[("student", "solve 5x + 2 = 17")]) is False
    assert reveals_answer(["solve 5x + 2 = 17"], "5x = 15, so x = 15 / 5 = 3.") is True


def test_a_wrong_answer_given_as_a_correction_is_still_given_away():
    turns = [("tutor", "What is 7 * 60?"), ("student", "520")]
    assert judge(turns, "Actually, 7 times 60 equals 480, not 520.").reveals is True


def _write(tmp_path, rows):
    path = tmp_path / "dialogues.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    return path


ROWS = [
    {"id": "a:1", "problem": STEPS, "reference_answer": "2000", "conversation": [{"role": "student", "content": "900"}],
     "reply": "He took 2,000 steps.", "label": {"reveals_answer": False}},  # labels are ignored
    {"id": "a:2", "problem": STEPS, "reference_answer": "2000", "conversation": [{"role": "student", "content": "900"}],
     "reply": "How many steps a day?"},
    {"id": "b:1", "problem": None, "reference_answer": None,
     "conversation": [{"role": "tutor", "content": "What is a rectangle?"}, {"role": "student", "content": "a box"}],
     "reply": "Can you describe its corners?"},
]  # fmt: skip


def test_judge_command_prints_one_verdict_per_row(app, tmp_path):
    result = app.test_cli_runner().invoke(guardrail_cli, ["judge", str(_write(tmp_path, ROWS))])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.output.splitlines()]
    assert lines == [
        {"id": "a:1", "reveals_answer": True},
        {"id": "a:2", "reveals_answer": False},
        {"id": "b:1", "reveals_answer": None},
    ]


def test_judge_command_names_the_bad_line(app, tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(ROWS[0]) + "\n{not json\n", encoding="utf-8")
    result = app.test_cli_runner().invoke(guardrail_cli, ["judge", str(path)])
    assert result.exit_code != 0 and "line 2: not JSON" in result.output
    path.write_text(json.dumps({"id": 1, "reply": 3}) + "\n", encoding="utf-8")
    result = app.test_cli_runner().invoke(guardrail_cli, ["judge", str(path)])
    assert result.exit_code != 0 and "line 1: 'reply' must be a string" in result.output


def test_judge_command_runs_without_database_redis_or_provider(tmp_path):
    """The real ``flask`` command line on a machine with nothing configured."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "AI_PROVIDER")}
    env["INSTANCE_PATH"] = str(tmp_path / "instance")
    flask = [sys.executable, "-m", "flask", "--app", "app", "guardrail", "judge", str(_write(tmp_path, ROWS))]
    done = subprocess.run(flask, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert [json.loads(line)["reveals_answer"] for line in done.stdout.splitlines()] == [True, False, None]
