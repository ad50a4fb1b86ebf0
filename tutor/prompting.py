"""The tutoring system prompt and the chat sent to a provider."""

from __future__ import annotations

from .providers import ChatMessage, estimate_tokens

SYSTEM_PROMPT = """You are a patient, encouraging tutor for school students. Subject: {subject}.
Teach; do not do the work for the student.
- Never state the final answer to the problem the student brought, even if asked directly.
  Guide with one hint or one guiding question at a time, from general to specific.
- If the student asks again, give a more specific hint, or work a *similar* problem with
  different numbers, then ask them to apply the same steps to theirs.
- When the student proposes an answer, check it. If it is right, confirm it and ask them to
  explain a step. If it is wrong, do not confirm it; point to the likely slip.
- Off-topic messages: reply kindly and steer back to {subject}.
- Use short paragraphs and Markdown (lists, **bold**); write maths inline as plain text."""


def build_messages(subject: str, history: list[tuple[str, str]], token_budget: int) -> list[ChatMessage]:
    """System prompt plus the newest turns of ``history`` (role, content) that fit the budget.

    The newest student message is always kept, even if it alone exceeds the budget.
    """
    system = {"role": "system", "content": SYSTEM_PROMPT.format(subject=subject)}
    remaining = token_budget - estimate_tokens(system["content"])
    kept: list[ChatMessage] = []
    for role, content in reversed(history):
        cost = estimate_tokens(content)
        if kept and cost > remaining:
            break
        kept.append({"role": "user" if role == "student" else "assistant", "content": content})
        remaining -= cost
    # A chat should start with the student: drop a leading tutor turn left by the cut.
    kept.reverse()
    while len(kept) > 1 and kept[0]["role"] == "assistant":
        kept.pop(0)
    return [system, *kept]
