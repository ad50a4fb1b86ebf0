"""The offline tutor: deterministic replies from the curriculum and sympy, streamed like a model.

It teaches the way the system prompt asks a model to, in three layers read in order:

1. **What the message does** (:mod:`.dialogue`): a greeting is greeted, thanks answered, a
   goodbye said, and "I don't understand", "and then?" or "just tell me" continue whatever
   the conversation is about instead of being matched against the curriculum.
2. **Maths it can check** (:mod:`tutor.problems`): a problem the student brings gets the
   idea, a first hint and a guiding question, never the final answer; asked again, a more
   specific hint, then a *similar* problem worked with different numbers. A proposed answer
   ("is it 28.27?", "I got 7/8", "so x is 2?") is checked exactly, and a worked claim
   ("3/4 + 2/3 = 5/7") has its slip named.
3. **What it is about** (:func:`tutor.curriculum.match_topics`): a concept question gets the
   topic's explanation and one of its check questions; the student's answer to that check
   question is graded (:func:`grade_check_answer`); asking again gives the topic's hints
   one by one, then its worked example.

Anything else gets an honest fallback: what it can help with offline, and a request for the
question in other words.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import sympy

from tutor.grading import grade
from tutor.guardrail import active_problem
from tutor.problems import Problem, check, find_claim, find_problem, find_proposal_with_text, format_value

from . import ChatMessage, ReplyContext, Usage, estimate_tokens
from .dialogue import Act, dialogue_act, strip_greeting

MODEL = "builtin-tutor"
HELP_ACTS = (Act.CONFUSED, Act.NEXT, Act.JUST_TELL)


class BuiltinProvider:
    name = "builtin"
    model = MODEL

    def __init__(self, chunk_delay: float = 0.03) -> None:
        self.chunk_delay = chunk_delay

    def stream(self, messages: list[ChatMessage], usage: Usage, context: ReplyContext) -> Iterator[str]:
        reply = compose_reply(messages, context)
        usage.prompt_tokens = sum(estimate_tokens(m["content"]) for m in messages)
        usage.completion_tokens = estimate_tokens(reply)
        for index, chunk in enumerate(re.findall(r"\S+\s*|\s+", reply)):
            if index and self.chunk_delay:  # the first chunk goes out at once, as from a model
                time.sleep(self.chunk_delay)
            yield chunk


# ----------------------------------------------------------------------------- the conversation


@dataclass
class Talk:
    """The conversation as the tutor reads it: the student's turns, its own last reply."""

    subject: object  # tutor.curriculum.Subject
    students: list[str]
    last_tutor: str
    text: str = field(init=False)
    act: Act = field(init=False)

    def __post_init__(self) -> None:
        raw = self.students[-1] if self.students else ""
        self.act = dialogue_act(raw)
        self.text = strip_greeting(raw)
        if self.text != raw:  # "hi, how do I add fractions?": the greeting is a courtesy
            self.act = dialogue_act(self.text)

    def topics(self, text: str) -> list[str]:
        from tutor.curriculum import match_topics

        return match_topics(text, self.subject.id)

    def context_topic(self) -> tuple[str, int] | None:
        """The topic the conversation is on (the latest earlier turn that matched one) and how
        many turns have asked about it or for help since it was raised (its level)."""
        earlier = self.students[:-1]
        for index in range(len(earlier) - 1, -1, -1):
            found = self.topics(earlier[index])
            if found:
                level = sum(
                    1
                    for later in earlier[index + 1 :]
                    if dialogue_act(later) in HELP_ACTS or found[0] in self.topics(later)
                )
                return found[0], level + 1
        return None


def compose_reply(messages: list[ChatMessage], context: ReplyContext) -> str:
    from tutor.curriculum import get_curriculum

    subject = get_curriculum().subjects.get(context.subject)
    if subject is None:
        return "Let's pick a subject first. Which subject are you working on?"
    assistant = [m["content"] for m in messages if m["role"] == "assistant"]
    talk = Talk(subject, [m["content"] for m in messages if m["role"] == "user"], assistant[-1] if assistant else "")

    if talk.act is Act.GREETING:
        return greeting(subject)
    if talk.act is Act.THANKS:
        return _thanks(talk)
    if talk.act is Act.GOODBYE:
        return (
            "Bye for now, and well done for today's work! Press **End session** when you're finished, "
            "and come back any time."
        )
    pending = _pending_check(talk)
    if pending is not None and _answers_check(talk, pending[1].answer, f"{pending[1].question} {pending[1].answer}"):
        return _check_feedback(talk, *pending)
    if subject.id == "mathematics":
        reply = _maths_turn(talk)
        if reply is not None:
            return reply
    return _topic_turn(talk, pending)


# ----------------------------------------------------------------------------- courtesies


def subject_topics_text(subject, limit: int = 4) -> str:
    names = [f"**{t.name}**" for t in subject.topics[:limit]]
    more = len(subject.topics) - limit
    return ", ".join(names) + (f" and {more} more topics" if more > 0 else "")


def greeting(subject) -> str:
    return (
        f"Hi! I'm your {subject.name} tutor. We can work on {subject_topics_text(subject)}.\n\n"
        "What are you working on? Ask me a question, or type the problem you're stuck on, "
        "and we'll work through it together."
    )


def _thanks(talk: Talk) -> str:
    found = _unsolved_problem(talk) if talk.subject.id == "mathematics" else None
    if found is not None:
        return f"You're welcome! When you're ready, work out `{found.display}` and tell me what you get; I'll check it."
    return f"You're welcome! Is there anything else in {talk.subject.name} you'd like to work on?"


def fallback(subject) -> str:
    """Outside what the offline tutor knows: say so, offer what it can do, ask again."""
    return (
        f"I'm the offline {subject.name} tutor, so I can help with the topics in this course: "
        f"{subject_topics_text(subject, limit=len(subject.topics))}. I couldn't match your message to one of them.\n\n"
        "Could you ask it in other words, or tell me which topic it's about? "
        "(For open questions beyond these topics, your school can connect an AI model to this tutor.)"
    )


# ----------------------------------------------------------------------------- check questions


def _pending_check(talk: Talk):
    """The check question the tutor's last reply asked (topic, question), if any."""
    if not talk.last_tutor:
        return None
    for topic in talk.subject.topics:
        for question in topic.check_questions:
            if f"**{question.question}**" in talk.last_tutor:
                return topic, question
    return None


def _answers_check(talk: Talk, pending_answer: str, pending_text: str) -> bool:
    """Does the message look like an answer to the pending check question (not a new question)?"""
    if talk.act in (Act.CONFUSED, Act.NEXT, Act.ACK) or not talk.text.strip():
        return False
    if talk.act is Act.JUST_TELL:
        return True
    if talk.subject.id == "mathematics" and (find_problem(talk.text) or find_claim(talk.text)):
        return False
    if talk.act is Act.QUESTION and len(talk.text.split()) > 3:
        return False  # "what's the weather like today" is not an answer
    has_number = find_proposal_with_text(talk.text) is not None
    if _number(pending_answer) is not None:
        return has_number  # a number is expected: "tell me a joke" is not an answer
    words = len(talk.text.split())
    return words <= 3 or (words <= 12 and (has_number or _overlap(talk.text, pending_text) > 0))


def grade_check_answer(answer: str, said: str) -> bool:
    """Is ``said`` a right answer to a check question whose short answer is ``answer``?

    Numbers are compared exactly (7/8 = 0.875) or rounded as written; words are compared
    without case, articles or punctuation, and the answer may sit inside a sentence
    ("it's an adverb").
    """
    expected = _number(answer)
    if expected is not None:
        found = find_proposal_with_text(said)
        if found is None:
            return False
        fake = Problem("arithmetic", answer, expected, parts=(answer,))
        return check(fake, found[0]).correct

    def words(text: str) -> list[str]:
        cleaned = re.sub(r"[^a-z0-9' ]+", " ", text.lower().replace("’", "'"))
        return [w for w in cleaned.split() if w not in {"a", "an", "the", "it's", "its", "is", "it"}]

    want, got = words(answer), words(said)
    if not want:
        return False
    text = " ".join(got)
    return re.search(r"(?<![\w'])" + re.escape(" ".join(want)) + r"(?![\w'])", text) is not None and not re.search(
        r"\b(?:not|isn't|no)\b\s*" + re.escape(want[0]), text
    )


def _number(text: str) -> sympy.Expr | None:
    text = text.strip().rstrip("°%").replace(" ", "")
    if not re.fullmatch(r"-?\d+(?:\.\d+)?(?:/\d+)?", text):
        return None
    return sympy.nsimplify(sympy.Rational(text) if "/" in text else sympy.Rational(str(sympy.Float(text))))


def _check_feedback(talk: Talk, topic, question) -> str:
    if talk.act is Act.JUST_TELL and talk.subject.id == "mathematics":
        # A maths check question is a problem of its own: hint, never hand it over.
        solved = active_problem(talk.students[:-1])
        done = (
            f"You've already solved `{solved[0].display}`: **{solved[0].answer_text()}** is right. " if solved else ""
        )
        return (
            f"{done}The new one is yours to try, and I won't give it away: **{question.question}**\n\n"
            f"**Hint:** {ordered_hints(topic, question.question)[0]}"
        )
    if talk.act is Act.JUST_TELL:
        return (
            f"The answer is **{question.answer}**. {topic.hints[min(1, len(topic.hints) - 1)]}\n\n"
            f"{_next_check_line(topic, question)}"
        )
    if grade(question.answer, talk.text, maths=talk.subject.id == "mathematics").correct:  # as tutor.mastery records it
        return f"Yes, that's right: **{question.answer}**. Well done!\n\n{_next_check_line(topic, question)}"
    return (
        f"Not quite. **Hint:** {topic.hints[0]}\n\n"
        f"Have another go: **{question.question}** (Or say *I don't know* for more help.)"
    )


def _next_check_line(topic, answered) -> str:
    questions = list(topic.check_questions)
    following = questions[(questions.index(answered) + 1) % len(questions)] if answered in questions else questions[0]
    if following is answered:
        return f"Would you like to try something else in {topic.name.lower()}?"
    return f"Here's another one: **{following.question}**"


# ----------------------------------------------------------------------------- topics


def _overlap(a: str, b: str) -> int:
    from tutor.curriculum.search import STOP_WORDS, stem, words

    def terms(text: str) -> set[str]:
        return {stem(w) for w in words(text) if w not in STOP_WORDS}

    return len(terms(a) & terms(b))


def relevant_check(topic, text: str):
    """The topic's check question closest to what the student asked (the first one on a tie)."""
    questions = list(topic.check_questions)
    return max(questions, key=lambda q: (_overlap(text, f"{q.question} {q.answer}"), -questions.index(q)))


def ordered_hints(topic, text: str) -> list[str]:
    """The topic's hints, general to specific, with the one closest to the message moved first."""
    hints = list(topic.hints)
    best = max(hints, key=lambda h: (_overlap(text, h), -hints.index(h)))
    return [best, *[h for h in hints if h is not best]] if _overlap(text, best) else hints


def _topic_turn(talk: Talk, pending) -> str:
    topics_now = talk.topics(talk.text)
    context = talk.context_topic()
    if talk.act in HELP_ACTS:
        if pending is not None and talk.act is not Act.JUST_TELL:
            topic, question = pending
            level = context[1] if context and context[0] == topic.id else 1
            return _topic_reply(topic, level, _asked(talk, topic.id))
        if context is not None and (not topics_now or topics_now[0] == context[0]):
            topic = talk.subject.topic(context[0])
            if talk.act is Act.JUST_TELL:
                return _worked_example(topic, "Here's one worked all the way through, so you can see every step.")
            return _topic_reply(topic, context[1], _asked(talk, topic.id))
    if talk.act is Act.ACK and context is not None and not topics_now:
        topic = talk.subject.topic(context[0])
        return f"Great. Let's check it has stuck: **{relevant_check(topic, _asked(talk, topic.id)).question}**"
    if not topics_now:
        if talk.act in HELP_ACTS:
            return (
                "Of course I'll help. Which question are you working on? Type it in, or tell me the topic, "
                f"and we'll take it one step at a time. In {talk.subject.name} we can work on "
                f"{subject_topics_text(talk.subject)}."
            )
        if find_proposal_with_text(talk.text) is not None and talk.subject.id == "mathematics":
            return "Which question is that the answer to? Type the question too, and I'll check your answer."
        return fallback(talk.subject)
    topic = talk.subject.topic(topics_now[0])
    level = context[1] if context and context[0] == topic.id and talk.act in HELP_ACTS else 0
    return _topic_reply(topic, level, talk.text)


def _asked(talk: Talk, topic_id: str) -> str:
    """The student's latest earlier message about the topic (what the hints should be about)."""
    for turn in reversed(talk.students[:-1]):
        if topic_id in talk.topics(turn):
            return turn
    return ""


def _topic_reply(topic, level: int, about: str = "") -> str:
    """Level 0: the explanation and a check question; then the hints one by one; then the
    worked example. ``about`` (what the student asked) picks the closest check question and hint."""
    hints = ordered_hints(topic, about)
    question = relevant_check(topic, about).question
    if level == 0:
        # A misconception with worked numbers ("1/2 + 1/3 = 2/5 (it is 5/6)") reads as a worked answer: left out.
        mix_ups = [m for m in topic.misconceptions if not re.search(r"\d", m)]
        slip = f"\n\n*A common mix-up:* {mix_ups[0]}" if mix_ups else ""
        return f"This is about **{topic.name}**. {topic.explanation}{slip}\n\nLet's check: **{question}**"
    if level <= len(hints):
        return (
            f"Let me put it another way.\n\n**Hint {level}:** {hints[level - 1]}\n\nWith that in mind: **{question}**"
        )
    return _worked_example(topic, "Let's look at an example worked all the way through.")


def _worked_example(topic, intro: str) -> str:
    question = topic.check_questions[1 if len(topic.check_questions) > 1 else 0].question
    return f"{intro}\n\n{topic.worked_example}\n\nNow try one yourself: **{question}**"


# ----------------------------------------------------------------------------- maths


def _unsolved_problem(talk: Talk) -> Problem | None:
    found = active_problem(talk.students[:-1])
    if found is None:
        return None
    problem, index = found
    return None if _solved(problem, talk.students[index + 1 : -1]) else problem


def _solved(problem: Problem, turns: list[str]) -> bool:
    for turn in turns:
        proposal = find_proposal_with_text(turn) if find_problem(turn) is None else None
        if proposal is not None and check(problem, proposal[0]).correct:
            return True
    return False


def _maths_turn(talk: Talk) -> str | None:
    claim = find_claim(talk.text)
    if claim is not None:
        problem, value, said = claim
        return _verdict(problem, value, said, talk.subject, claimed=True)
    if find_problem(talk.text) is not None:
        return _first_hint(find_problem(talk.text), talk.subject)
    found = active_problem(talk.students[:-1])
    if found is None:
        return None
    problem, index = found
    since = talk.students[index + 1 : -1]
    solved = _solved(problem, since)
    proposal = find_proposal_with_text(talk.text)
    if proposal is not None:
        return _verdict(problem, *proposal, subject=talk.subject)
    topics_now = talk.topics(talk.text)
    if topics_now and problem.topic not in topics_now:
        return None  # a question about something else: the topic layer answers it
    if solved:
        if talk.act in HELP_ACTS:
            return (
                f"You've already solved that one: **{problem.answer_text()}** is right. "
                "Would you like another problem like it? Type one in, or ask me about a new topic."
            )
        return None
    if talk.act is Act.ACK:
        return f"Great, have a go: work out `{problem.display}` one step at a time and tell me what you get."
    if talk.act is Act.QUESTION and topics_now:
        return None
    level = 1 + sum(1 for turn in since if dialogue_act(turn) in HELP_ACTS or dialogue_act(turn) is Act.OTHER)
    hint = _next_hint(problem, level=level, subject=talk.subject)
    if talk.act is Act.JUST_TELL:
        return (
            "I won't just give you the answer: working it out is what makes it stick, and you're closer than "
            f"you think. Here's a bigger step.\n\n{hint.split(chr(10) + chr(10), 1)[-1]}"
        )
    return hint


# ----------------------------------------------------------------------------- problems


def _first_hint(problem: Problem, subject) -> str:
    topic = subject.topic(problem.topic)
    idea = f"This is a question about **{topic.name.lower()}**. " if topic else ""
    p = problem
    if p.kind == "equation":
        a, c, d = _linear_parts(p)
        if c is not None:
            ops = f"multiplied by {format_value(a)}, then {_signed(c)}" if a != 1 else _signed(c)
            return (
                f"{idea}An equation is like a balance: whatever you do to one side, do to the other.\n\n"
                f"**Hint:** In `{p.display}`, {p.variable} is {ops}. To get {p.variable} on its own, undo those "
                "steps in reverse order.\n\n"
                f"Which operation would you undo **first**, and what does the equation look like after you do it to both sides?"
            )
        return (
            f"{idea}Here {p.variable} appears on both sides, so the first job is to collect the {p.variable}-terms.\n\n"
            f"**Hint:** Expand any brackets, then move every {p.variable}-term to one side and every plain number "
            "to the other, doing the same to both sides.\n\nWhat do you get when you collect them?"
        )
    if p.kind == "fraction":
        dens = _denominators(p)
        if len(dens) >= 2:
            return (
                f"{idea}To add or subtract fractions, they need the **same denominator** (bottom number).\n\n"
                f"**Hint:** Find a number that both {' and '.join(map(str, dens))} divide into exactly.\n\n"
                "What is the smallest such number, and how would you rewrite each fraction with it?"
            )
    if p.kind == "simplify":
        return (
            f"{idea}A fraction is simplified when the top and bottom have no common factor except 1.\n\n"
            f"**Hint:** Look for a number that divides both {p.display.split('/')[0]} and {p.display.split('/')[1]}.\n\n"
            "What is the **largest** number that divides both?"
        )
    if p.kind == "percentage":
        return (
            f"{idea}*Per cent* means *out of 100*, so a percentage is a fraction with 100 on the bottom.\n\n"
            "**Hint:** Find 1% first (divide by 100), then scale up to the percentage you need.\n\n"
            "What is 1% of the amount in your question?"
        )
    if p.kind == "rate":
        return (
            f"{idea}A rate tells you how much of one thing there is **per one** of another, like kilometres per hour.\n\n"
            f"**Hint:** You want the amount for **one** unit of time ({p.unit}).\n\n"
            "Which number would you divide by which?"
        )
    if p.kind == "geometry":
        return idea + _geometry_hint(p, 0)
    operation = _single_operation(p)
    if operation is not None:
        return idea + _operation_hint(operation, 0)
    return (
        f"{idea}Let's be careful about the **order of operations**: brackets first, then powers, then × and ÷ "
        "(left to right), then + and − (left to right).\n\n"
        f"**Hint:** In `{p.display}`, find the part that has to be worked out first.\n\n"
        "Which part is that, and what does it come to?"
    )


def _single_operation(p: Problem) -> tuple[str, sympy.Expr, sympy.Expr] | None:
    """For a bare sum, difference, product or quotient of two numbers: (operator, left, right)."""
    if p.kind != "arithmetic":
        return None
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([-+*/])\s*(\d+(?:\.\d+)?)\s*", p.display)
    if not match:
        return None
    return match.group(2), sympy.nsimplify(match.group(1)), sympy.nsimplify(match.group(3))


def _operation_hint(operation: tuple[str, sympy.Expr, sympy.Expr], level: int) -> str | None:
    """Hints for a bare two-number sum: level 0 the idea, then more specific steps, None when out."""
    op, a, b = operation
    av, bv = format_value(a), format_value(b)
    steps: list[str]
    if op == "*":
        big, small = (a, b) if a >= b else (b, a)
        tens, ones = (small // 10) * 10, small % 10
        if small >= 10 and ones and small == int(small):
            split = f"{format_value(small)} = {format_value(tens)} + {format_value(ones)}"
            steps = [
                f"Multiplying is easier in parts. Split the smaller number: {split}. Then {av} × {bv} is "
                f"{format_value(big)} × {format_value(tens)} plus {format_value(big)} × {format_value(ones)}.\n\n"
                f"What is {format_value(big)} × {format_value(tens)}?",
                f"Now work out {format_value(big)} × {format_value(ones)}, then add the two parts together.",
            ]
        else:
            steps = [
                f"Multiplying means adding equal groups: {av} × {bv} is {bv} groups of {av}. "
                "Start from a fact you know (such as × 10 or × 2) and build up.\n\nWhat do you get?",
                f"Try {av} × 10 first, then adjust: how many more (or fewer) groups of {av} do you need?",
            ]
    elif op == "/":
        steps = [
            f"Dividing asks *how many times does {bv} fit into {av}?* Estimate first: work out 10 × {bv}, "
            f"and compare it with {av}.\n\nIs it more or less?",
            f"Take away as many tens of {bv} as you can from {av}, then count how many more {bv}s fit into "
            "what is left. Add the two counts.",
        ]
    else:
        word = "add" if op == "+" else "take away"
        steps = [
            f"To {word} bigger numbers, work with the tens and the ones separately (or in columns).\n\n"
            f"What do you get when you {word} the tens of {av} and {bv}?",
            f"Now {word} the ones, and combine that with your tens; remember to exchange ten ones for a ten "
            "if you need to.",
        ]
    if level >= len(steps):
        return None
    return f"**Hint:** {steps[0]}" if level == 0 else steps[level]


def _geometry_hint(p: Problem, level: int) -> str | None:
    quantity, shape, dims = p.parts
    d = {k: format_value(v) for k, v in dims}
    if shape == "circle":
        if quantity == "area":
            steps = [
                f"The area of a circle is **A = πr²**, where r is the radius (here r = {d['radius']}).\n\n"
                "What is r² (the radius times itself)?",
                "Now multiply r² by π. You can leave π in the answer, or use a calculator's π (or 3.14) and "
                "round to 2 decimal places.",
            ]
        else:
            steps = [
                f"The circumference of a circle is **C = 2πr** (or πd), where r is the radius (here r = {d['radius']}).\n\n"
                "What is 2 × r?",
                "Now multiply that by π, and round to 2 decimal places (or leave π in the answer).",
            ]
    elif quantity == "area" and shape == "triangle":
        steps = [
            "The area of a triangle is **½ × base × perpendicular height**.\n\nWhat is the base times the height?",
            "Now halve it: a triangle is half of the rectangle around it.",
        ]
    elif quantity == "area":
        steps = [
            "The area of a rectangle (or square) is **length × width**: the number of unit squares that cover it."
            "\n\nWhich two numbers do you multiply?",
            "Multiply them, and give the answer in square units (cm², m²).",
        ]
    else:
        steps = [
            "The perimeter is the distance **all the way around**: add the lengths of every side.\n\n"
            "How many sides are there, and how long is each one?",
            "A rectangle has two lengths and two widths, so its perimeter is 2 × (length + width). Work out "
            "length + width first.",
        ]
    if level >= len(steps):
        return None
    return f"**Hint:** {steps[0]}" if level == 0 else steps[level]


def _next_hint(problem: Problem, level: int, subject) -> str:
    p = problem
    specific: list[str] = []
    if p.kind == "equation":
        a, c, d = _linear_parts(p)
        if c is not None and c != 0:
            specific.append(
                f"Undo the {_signed(c)} first: {'take' if c > 0 else 'add'} {format_value(abs(c))} "
                f"{'away from' if c > 0 else 'to'} **both** sides. What is left on each side?"
            )
        if c is not None and a != 1:
            rest = d - c
            specific.append(
                f"After that step the equation reads `{format_value(a)}{p.variable} = {format_value(rest)}`. "
                f"What do you do to both sides to get {p.variable} on its own?"
            )
    elif p.kind == "fraction":
        dens = _denominators(p)
        if len(dens) >= 2:
            common = math.lcm(*dens)
            specific.append(
                f"A common denominator here is **{common}**. Multiply the top and bottom of each fraction so that its "
                f"bottom becomes {common}. What are the two new fractions?"
            )
            specific.append(
                f"With both fractions over {common}, add (or subtract) the **numerators** only and keep {common} "
                "underneath. Then check whether the result can be simplified."
            )
    elif p.kind == "simplify":
        top, bottom = (int(x) for x in p.display.split("/"))
        g = math.gcd(top, bottom)
        specific.append(f"List the factors of {top} and of {bottom}. Which is the biggest one they share?")
        if g > 1:
            specific.append(f"Both {top} and {bottom} can be divided by **{g}**. Divide the top and the bottom by it.")
    elif p.kind == "percentage" and p.parts:
        pct, whole = p.parts
        specific.append(
            f"1% of {format_value(whole)} is {format_value(whole)} ÷ 100. Work that out, then multiply by "
            f"{format_value(pct)}."
        )
    elif p.kind == "rate":
        specific.append("Divide the amount by the time: the answer is the amount for one unit of time.")
    elif p.kind == "geometry":
        specific += [step for step in (_geometry_hint(p, 1),) if step]
    elif _single_operation(p) is not None:
        specific += [step for step in (_operation_hint(_single_operation(p), 1),) if step]
    else:
        specific.append(
            "Rewrite the problem one step at a time: work out the first operation, write the shorter expression, "
            "and repeat."
        )
    if level - 1 < len(specific):
        return f"Let's go one step further.\n\n**Hint {level + 1}:** {specific[level - 1]}\n\nTell me what you get."
    return _similar_example(p)


def _similar_example(p: Problem) -> str:
    intro = "Here is a *similar* problem with different numbers, worked all the way through:\n\n"
    outro = "\n\nNow do yours with the same steps. What do you get?"
    if p.kind == "equation":
        a, c, _d = _linear_parts(p)
        if c is not None:
            a2 = int(a) + 1 if a == int(a) else 3
            x2 = int(p.answer) + 3 if p.answer == int(p.answer) else 4
            c2 = int(c) + 2 if c == int(c) else 5
            d2 = a2 * x2 + c2
            return (
                intro + f"Solve `{a2}x + {c2} = {d2}`.\n\n"
                f"1. Take {c2} from both sides: `{a2}x = {d2 - c2}`.\n"
                f"2. Divide both sides by {a2}: `x = {x2}`.\n"
                f"3. Check: {a2} × {x2} + {c2} = {d2}. ✓" + outro
            )
    if p.kind in {"fraction", "simplify"}:
        return (
            intro + "`1/4 + 2/3`: a common denominator of 4 and 3 is 12.\n\n"
            "1. `1/4 = 3/12` and `2/3 = 8/12`.\n2. Add the numerators: `3/12 + 8/12 = 11/12`.\n"
            "3. 11 and 12 share no factor, so `11/12` is already simplified." + outro
        )
    if p.kind == "percentage":
        return intro + "`15% of 60`: 1% of 60 is 0.6, so 15% is 15 × 0.6 = **9**." + outro
    if p.kind == "geometry":
        quantity, shape, _dims = p.parts
        examples = {
            ("area", "circle"): "Area of a circle with radius 5: r² = 25, so A = 25π ≈ **78.54**.",
            ("circumference", "circle"): "Circumference of a circle with radius 5: 2r = 10, so C = 10π ≈ **31.42**.",
            ("perimeter", "circle"): "Circumference of a circle with radius 5: 2r = 10, so C = 10π ≈ **31.42**.",
            ("area", "triangle"): "Triangle with base 10 and height 3: 10 × 3 = 30, half of it is **15**.",
            ("perimeter", "rectangle"): "Rectangle 9 by 2: 9 + 2 = 11, and 2 × 11 = **22**.",
            ("perimeter", "square"): "Square with side 9: four sides of 9 make **36**.",
        }
        worked = examples.get((quantity, shape), "Rectangle 9 by 2: 9 × 2 = **18** square units.")
        return intro + worked + outro
    operation = _single_operation(p)
    if operation is not None:
        worked = {
            "*": "`14 × 12`: 14 × 10 = 140 and 14 × 2 = 28, so 140 + 28 = **168**.",
            "/": "`96 ÷ 8`: 8 × 10 = 80 leaves 16, and 8 × 2 = 16, so 10 + 2 = **12**.",
            "+": "`36 + 47`: tens 30 + 40 = 70, ones 6 + 7 = 13, so 70 + 13 = **83**.",
            "-": "`83 − 47`: 83 − 40 = 43, then 43 − 7 = **36**.",
        }[operation[0]]
        return intro + worked + outro
    if p.kind == "rate":
        return intro + "`150 km in 3 hours`: 150 ÷ 3 = **50 km per hour**." + outro
    return intro + "`5 + 3 × 4`: multiplication comes first, 3 × 4 = 12; then 5 + 12 = **17** (not 32)." + outro


SLIPS = {
    "sign": "Check your signs: to undo **+** a number you take it away from both sides, and to undo **−** you add it.",
    "divide": "You're nearly there: you still need to divide by the number in front of {var}.",
    "order of operations": "It looks like you worked from left to right. Remember the **order of operations**: "
    "× and ÷ come before + and −, unless brackets say otherwise.",
    "common denominator": "It looks like you added the tops together and the bottoms together. That's a very common "
    "mix-up: fractions can only be added once they have a **common denominator** (the same bottom number).",
    "percent means per hundred": "Remember that *per cent* means *out of 100*: divide by 100 before you multiply.",
    "area or perimeter": "That looks like the {other} rather than the {quantity}: check which one the question asks for.",
    "circle formula": "Check the formula: the area of a circle is πr² (radius times itself, times π), and the "
    "circumference is 2πr.",
}


def _verdict(problem: Problem, proposal: sympy.Expr, said: str, subject, claimed: bool = False) -> str:
    verdict = check(problem, proposal)
    topic = subject.topic(problem.topic)
    if verdict.correct:
        follow = ""
        others = [q for q in (topic.check_questions if topic else ()) if problem.display not in q.question]
        if others:
            follow = f"\n\nReady for another? **{others[0].question}**"
        shown = said if problem.kind == "geometry" else problem.answer_text()
        exact = (
            f" (exactly {problem.answer_text()})"
            if problem.kind == "geometry" and said != format_value(problem.answer)
            else ""
        )
        return (
            f"Yes, **{shown}** is right{exact}. Well done!\n\n"
            f"Can you explain in one sentence *why* your first step works? Explaining it is the best way to make it stick."
            + follow
        )
    quantity = problem.parts[0] if problem.kind == "geometry" else ""
    hint = SLIPS.get(verdict.slip or "", "Let's find the slip together.").format(
        var=problem.variable, quantity=quantity, other="perimeter" if quantity == "area" else "area"
    )
    if problem.kind == "equation" and problem.parts:
        _a, _b, left, right = problem.parts
        var = sympy.Symbol(problem.variable or "x")
        lhs, rhs = left.subs(var, proposal), right.subs(var, proposal)
        check_it = (
            f"\n\nTry putting {problem.variable} = {said} back in: the left side gives {format_value(lhs)} "
            f"and the right side gives {format_value(rhs)}. Do they match?"
        )
    elif problem.kind == "geometry" and problem.answer.has(sympy.pi) and "." in said:
        check_it = "\n\nGo through your working again, and round to 2 decimal places at the very end."
    else:
        check_it = "\n\nGo through your working one step at a time and check each step."
    if claimed:
        return f"Not quite: `{problem.display}` isn't {said}. {hint}{check_it}"
    return f"Not quite: {said} isn't right yet. {hint}{check_it}"


# ----------------------------------------------------------------------------- helpers


def _linear_parts(p: Problem) -> tuple[sympy.Expr, sympy.Expr | None, sympy.Expr | None]:
    """For ``a x + c = d`` (x only on the left): a, c, d. Otherwise (a, None, None)."""
    a, _b, left, right = p.parts
    var = sympy.Symbol(p.variable or "x")
    if right.has(var):
        return a, None, None
    left = sympy.expand(left)
    return a, left.subs(var, 0), right


def _signed(value: sympy.Expr) -> str:
    return f"+ {format_value(value)}" if value >= 0 else f"− {format_value(-value)}"


def _denominators(p: Problem) -> list[int]:
    return [int(d) for d in re.findall(r"\d+\s*/\s*(\d+)", p.display)]
