"""'Quiz me': the API and the pages; every answer is an attempt and moves mastery."""

from __future__ import annotations

import re

from sqlalchemy import func, select

from foundation.extensions import db
from tests.conftest import make_student
from tutor.grading import answer_for
from tutor.models import Attempt


def _start(student, subject="mathematics", topic="linear equations"):
    return student.post("/api/v1/quiz", json={"subject": subject, "topic": topic})


def _right_answers(quiz: dict) -> list[str]:
    return [answer_for(quiz["subject"], quiz["topic"], q["question"]).answer for q in quiz["questions"]]


def test_quiz_of_five_right_answers_moves_mastery_up(app, student):
    started = _start(student)
    assert started.status_code == 201
    quiz = started.get_json()
    assert len(quiz["questions"]) == 5 and quiz["name"] == "Linear equations"
    assert "answer" not in str(quiz["questions"])  # no answers before answering
    marked = student.post("/api/v1/quiz/answers", json={"quiz": quiz["quiz"], "answers": _right_answers(quiz)})
    assert marked.status_code == 200
    result = marked.get_json()
    assert [r["correct"] for r in result["results"]] == [True] * 5
    assert result["mastery_before"] is None and result["progress"]["mastery"] >= 0.8
    assert (result["progress"]["attempts"], result["progress"]["correct"]) == (5, 5)
    with app.app_context():
        assert db.session.scalar(select(func.count()).where(Attempt.source == "quiz")) == 5


def test_answering_the_same_quiz_twice_counts_once_and_the_next_quiz_has_new_questions(app, student):
    quiz = _start(student).get_json()
    wrong = ["0"] * 5
    first = student.post("/api/v1/quiz/answers", json={"quiz": quiz["quiz"], "answers": wrong}).get_json()
    assert first["progress"]["attempts"] == 5 and first["progress"]["mastery"] <= 0.4
    again = student.post("/api/v1/quiz/answers", json={"quiz": quiz["quiz"], "answers": _right_answers(quiz)})
    assert [r["counted"] for r in again.get_json()["results"]] == [False] * 5
    assert again.get_json()["progress"]["correct"] == 0
    fresh = _start(student).get_json()
    assert not {q["question"] for q in fresh["questions"]} & {q["question"] for q in quiz["questions"]}


def test_blank_answers_are_skipped(app, student):
    quiz = _start(student, "english", "tenses").get_json()
    assert len(quiz["questions"]) == 4
    answers = [None, "", "written", "  "]
    result = student.post("/api/v1/quiz/answers", json={"quiz": quiz["quiz"], "answers": answers}).get_json()
    assert [r["correct"] for r in result["results"]] == [None, None, True, None]
    assert result["progress"]["attempts"] == 1


def test_quiz_errors_say_what_to_do(app, student):
    assert _start(student, "mathematics", "astrology").status_code == 400
    assert _start(student, "mathematics", 7).status_code == 400
    quiz = _start(student, "english", "tenses").get_json()
    bad = student.post("/api/v1/quiz/answers", json={"quiz": quiz["quiz"], "answers": ["a"]})
    assert bad.status_code == 400 and "list of 4" in bad.get_json()["detail"]
    forged = student.post("/api/v1/quiz/answers", json={"quiz": quiz["quiz"] + "x", "answers": ["a"] * 4})
    assert forged.status_code == 400 and forged.get_json()["error"] == "bad_quiz"
    other = make_student(app, email="other@school.org")
    stolen = other.post("/api/v1/quiz/answers", json={"quiz": quiz["quiz"], "answers": ["a"] * 4})
    assert stolen.status_code == 400
    student.post("/api/v1/quiz/answers", json={"quiz": quiz["quiz"], "answers": ["x"] * 4})
    exhausted = _start(student, "english", "tenses")
    assert exhausted.status_code == 409 and "another topic" in exhausted.get_json()["detail"]


def test_progress_page_quiz_page_and_results(app, student):
    empty = student.get("/progress")
    assert empty.status_code == 200 and b"No graded answers yet" in empty.data
    page = student.get("/quiz?subject=mathematics&topic=fractions")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    token = re.search(r'name="quiz" value="([^"]+)"', html).group(1)
    questions = re.findall(r"<label>(.*?)<input", html)
    assert len(questions) == 5
    answers = [answer_for("mathematics", "fractions", q.replace("&#39;", "'")).answer for q in questions]
    answers[0] = "99"
    result = student.post("/quiz", data={"quiz": token, "answer": answers, "csrf_token": student.csrf})
    assert result.status_code == 200
    body = result.get_data(as_text=True)
    assert "4 of 5 right" in body and "the answer is" in body
    progress = student.get("/progress").get_data(as_text=True)
    assert "Fractions" in progress and "4 of 5" in progress and "<meter" in progress
    assert "Practise next:" in progress
    bad = student.get("/quiz?subject=mathematics&topic=nothing")
    assert bad.status_code == 302 and bad.headers["Location"].endswith("/progress")
