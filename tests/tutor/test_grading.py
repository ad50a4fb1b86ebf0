"""Grading answers: sympy for maths, normalised text with alternatives otherwise, and the
generated maths questions."""

from __future__ import annotations

import random

import pytest
import sympy

from tutor.curriculum import get_curriculum
from tutor.grading import (
    VARIANTS,
    answer_for,
    find_asked_question,
    grade,
    parse_model_verdict,
    quiz_questions,
    variant_question,
)
from tutor.problems import find_problem

MATHS = [
    ("x = 2", "x=2", True),
    ("x = 2", "I got 2", True),
    ("x = 2", "x = 3", False),
    ("3/4", "0.75", True),
    ("3/4", "6/8", True),
    ("3/4", "4/3", False),
    ("75%", "75", True),
    ("£68", "68 pounds", True),
    ("£4.80", "£4.8", True),
    ("3:2", "3:2", True),
    ("3:2", "6:4", False),  # "simplify the ratio": not simplified
    ("£15 and £20", "15 and 20", True),
    ("£15 and £20", "20 and 15", False),
    ("3x + 12", "12 + 3x", True),
    ("3x + 12", "3(x + 4)", False),  # "expand": brackets left
    ("x^2 + 5x + 6", "x² + 6 + 5x", True),
    ("-2x + 10", "10 - 2x", True),
    ("60", "60 km/h", True),
    ("25", "25 cm²", True),
    ("12", "13", False),
]
TEXT = [
    ("adverb", "Adverb.", True),
    ("adverb", "I think it's an adverb", True),
    ("adverb", "not an adverb", False),
    ("adverb", "adjective", False),
    ("it's", "its", False),
    ("Sam's book", "sam's book", True),
    ("thesis statement", "the thesis statement", True),
    ("no", "yes", False),
    ("1", "one", True),
    ("it's | it is", "It is", True),
]


@pytest.mark.parametrize(("expected", "answer", "right"), MATHS)
def test_maths_answers_are_compared_as_values(expected, answer, right):
    assert grade(expected, answer, maths=True).correct is right
    assert grade(expected, answer, maths=True).graded_by == "sympy"


@pytest.mark.parametrize(("expected", "answer", "right"), TEXT)
def test_text_answers_are_compared_normalised(expected, answer, right):
    assert grade(expected, answer, maths=False).correct is right


def test_every_curriculum_answer_grades_as_right_against_itself():
    for subject in get_curriculum().subjects.values():
        for topic in subject.topics:
            for q in topic.check_questions:
                verdict = grade(q.answer, q.answer, maths=subject.id == "mathematics")
                assert verdict.correct, (subject.id, topic.id, q.answer)
                if subject.id == "mathematics":
                    assert verdict.graded_by == "sympy", q.answer  # maths answers are read as maths


def test_generated_questions_agree_with_sympys_own_solution():
    rng = random.Random(7)
    topics = {v.topic for v in VARIANTS}
    for topic in topics:
        for _ in range(30):
            question = variant_question(topic, rng)
            assert question is not None and question.answer
            assert answer_for("mathematics", topic, question.text) == question  # recognised from its text
            assert grade(question.answer, question.answer, maths=True).correct
            problem = find_problem(question.text)
            if problem is not None and problem.kind in {"equation", "arithmetic", "fraction"}:
                assert grade(question.answer, str(problem.answer), maths=True).correct, question


def test_find_asked_question_takes_the_last_question_in_the_reply():
    reply = "Well done! Ready for another? **Simplify 6/8.** Or this one: **What is 3/4 + 1/8?**"
    asked = find_asked_question("mathematics", reply)
    assert (asked.topic, asked.text, asked.answer) == ("fractions", "What is 3/4 + 1/8?", "7/8")
    assert find_asked_question("mathematics", "Let's think about fractions. What do you notice?") is None
    assert find_asked_question("mathematics", "Try this: Expand 3(x + 5).").answer == "3x + 15"


def test_quiz_has_five_new_questions_and_skips_answered_ones():
    rng = random.Random(1)
    first = quiz_questions("mathematics", "linear equations", set(), rng)
    assert len(first) == 5 and len({q.text for q in first}) == 5
    assert [q.text for q in first[:4]] == [
        q.question for q in get_curriculum().topic("mathematics", "linear equations").check_questions
    ]
    again = quiz_questions("mathematics", "linear equations", {q.text for q in first}, rng)
    assert len(again) == 5 and not {q.text for q in again} & {q.text for q in first}
    english = quiz_questions("english", "tenses", set(), rng)
    assert len(english) == 4  # no generator outside maths: the curriculum's four
    assert quiz_questions("english", "tenses", {q.text for q in english}, rng) == []
    assert quiz_questions("english", "no such topic", set(), rng) == []


def test_model_verdicts_are_read_strictly():
    assert parse_model_verdict("CORRECT. It is a simile.") is True
    assert parse_model_verdict("Incorrect - that is a metaphor") is False
    assert parse_model_verdict("**Correct**") is True
    assert parse_model_verdict("I think so") is None


def test_sympy_is_exact():
    assert grade("1/3", "0.333", maths=True).correct is False
    assert sympy.Rational(1, 3) != sympy.nsimplify("0.333")
