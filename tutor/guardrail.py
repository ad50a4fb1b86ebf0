"""The guardrail every provider shares: does a finished reply give away the final answer?

Research on AI tutoring (Bastani et al., PNAS 2025) found that unrestricted answers raised
practice scores but lowered exam scores; hints did no harm. So each finished reply is judged
and the verdict is stored on the message (``answer_revealed``) for the quality chart.

The judgement is answer-aware: a reply is read against what the answer *is*, from every
source there is (``tutor.answers``): a reference or hidden-solve answer, the curriculum
question the tutor asked, sympy on the student's problem or on the tutor's own arithmetic
question. Beside that, a few cues need no answer at all: "the correct answer is 9", "it
should be 6.21, not 6,210", "a shape with 5 sides is called a pentagon", a worked chain of
sums ending in a result the student never wrote. A reply that confirms the answer the
student already gave is not a give-away; one that praises a *wrong* final answer is flagged
(it tells the student, wrongly, that they are done). The verdict is ``None`` ("could not be
judged") when no answer is known and no cue is present.

Measured on human-labelled tutoring dialogues in ``bench/guardrail_eval.py`` and
``docs/QUALITY.md``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache

import sympy

from .answers import Answer, answer_to_question, from_value, numbers_in, values_in
from .problems import Problem, check, find_problem, find_proposal, format_value

Turn = tuple[str, str]  # (role: "student" | "tutor", content)


@dataclass(frozen=True)
class Verdict:
    reveals: bool | None  # None: could not be judged
    reason: str  # why, for logs and the evaluation's error analysis


# ----------------------------------------------------------------------------- the student's problem


def active_problem(student_messages: list[str]) -> tuple[Problem, int] | None:
    """The most recent problem the student brought, and the index of that message."""
    for index in range(len(student_messages) - 1, -1, -1):
        problem = find_problem(student_messages[index])
        if problem is not None:
            return problem, index
    return None


def student_problem_verdict(student_messages: list[str], reply: str) -> bool | None:
    """The first guardrail: only problems sympy parses from the student's own messages.

    Kept as one source of the answer-aware judgement and as the baseline the evaluation
    measures beside it."""
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
    if value.is_number and value.is_real and not value.is_integer:  # not e.g. sqrt(-3) or 2*pi*n
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


# ----------------------------------------------------------------------------- the answer-aware judgement


def reveals_answer(
    student_messages: list[str],
    reply: str,
    *,
    turns: Sequence[Turn] | None = None,
    answers: Sequence[Answer] = (),
) -> bool | None:
    """True if ``reply`` gives the final answer away; None if it could not be judged.

    ``turns`` is the whole conversation when known (the tutor's questions are a source of
    the answer); ``answers`` are answers known from elsewhere (hidden solve, curriculum)."""
    conversation = list(turns) if turns is not None else [("student", m) for m in student_messages]
    return judge(conversation, reply, answers=answers).reveals


def judge(conversation: Sequence[Turn], reply: str, *, answers: Sequence[Answer] = (), problem: str = "") -> Verdict:
    """The verdict on one reply, with its reason.

    ``answers`` are the problem's final answer from outside the dialogue (a reference, the
    hidden solve step, a curriculum question's answer); when there is one, the reply is judged
    against it alone. Otherwise the answer to the tutor's latest arithmetic question, then to
    the problem in the student's messages, stands in for it."""
    student = [content for role, content in conversation if role == "student"]
    tutor = [content for role, content in conversation if role == "tutor"]
    last_student = student[-1] if student else ""
    text = _plain(reply)
    found = active_problem(student)
    context = " ".join([problem, *tutor[-3:], student[found[1]] if found else ""])
    # The student's latest number is an answer of theirs, unless that message states the problem.
    student_final = _final_value(last_student) if not (found and found[1] == len(student) - 1) else None

    known = list(answers)
    if not known:
        asked = _asked_answer(conversation)
        if asked is not None:
            known.append(asked)
        if found is not None and (solved := from_value(found[0].answer, "problem")) is not None:
            known.append(solved)

    for answer in known:
        if _student_has_it(answer, last_student, student_final):
            return Verdict(False, f"the student gave the answer first ({answer.source})")
    for answer in known:
        if _states(answer, text, context):
            return Verdict(True, f"states the answer ({answer.source})")
        if _works_it_out(text, student, answer):
            return Verdict(True, f"works the solution out ({answer.source})")
    if _confirms_wrong(text, student_final, known, student):
        return Verdict(True, "confirms a wrong answer")
    if not answers:
        if _corrects_with_value(text, values_in(last_student)):
            return Verdict(True, "corrects the student with the value")
        if _names_the_answer(text, _last_question(conversation), last_student):
            return Verdict(True, "states the answer in words")
        if not known and _works_it_out(text, student, None):
            return Verdict(True, "works the solution out")
    if known:
        return Verdict(False, f"does not state the answer ({', '.join(sorted({a.source for a in known}))})")
    return Verdict(None, "no answer known and no give-away cue")


def _asked_answer(conversation: Sequence[Turn]) -> Answer | None:
    """The answer to the tutor's latest arithmetic question (within its last three turns)."""
    tutor_turns = [content for role, content in conversation if role == "tutor"][-3:]
    for content in reversed(tutor_turns):
        found = answer_to_question(content)
        if found is not None:
            return found
    return None


def _plain(text: str) -> str:
    return text.replace("*", "").replace("−", "-").replace("’", "'").replace("\u00a0", " ")


def _last_question(conversation: Sequence[Turn]) -> str:
    """The tutor's latest question (or exercise) before the student's latest message."""
    seen_student = False
    asked = []
    for role, content in reversed(conversation):
        if role == "student":
            if asked:
                break
            seen_student = True
            continue
        if seen_student or not asked:
            asked.append(content)
        if len(asked) >= 2:
            break
    for content in asked:
        if "?" in content or re.search(r"\b(?:what|how|find|calculate|solve|work out)\b", content, re.I):
            return content
    return asked[0] if asked else ""


def _final_value(text: str) -> Fraction | None:
    mentions = numbers_in(text)
    return mentions[-1].value if mentions else None


def _student_has_it(answer: Answer, last_student: str, student_final: Fraction | None) -> bool:
    if answer.value is not None:
        return student_final == answer.value
    return bool(answer.words and answer.found_in(last_student))


_ASSERT_BEFORE = re.compile(
    r"(?:=|\bis\b|\bare\b|\bequals?\b|\bget\b|\bgives?\b|\bmakes?\b|\bmaking\b|\btotal\b|\banswer\b|\bbe\b|"
    r"\bactually\b|\bresult\b|\bhave\b|\bhad\b|\bleaving\b|\bleaves\b|\bso\b|\bto\b|\bwas\b|\bwere\b|\bonly\b)"
    r"[^.?!\d]{0,12}$"
)


def _states(answer: Answer, text: str, context: str) -> bool:
    """The answer appears in the reply as a statement, not as a number of the question, an
    operand ("what is 4 minus 0?") or one of the choices offered ("closer to 10 or 20?")."""
    positions = answer.found_in(text)
    if not positions:
        return False
    in_context = answer.written_in(context)
    for position, end in positions:
        before = text[max(0, position - 40) : position].lower()
        after = text[end : end + 60].lower()
        if _OPERAND_AFTER.match(after) or _CHOICE.match(_sentence_at(text, position)):
            continue
        spelled = text[position : position + 1].isalpha()  # "one", "twelve": too common to count alone
        if (not in_context and not spelled) or _ASSERT_BEFORE.search(before):
            return True
    return False


_OPERAND_AFTER = re.compile(r"\s*(?:[-+*/x×]\s*\d|minus\b|plus\b|times\b|divided\b|multiplied\b|from\b)")
_CHOICE = re.compile(r"[^?]*\bor\b[^?]*\?")


def _sentence_at(text: str, position: int) -> str:
    start = max(text.rfind(".", 0, position), text.rfind("!", 0, position), text.rfind("?", 0, position)) + 1
    ends = [i for i in (text.find(c, position) for c in ".!?") if i != -1]
    return text[start : (min(ends) + 1 if ends else len(text))]


_CORRECTION = re.compile(
    r"(?:correct (?:answer|product|sum|result|total|value)\b[^.?!]{0,20}?\bis|answer (?:is|should be|would be)|"
    r"should (?:be|give us|get)|is actually|are actually|actually (?:is|get|be|equals?|have)|would actually|"
    r"we (?:actually )?get|the result (?:is|should be|would be)|equals?|=)\s*:?\s*\$?(-?[\d.,/]+)"
)


def _corrects_with_value(text: str, student_values: set[Fraction]) -> bool:
    """ "The answer should be 9", "it's 6.21, not 6,210": a value given in place of the student's."""
    lowered = text.lower()
    for match in _CORRECTION.finditer(lowered):
        value = numbers_in(match.group(1))
        if not value:
            continue
        tail = lowered[match.end() : match.end() + 40]
        instead = re.match(r"[^.?!]{0,25}?\b(?:not|instead of|rather than)\s+\$?([\d.,/]+)", tail)
        if instead and values_in(instead.group(1)) & student_values and value[0].value not in student_values:
            return True
        if re.search(r"correct|answer|actually|should", match.group(0)) and value[0].value not in student_values:
            return True
    return False


def _confirms_wrong(text: str, student_final: Fraction | None, known: list[Answer], student: list[str]) -> bool:
    """Praise that repeats the student's wrong answer to the question asked: "Great job, a hexagon
    indeed has 5 sides!". Only where the student's latest number answers the same question
    the answer is known for (the tutor's question, or the student's whole solution)."""
    if student_final is None or not known or not _praises(text) or student_final not in values_in(text):
        return False
    return any(a.source in ("question", "problem") for a in known) or len(student) == 1


_SHAPES = r"(?:quadrilateral|parallelogram|polygon|shape|rectangle|square|rhombus|triangle|pentagon|hexagon|octagon)"
_NAMING = re.compile(
    r"\b(?:is|are) (?:actually |also )?called (?:an? )?\w+|(?:\d|\bit'?s|\bit) (?:is |are )?(?:actually |indeed )?(?:an? )?(?:composite|prime)\b|"
    r"\bis (?:actually )?(?:in )?the (?:ones|tens|hundreds|thousands)\b|"
    r"\b(?:is|it'?s) (?:not just|actually|also|indeed)? ?an? (?:special |type of |kind of )*" + _SHAPES + "|"
    r"\b" + _SHAPES + r" (?:actually |indeed |also |does )?(?:has|have) (?:\d+|four|five|six|eight|three|two) "
    r"(?:right angles|sides|equal sides)"
)


def _names_the_answer(text: str, question: str, last_student: str) -> bool:
    """A word answer: "a shape with 5 sides is called a pentagon", "39 is a composite number"."""
    lowered = text.lower()
    for match in _NAMING.finditer(lowered):
        if not (values_in(match.group(0)) & values_in(last_student)):  # not the student's own "4 sides"
            return True
    asked = re.search(
        r"\bwhat (?:is|are) (?:an? |the )?(?:characteristics of (?:an? )?)?([a-z]+)\s*\?", question.lower()
    )
    if asked:
        term = asked.group(1)
        if re.search(
            rf"\b{re.escape(term)}s? (?:is|are|has|have) (?:actually |also |indeed )?(?:an?|all|four|two)\b", lowered
        ):
            return True
    return False


_EQUATION = re.compile(
    r"(\$?-?[\d.,]+(?:\s*(?:[-+*/x×]|times|minus|plus|divided by)\s*\$?-?[\d.,]+)+)\s*(?:=|equals|is)\s*\$?(-?[\d.,]+)"
)


def _works_it_out(text: str, student_messages: list[str], answer: Answer | None) -> bool:
    """Two or more worked steps ending in the answer (when it is known; a worked example with
    other numbers is teaching), or else in a result the student never wrote."""
    steps = [m for m in _EQUATION.finditer(text.lower()) if numbers_in(m.group(2))]
    if len(steps) < 2:
        return False
    last = numbers_in(steps[-1].group(2))[0].value
    if answer is not None:
        return answer.value == last
    return all(last not in values_in(message) for message in student_messages)


_PRAISE = re.compile(
    r"^\W*(?:tutor:\s*)?(?:that'?s (?:correct|right|exactly right)|correct|yes|exactly|you'?re (?:correct|right)|"
    r"great job|well done|excellent|perfect|good job)\b"
)
_BUT = re.compile(r"\b(?:but|however|not quite|mistake|double-check|recheck|re-check|let'?s check|wrong|incorrect)\b")


def _praises(text: str) -> bool:
    lowered = text.lower().strip().lstrip('"')
    return bool(_PRAISE.search(lowered)) and not _BUT.search(lowered)
