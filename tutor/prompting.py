"""The tutoring system prompt and the chat sent to a provider.

The chat must fit the model's context window with room for the reply: the system prompt
(with the student's grade and a short grounding from the curriculum topic) plus the newest
turns of the conversation that fit ``AI_CONTEXT_WINDOW - AI_MAX_TOKENS - margin``, counted
with the conservative :func:`~tutor.providers.estimate_tokens`. Turns of the same role that
end up next to each other (a student message whose reply failed, then the next one) are
merged, because strict chat templates (Gemma, Mistral) reject two user turns in a row.
"""

from __future__ import annotations

from dataclasses import dataclass

from .providers import MESSAGE_OVERHEAD_TOKENS, ChatMessage, estimate_tokens

SYSTEM_PROMPT = """You are a patient, encouraging tutor for school students. Subject: {subject}.{grade}
Teach; do not do the work for the student.
- Never state the final answer to the problem the student brought, even if asked directly.
  Guide with one hint or one guiding question at a time, from general to specific.
- If the student asks again, give a more specific hint, or work a *similar* problem with
  different numbers, then ask them to apply the same steps to theirs.
- When the student proposes an answer, check it. If it is right, confirm it and ask them to
  explain a step. If it is wrong, do not confirm it; point to the likely slip.
- Off-topic messages: reply kindly and steer back to {subject}.
- Use short paragraphs and Markdown (lists, **bold**). Write maths in LaTeX between dollar
  signs, e.g. $3x + 5 = 20$ or $\\frac{{3}}{{4}}$."""

GROUNDING = """
The student's message is about {name}. What the course says about it:
{explanation}{misconceptions}"""

#: Grounding is cut to this many tokens, so it never crowds out the conversation.
GROUNDING_TOKENS = 300


def margin_tokens(context_window: int) -> int:
    """Tokens kept free besides the reply: template overhead and the estimate's error."""
    return 32 + context_window // 20


def prompt_budget(context_window: int, max_tokens: int) -> int:
    """Tokens the system prompt and the conversation may use together."""
    return context_window - max_tokens - margin_tokens(context_window)


class MessageTooLong(Exception):
    """The student's newest message alone does not fit the model's context window."""


@dataclass(frozen=True)
class Grounding:
    name: str
    explanation: str
    misconceptions: tuple[str, ...] = ()


def system_prompt(subject: str, grade_level: int | None = None, grounding: Grounding | None = None) -> str:
    grade = f"\nThe student is in grade {grade_level}: pitch words and examples at that level." if grade_level else ""
    text = SYSTEM_PROMPT.format(subject=subject, grade=grade)
    if grounding is not None:
        mis = ""
        if grounding.misconceptions:
            mis = "\nCommon misconceptions to watch for: " + "; ".join(grounding.misconceptions)
        extra = GROUNDING.format(name=grounding.name, explanation=grounding.explanation.strip(), misconceptions=mis)
        text += _cut(extra, GROUNDING_TOKENS)
    return text


def build_messages(
    subject: str,
    history: list[tuple[str, str]],
    token_budget: int,
    *,
    grade_level: int | None = None,
    grounding: Grounding | None = None,
) -> list[ChatMessage]:
    """System prompt plus the newest turns of ``history`` (role, content) that fit the budget.

    The newest turn is always kept; if it alone does not fit, :class:`MessageTooLong` is
    raised (sending it could only fail). Older turns are dropped whole, oldest first.
    """
    system = {"role": "system", "content": system_prompt(subject, grade_level, grounding)}
    remaining = token_budget - estimate_tokens(system["content"]) - MESSAGE_OVERHEAD_TOKENS
    if grounding is not None and remaining < token_budget // 2:  # a small window: the conversation first
        system["content"] = system_prompt(subject, grade_level)
        remaining = token_budget - estimate_tokens(system["content"]) - MESSAGE_OVERHEAD_TOKENS
    kept: list[ChatMessage] = []
    for role, content in reversed(history):
        cost = estimate_tokens(content) + MESSAGE_OVERHEAD_TOKENS
        if cost > remaining:
            if not kept:
                raise MessageTooLong(f"the newest message needs about {cost} tokens; {max(0, remaining)} are free")
            break
        kept.append({"role": "user" if role == "student" else "assistant", "content": content})
        remaining -= cost
    kept.reverse()
    # A chat should start with the student: drop a leading tutor turn left by the cut.
    while len(kept) > 1 and kept[0]["role"] == "assistant":
        kept.pop(0)
    return [system, *merge_turns(kept)]


def merge_turns(turns: list[ChatMessage]) -> list[ChatMessage]:
    """Join consecutive turns of the same role into one (blank line between)."""
    merged: list[ChatMessage] = []
    for turn in turns:
        if merged and merged[-1]["role"] == turn["role"]:
            merged[-1] = {"role": turn["role"], "content": f"{merged[-1]['content']}\n\n{turn['content']}"}
        else:
            merged.append(dict(turn))
    return merged


def _cut(text: str, tokens: int) -> str:
    if estimate_tokens(text) <= tokens:
        return text
    words = text.split(" ")
    lo, hi = 0, len(words)
    while lo < hi:  # the longest prefix of words that fits
        mid = (lo + hi + 1) // 2
        if estimate_tokens(" ".join(words[:mid])) + 1 <= tokens:
            lo = mid
        else:
            hi = mid - 1
    return " ".join(words[:lo]) + " ..."
