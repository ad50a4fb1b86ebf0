"""The offline tutor: deterministic replies from the curriculum and sympy, streamed like a model.

It teaches the way the system prompt asks a model to. For a problem the student brings it
names the idea, gives a first hint and asks a guiding question (never the final answer);
asked again, it gives a more specific hint, then works a *similar* problem with different
numbers. A proposed answer is checked exactly: a right one is confirmed and followed by a
question, a wrong one is not confirmed and gets a hint aimed at the likely slip. Messages
that are not about the subject are steered back to it.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Iterator

import sympy

from tutor.guardrail import active_problem
from tutor.problems import Problem, check, find_proposal_with_text, format_value

from . import ChatMessage, ReplyContext, Usage, estimate_tokens

MODEL = "builtin-tutor"


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


# ----------------------------------------------------------------------------- choosing a reply


def compose_reply(messages: list[ChatMessage], context: ReplyContext) -> str:
    from tutor.curriculum import get_curriculum, match_topics

    curriculum = get_curriculum()
    subject = curriculum.subjects.get(context.subject)
    turns = [m["content"] for m in messages if m["role"] == "user"]
    text = turns[-1] if turns else ""
    if subject is None:
        return "Let's pick a subject first. Which subject are you working on?"

    maths = subject.id == "mathematics"
    found = active_problem(turns) if maths else None
    if found is not None:
        problem, index = found
        if index == len(turns) - 1:
            return _first_hint(problem, subject)
        proposal = find_proposal_with_text(text)
        if proposal is not None:
            return _verdict(problem, *proposal, subject=subject)
        topics_now = match_topics(text, subject.id)
        if not topics_now or problem.topic in topics_now:
            return _next_hint(problem, level=len(turns) - 1 - index, subject=subject)

    topics = match_topics(text, subject.id)
    if not topics and _asks_again(text):
        for previous in reversed(turns[:-1]):  # "I still don't get it" continues the last topic
            topics = match_topics(previous, subject.id)
            if topics:
                break
    if not topics:
        return _steer_back(subject)
    topic = subject.topic(topics[0])
    assert topic is not None
    level = sum(1 for prev in turns[:-1] if topic.id in match_topics(prev, subject.id))
    return _topic_reply(topic, level)


_AGAIN = re.compile(
    r"\b(again|still|don'?t (get|understand)|do not (get|understand)|confused|stuck|another hint|more help|"
    r"help|what next|next step|explain|how|i'?m lost|not sure|no idea|\?)",
)


def _asks_again(text: str) -> bool:
    return bool(_AGAIN.search(text.lower()))


def _steer_back(subject) -> str:
    names = ", ".join(f"**{t.name}**" for t in subject.topics[:5])
    return (
        f"I'm your {subject.name.lower()} tutor, and I'm not sure that message is about {subject.name.lower()}. "
        f"We could work on {names}, or anything else in {subject.name.lower()}.\n\n"
        "What are you working on right now? Tell me the question in your own words, and we'll work through it together."
    )


def _topic_reply(topic, level: int) -> str:
    hints = topic.hints
    if level == 0:
        return (
            f"This is about **{topic.name}**. {topic.explanation}\n\n"
            f"**Hint:** {hints[0]}\n\n"
            "What do you think the first step is? Try it and tell me what you get."
        )
    if level < len(hints):
        return (
            f"Good, let's go one step further.\n\n**Hint {level + 1}:** {hints[level]}\n\n"
            "Have a go with that, and tell me your answer or where you get stuck."
        )
    question = topic.check_questions[0].question
    return (
        "Let's look at an example worked all the way through; then you can do yours the same way.\n\n"
        f"{topic.worked_example}\n\nNow try one yourself: **{question}** What do you get?"
    )


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
    return (
        f"{idea}Let's be careful about the **order of operations**: brackets first, then powers, then × and ÷ "
        "(left to right), then + and − (left to right).\n\n"
        f"**Hint:** In `{p.display}`, find the part that has to be worked out first.\n\n"
        "Which part is that, and what does it come to?"
    )


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
    if p.kind == "rate":
        return intro + "`150 km in 3 hours`: 150 ÷ 3 = **50 km per hour**." + outro
    return intro + "`5 + 3 × 4`: multiplication comes first, 3 × 4 = 12; then 5 + 12 = **17** (not 32)." + outro


def _verdict(problem: Problem, proposal: sympy.Expr, said: str, subject) -> str:
    verdict = check(problem, proposal)
    topic = subject.topic(problem.topic)
    if verdict.correct:
        follow = ""
        others = [q for q in (topic.check_questions if topic else ()) if problem.display not in q.question]
        if others:
            follow = f"\n\nReady for another? **{others[0].question}**"
        return (
            f"Yes, **{problem.answer_text()}** is right. Well done!\n\n"
            f"Can you explain in one sentence *why* your first step works? Explaining it is the best way to make it stick."
            + follow
        )
    slips = {
        "sign": "Check your signs: to undo **+** a number you take it away from both sides, and to undo **−** you add it.",
        "divide": f"You're nearly there: you still need to divide by the number in front of {problem.variable}.",
        "order of operations": "Remember the order of operations: × and ÷ come before + and −, unless brackets say otherwise.",
        "common denominator": "You can't add the tops and the bottoms separately: first rewrite both fractions over a common denominator.",
        "percent means per hundred": "Remember that *per cent* means *out of 100*: divide by 100 before you multiply.",
    }
    hint = slips.get(verdict.slip or "", "Let's find the slip together.")
    check_it = ""
    if problem.kind == "equation" and problem.parts:
        _a, _b, left, right = problem.parts
        var = sympy.Symbol(problem.variable or "x")
        lhs, rhs = left.subs(var, proposal), right.subs(var, proposal)
        check_it = (
            f"\n\nTry putting {problem.variable} = {said} back in: the left side gives {format_value(lhs)} "
            f"and the right side gives {format_value(rhs)}. Do they match?"
        )
    else:
        check_it = "\n\nGo through your working one step at a time and check each step."
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
