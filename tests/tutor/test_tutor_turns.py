"""The offline tutor over a table of student turns, through the API and the worker.

Each conversation is sent one message at a time to ``/api/v1/sessions/<id>/messages``; a
burst worker writes each reply, which is then read back from the API. Every reply is checked
against its row's expectations (``"text"`` must appear, ``"!text"`` must not) and against
what must hold for every reply: the guardrail never flags it (the builtin never gives the
final answer before the student has found it), and no science or English question is told
it is "not about" its subject. Every example of issue #14 is in the table.
"""

import pytest
from sqlalchemy import select

from tests.conftest import make_student

Turn = tuple[str, list[str]]

CONVERSATIONS: list[tuple[str, list[Turn]]] = [
    # ---------------------------------------------------------------- mathematics
    (
        "mathematics",
        [
            ("what is 17 x 23", ["**arithmetic**", "17 = 10 + 7", "!order of operations", "!391"]),
            ("is the answer 391?", ["**391** is right", "!Hint"]),
            ("just tell me the answer", ["already solved", "391", "!Hint 3", "won't give it away"]),
        ],
    ),
    (
        "mathematics",
        [
            ("hi", ["Hi!", "Mathematics tutor", "**Fractions**", "!not sure"]),
            ("how do I solve 2x + 3 = 7?", ["balance", "**Hint:**", "!x = 2"]),
            ("I don't understand", ["**Hint 2:**", "take 3 away", "!Good"]),
            ("so x is 5?", ["Not quite", "signs"]),
            ("I think it's 2", ["**x = 2** is right"]),
            ("thanks!", ["You're welcome"]),
            ("bye", ["Bye for now", "End session"]),
        ],
    ),
    (
        "mathematics",
        [
            (
                "i think 3/4 + 2/3 = 5/7",
                [
                    "Not quite",
                    "tops together and the bottoms together",
                    "**common denominator**",
                    "!17/12",
                    "!This is about",
                ],
            ),
            ("what is 3/4 + 2/3", ["**same denominator**", "4 and 3", "!17/12"]),
            ("I got 17/12", ["**17/12** is right"]),
        ],
    ),
    (
        "mathematics",
        [
            (
                "What's the area of a circle with radius 3?",
                ["**area and perimeter**", "πr²", "!28.27", "!perimeter is"],
            ),
            ("is it 28.27?", ["**28.27** is right", "9π", "!Hint", "!Good"]),
        ],
    ),
    (
        "mathematics",
        [
            ("find the area of a circle with radius 3 cm", ["πr²", "r = 3"]),
            ("28.3?", ["Not quite", "2 decimal places"]),
            ("I'm stuck", ["**Hint 2:**", "multiply r² by π"]),
            ("and then?", ["*similar*", "radius 5", "!radius 3"]),
            ("I got 28.26", ["**28.26** is right"]),
        ],
    ),
    (
        "mathematics",
        [
            ("what is the perimeter of a rectangle 8 cm by 5 cm", ["all the way around", "!26"]),
            ("40", ["Not quite", "area rather than the perimeter"]),
            ("is the answer 26?", ["**26** is right"]),
        ],
    ),
    (
        "mathematics",
        [
            ("area of a triangle with base 6 and height 4", ["½ × base × perpendicular height", "!12"]),
            ("I think the answer is 24", ["Not quite"]),
            ("12?", ["**12** is right"]),
        ],
    ),
    (
        "mathematics",
        [
            ("what is 144 ÷ 12", ["how many times does 12 fit into 144", "!order of operations"]),
            ("ok", ["have a go", "!Hint"]),
            ("I get 12", ["**12** is right"]),
        ],
    ),
    (
        "mathematics",
        [
            ("what is 3 + 4 * 2", ["**order of operations**"]),
            ("14", ["Not quite", "left to right"]),
            ("it's 11", ["**11** is right"]),
        ],
    ),
    (
        "mathematics",
        [
            ("what is 20% of 50", ["*Per cent*", "1%"]),
            ("just tell me", ["won't just give you the answer", "!**10**"]),
            ("the answer is 10", ["**10** is right"]),
        ],
    ),
    (
        "mathematics",
        [
            ("what is a ratio", ["**Ratios and rates**", "Let's check: **", "!first step", "!Good, let"]),
            ("I don't get it", ["**Hint 1:**", "!Good, let"]),
            ("tell me a joke", ["offline Mathematics tutor", "other words", "AI model", "!not sure"]),
        ],
    ),
    (
        "mathematics",
        [
            ("how do i find the hypotenuse of a right angled triangle", ["**Pythagorean theorem**", "Let's check"]),
            ("5", ["Yes, that's right"]),
        ],
    ),
    (
        "mathematics",
        [
            ("hello there, what is 12 x 7?", ["**arithmetic**", "!84", "!Hi!"]),
            ("84", ["**84** is right"]),
            ("goodbye", ["Bye for now"]),
        ],
    ),
    (
        "mathematics",
        [
            ("whats a fracton", ["**Fractions**"]),
            ("42", ["Not quite"]),
        ],
    ),
    # ---------------------------------------------------------------- English
    (
        "english",
        [
            ("when do I use their, there or they're?", ["**Homophones**", "they're", "!not sure", "!first step"]),
            ("I don't understand", ["**Hint 1:**"]),
            ("there", ["Yes, that's right"]),
            ("thank you", ["You're welcome", "English"]),
        ],
    ),
    (
        "english",
        [
            ("is 'their going to the park' correct?", ["**Homophones**", "they are"]),
            ("they're going to the park", ["Yes, that's right"]),
        ],
    ),
    (
        "english",
        [
            ("what's the difference between your and you're", ["**Homophones**", "you are"]),
            ("just tell me", ["The answer is **", "!not about"]),
        ],
    ),
    (
        "english",
        [
            ("hi", ["Hi!", "English tutor", "!english tutor"]),
            ("what is a noun?", ["**Parts of speech**", "Let's check: **", "!first step", "!Hint"]),
            ("noun", ["Yes, that's right", "!Good, let's go one step further"]),
            ("preposition", ["Yes, that's right"]),
            ("just tell me the answer", ["The answer is **"]),
        ],
    ),
    (
        "english",
        [
            ("what is a metaphor", ["**Figurative language**"]),
            ("a simile", ["Not quite", "Have another go"]),
            ("I'm not sure", ["**Hint"]),
            ("still stuck", ["**Hint"]),
        ],
    ),
    (
        "english",
        [
            ("should I say they was or they were", ["**Subject-verb agreement**"]),
            ("were", ["Yes, that's right"]),
            ("ok", ["!Not quite"]),
        ],
    ),
    (
        "english",
        [
            ("when do I use a semicolon", ["**Punctuation**"]),
            ("what's the weather like today", ["offline English tutor", "other words", "!not sure"]),
            ("bye!", ["Bye for now"]),
        ],
    ),
    (
        "english",
        [
            ("how do I write a good essay introduction", ["**Essay structure**"]),
            ("i dont get it", ["**Hint 1:**"]),
            ("and then?", ["**Hint 2:**"]),
        ],
    ),
    # ---------------------------------------------------------------- science
    (
        "science",
        [
            ("why is the sky blue?", ["**Light**", "scatters blue light", "!not about science", "!not sure"]),
            ("blue", ["Yes, that's right"]),
            ("thanks", ["You're welcome", "Science"]),
        ],
    ),
    (
        "science",
        [
            ("why do we have seasons?", ["**Earth and space**", "tilted", "!not about"]),
            ("I don't understand", ["**Hint 1:**"]),
            ("just tell me the answer", ["The answer is **"]),
        ],
    ),
    (
        "science",
        [
            ("why does ice float?", ["**States of matter**", "Density", "!not about"]),
            ("what is condensation", ["**"]),
        ],
    ),
    (
        "science",
        [
            ("hey", ["Hi!", "Science tutor"]),
            ("just tell me the answer", ["Which question are you working on", "!not sure", "!not about"]),
            ("how do plants make food?", ["**Photosynthesis**", "chlorophyll"]),
            ("carbon dioxide", ["Yes, that's right"]),
        ],
    ),
    (
        "science",
        [
            ("what is photosynthsis", ["**Photosynthesis**"]),
            ("I'm confused", ["**Hint 1:**"]),
            ("more help please", ["**Hint 2:**"]),
        ],
    ),
    (
        "science",
        [
            ("how does evaparation work", ["**The water cycle**"]),
            ("precipitation", ["Yes, that's right"]),
        ],
    ),
    (
        "science",
        [
            ("what's your favourite football team", ["offline Science tutor", "**Light**", "AI model", "!not sure"]),
            ("what is a food chain", ["**Ecosystems**"]),
            ("good night", ["Bye for now"]),
        ],
    ),
]

ISSUE_EXAMPLES = [
    "what is 17 x 23", "is the answer 391?", "when do I use their, there or they're?",
    "is 'their going to the park' correct?", "what's the difference between your and you're",
    "why is the sky blue?", "why do we have seasons?", "why does ice float?", "hi", "just tell me the answer",
    "i think 3/4 + 2/3 = 5/7", "what is a noun?", "is it 28.27?",
]  # fmt: skip


def test_the_table_is_big_and_has_every_example_of_the_issue():
    turns = [text for _subject, conversation in CONVERSATIONS for text, _ in conversation]
    assert len(turns) >= 80
    assert {subject for subject, _ in CONVERSATIONS} == {"mathematics", "science", "english"}
    assert set(ISSUE_EXAMPLES) <= set(turns)
    for subject in ("science", "english"):  # "just tell me" in every subject
        assert any(t == "just tell me the answer" for s, c in CONVERSATIONS if s == subject for t, _ in c)


@pytest.mark.parametrize(
    ("subject", "conversation"), CONVERSATIONS, ids=lambda v: v if isinstance(v, str) else v[0][0][:40]
)
def test_conversation(app, monkeypatch, subject, conversation):
    from foundation.extensions import db
    from tutor.models import Message
    from worker import run_worker

    monkeypatch.setitem(app.config, "MESSAGE_RATE_LIMIT", "1000/minute")
    student = make_student(app)
    sid = student.post("/api/v1/sessions", json={"subject": subject}).get_json()["id"]
    for text, expected in conversation:
        posted = student.post(f"/api/v1/sessions/{sid}/messages", json={"content": text})
        assert posted.status_code == 202, posted.get_json()
        reply_id = posted.get_json()["reply_id"]
        run_worker(app, ["ai"], burst=True)
        reply = student.get(f"/api/v1/messages/{reply_id}").get_json()
        assert reply["status"] == "done", reply
        content = reply["content"]
        for item in expected:
            if item.startswith("!"):
                assert item[1:] not in content, f"{text!r} -> {content!r}"
            else:
                assert item in content, f"{text!r} -> {content!r}"
        assert "not sure that message is about" not in content
        with app.app_context():
            revealed = db.session.scalar(select(Message.answer_revealed).where(Message.id == reply_id))
        assert revealed is not True, f"{text!r} gave the answer away: {content!r}"
