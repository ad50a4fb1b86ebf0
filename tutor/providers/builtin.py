"""The offline tutor: deterministic replies built from the curriculum, streamed like a model.

It teaches the way the system prompt asks a model to: name the idea, give a hint, ask a
guiding question; later turns on the same topic give more specific hints, then work a
similar example. It never needs the network, so it is the default and what tests use.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

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
        for chunk in re.findall(r"\S+\s*|\s+", reply):
            if self.chunk_delay:
                time.sleep(self.chunk_delay)
            yield chunk


def _topic_of(text: str, subject: str) -> str | None:
    from tutor.curriculum import match_topics

    found = match_topics(text, subject)
    return found[0] if found else None


def compose_reply(messages: list[ChatMessage], context: ReplyContext) -> str:
    from tutor.curriculum import get_curriculum

    subject = get_curriculum().subjects.get(context.subject)
    user_turns = [m["content"] for m in messages if m["role"] == "user"]
    text = user_turns[-1] if user_turns else ""
    if subject is None:
        return "Let's pick a subject first. Which subject are you working on?"

    topic_id = _topic_of(text, subject.id)
    earlier = None
    if topic_id is None:  # a follow-up ("I still don't get it") continues the last topic
        for previous in reversed(user_turns[:-1]):
            earlier = _topic_of(previous, subject.id)
            if earlier:
                break
        topic_id = earlier or context.topic_hint
    if topic_id is None or subject.topic(topic_id) is None:
        names = ", ".join(f"**{t.name}**" for t in subject.topics[:5])
        return (
            f"I'm here to help you with {subject.name.lower()}, and I'm not sure that question is about it. "
            f"We could work on {names}, or anything else in {subject.name.lower()}.\n\n"
            "What are you working on right now? Tell me the problem in your own words."
        )

    topic = subject.topic(topic_id)
    assert topic is not None
    # How many times has the tutor already helped on this topic in this conversation?
    level = sum(1 for prev in user_turns[:-1] if _topic_of(prev, subject.id) == topic.id)
    if earlier:
        level += 1
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
    return (
        "Let's look at a similar example worked all the way through, then you can do yours the same way.\n\n"
        f"{topic.worked_example}\n\nNow try the same steps on your problem. What do you get?"
    )
