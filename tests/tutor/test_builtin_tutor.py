"""The builtin tutor over a table of student messages, and the guardrail on hand-written replies."""

import pytest

from tests.conftest import run_jobs
from tutor.curriculum import get_curriculum, match_topics
from tutor.guardrail import reveals_answer
from tutor.problems import find_problem
from tutor.providers import ReplyContext
from tutor.providers.builtin import compose_reply

# (subject, message, expected topic) for problems the student brings: the first reply must
# name the right topic and never state the final answer.
PROBLEMS = [
    ("mathematics", "How do I solve 2x + 3 = 7?", "linear equations"),
    ("mathematics", "solve 5(x - 2) = 3x + 4", "linear equations"),
    ("mathematics", "can you help with 3y - 4 = 11", "linear equations"),
    ("mathematics", "2x = 10, how do I find x", "linear equations"),
    ("mathematics", "what is 3/4 + 1/8", "fractions"),
    ("mathematics", "how do I add 2/3 + 1/6?", "fractions"),
    ("mathematics", "what's 5/6 - 1/4", "fractions"),
    ("mathematics", "simplify 6/8", "fractions"),
    ("mathematics", "how do I simplify 12/18", "fractions"),
    ("mathematics", "what is 20% of 50", "percentages"),
    ("mathematics", "find 15% of 80", "percentages"),
    ("mathematics", "What percent is 3 of 12?", "percentages"),
    ("mathematics", "what is 15 + 27?", "arithmetic"),
    ("mathematics", "what is 3 + 4 * 2", "arithmetic"),
    ("mathematics", "work out 12 x 7", "arithmetic"),
    ("mathematics", "what's 144 / 12 - 5", "arithmetic"),
    ("mathematics", "a car goes 120 km in 2 hours, what is its speed", "ratios and rates"),
    ("mathematics", "a cyclist rides 45 km in 3 hours, how fast is that", "ratios and rates"),
]

# Questions about an idea (no problem to solve): the right topic, its explanation and a check question.
CONCEPTS = [
    ("mathematics", "how do I find the hypotenuse of a right triangle", "pythagorean theorem"),
    ("mathematics", "how do I expand brackets like 3(x + 4)", "expanding brackets"),
    ("mathematics", "what is the perimeter of a rectangle", "area and perimeter"),
    ("mathematics", "what is a ratio", "ratios and rates"),
    ("science", "how do plants make food?", "photosynthesis"),
    ("science", "what is the difference between a plant cell and an animal cell", "cells"),
    ("science", "what happens when ice melts", "states of matter"),
    ("science", "how does the water cycle work", "the water cycle"),
    ("science", "why does a bulb light up in a circuit", "electric circuits"),
    ("science", "what is Newton's second law", "forces and motion"),
    ("science", "what is a food chain", "ecosystems"),
    ("english", "when do I use a semicolon", "punctuation"),
    ("english", "what is a metaphor", "figurative language"),
    ("english", "what is an adverb", "parts of speech"),
    ("english", "how do I write a good essay introduction", "essay structure"),
    ("english", "does the verb agree with the subject in: the dogs runs", "subject-verb agreement"),
    ("english", "should I say they was or they were", "subject-verb agreement"),
    ("english", "when do I use the past perfect tense", "tenses"),
]

OFF_TOPIC = [
    ("mathematics", "what's your favourite football team"),
    ("mathematics", "can you recommend a film"),
    ("science", "can you tell me a joke"),
    ("english", "what time is it"),
    ("science", "asdfgh"),
]

# (problem, proposal, right?)
PROPOSALS = [
    ("How do I solve 2x + 3 = 7?", "x = 2", True),
    ("How do I solve 2x + 3 = 7?", "is it x = 5?", False),
    ("How do I solve 2x + 3 = 7?", "x=-2", False),
    ("solve 5(x - 2) = 3x + 4", "I got x = 7", True),
    ("what is 3/4 + 1/8", "I got 7/8", True),
    ("what is 3/4 + 1/8", "is it 4/12?", False),
    ("what is 3 + 4 * 2", "14", False),
    ("what is 3 + 4 * 2", "it's 11", True),
    ("what is 20% of 50", "the answer is 10", True),
    ("what is 20% of 50", "1000", False),
    ("simplify 6/8", "3/4", True),
    ("a car goes 120 km in 2 hours, what is its speed", "60", True),
]


def _reply(subject, *turns):
    messages = []
    reply = ""
    for turn in turns:
        messages.append({"role": "user", "content": turn})
        reply = compose_reply(messages, ReplyContext(subject=subject))
        messages.append({"role": "assistant", "content": reply})
    return reply


def test_table_is_big_enough():
    assert len(PROBLEMS) + len(CONCEPTS) + len(OFF_TOPIC) + len(PROPOSALS) >= 40
    assert {s for s, *_ in PROBLEMS + CONCEPTS} == {"mathematics", "science", "english"}


@pytest.mark.parametrize(("subject", "message", "topic"), PROBLEMS)
def test_first_reply_to_a_problem_hints_without_the_answer(app_ctx, subject, message, topic):
    problem = find_problem(message)
    assert problem is not None and problem.topic == topic
    assert topic in match_topics(message, subject)
    reply = _reply(subject, message)
    assert reveals_answer([message], reply) is False, reply
    assert "?" in reply  # a guiding question
    assert "**" in reply  # Markdown


@pytest.mark.parametrize(("subject", "message", "topic"), CONCEPTS)
def test_concept_questions_find_the_topic(app_ctx, subject, message, topic):
    assert match_topics(message, subject)[0] == topic
    reply = _reply(subject, message)
    name = next(t.name for t in get_curriculum().subjects[subject].topics if t.id == topic)
    assert f"**{name}**" in reply and "Let's check: **" in reply, reply
    assert "first step" not in reply  # no problem was posed


@pytest.mark.parametrize(("subject", "message"), OFF_TOPIC)
def test_off_topic_is_steered_back(app_ctx, subject, message):
    reply = _reply(subject, message)
    name = get_curriculum().subjects[subject].name
    assert f"I'm the offline {name} tutor" in reply and "other words" in reply and "AI model" in reply
    assert reply.count("**") >= 6  # offers the topics
    assert "not sure that message" not in reply.lower()


@pytest.mark.parametrize(("problem", "proposal", "right"), PROPOSALS)
def test_proposals_are_checked(app_ctx, problem, proposal, right):
    reply = _reply("mathematics", problem, proposal)
    if right:
        assert "is right" in reply, reply
    else:
        assert "is right" not in reply and reply.startswith("Not quite"), reply


def test_wrong_answers_get_a_hint_at_the_slip(app_ctx):
    assert "signs" in _reply("mathematics", "solve 2x + 3 = 7", "x = 5")
    assert "divide" in _reply("mathematics", "solve 2x + 3 = 7", "x = 4")
    assert "common denominator" in _reply("mathematics", "what is 3/4 + 1/8", "4/12")
    assert "order of operations" in _reply("mathematics", "what is 3 + 4 * 2", "14")


def test_hints_get_more_specific_then_a_similar_example(app_ctx):
    turns = ["How do I solve 2x + 3 = 7?", "I don't get it", "and then?", "still stuck"]
    replies = [_reply("mathematics", *turns[: i + 1]) for i in range(len(turns))]
    assert "**Hint:**" in replies[0]
    assert "**Hint 2:**" in replies[1] and "take 3 away" in replies[1]
    assert "**Hint 3:**" in replies[2] and "2x = 4" in replies[2]
    assert "similar" in replies[3] and "2x + 3 = 7" not in replies[3]
    for reply in replies:
        assert reveals_answer([turns[0]], reply) is False, reply


# ----------------------------------------------------------------------------- the guardrail

GUARDRAIL = [
    ("How do I solve 2x + 3 = 7?", "Subtract 3 from both sides, then divide by 2: x = 2.", True),
    ("How do I solve 2x + 3 = 7?", "The answer is 2.", True),
    ("How do I solve 2x + 3 = 7?", "So **x** equals 2", True),
    ("How do I solve 2x + 3 = 7?", "What is being done to x? Undo the + 3 first.", False),
    ("How do I solve 2x + 3 = 7?", "After subtracting 3 you get 2x = 4. What next?", False),
    ("what is 3/4 + 1/8", "Rewrite 3/4 as 6/8, then 6/8 + 1/8 = 7/8.", True),
    ("what is 3/4 + 1/8", "That gives 0.875.", True),
    ("what is 3/4 + 1/8", "What common denominator could you use for 4 and 8?", False),
    ("what is 15 + 27?", "15 + 27 = 42", True),
    ("what is 15 + 27?", "Add the tens first: 10 + 20. What is left?", False),
    ("what is 20% of 50", "1% of 50 is 0.5, so 20% is 10.", True),
    ("what is 20% of 50", "Find 1% first by dividing by 100.", False),
    ("a car goes 120 km in 2 hours, what is its speed", "Its speed is 60 km per hour.", True),
    ("a car goes 120 km in 2 hours, what is its speed", "Divide the distance by the time.", False),
    ("simplify 6/8", "Divide top and bottom by 2 to get 3/4.", True),
    ("simplify 6/8", "What is the largest number dividing 6 and 8?", False),
]


@pytest.mark.parametrize(("problem", "reply", "gives_away"), GUARDRAIL)
def test_guardrail_flags_replies_that_give_the_answer_away(problem, reply, gives_away):
    assert reveals_answer([problem], reply) is gives_away


def test_guardrail_does_not_flag_confirming_the_students_own_answer():
    assert reveals_answer(["solve 2x + 3 = 7", "x = 2"], "Yes, x = 2 is right!") is False
    assert reveals_answer(["solve 2x + 3 = 7", "x = 5"], "No: x = 2.") is True


def test_guardrail_leaves_conversations_without_a_problem_unchecked():
    assert reveals_answer(["how do plants make food?"], "Plants photosynthesise.") is None


def test_conversation_through_the_api_and_worker(app, student):
    sid = student.post("/api/v1/sessions", json={"subject": "mathematics"}).get_json()["id"]

    def say(text):
        reply_id = student.post(f"/api/v1/sessions/{sid}/messages", json={"content": text}).get_json()["reply_id"]
        run_jobs(app)
        return student.get(f"/api/v1/messages/{reply_id}").get_json()

    first = say("How do I solve 2x + 3 = 7?")
    assert first["status"] == "done" and "Hint" in first["content"] and "x = 2" not in first["content"]
    second = say("I still don't get it")
    assert "Hint 2" in second["content"] and "x = 2" not in second["content"]
    third = say("x = 2")
    assert "x = 2** is right" in third["content"]
    with app.app_context():
        from sqlalchemy import text

        from foundation.extensions import db

        flags = (
            db.session.execute(text("SELECT answer_revealed FROM messages WHERE role='tutor' ORDER BY id"))
            .scalars()
            .all()
        )
    assert flags == [False, False, False]
