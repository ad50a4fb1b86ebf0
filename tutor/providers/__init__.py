"""AI providers behind one small interface, picked by ``AI_PROVIDER``.

A provider turns a chat (``[{"role": "system"|"user"|"assistant", "content": ...}]``) into a
stream of text chunks. It reports token counts on a :class:`Usage` it is handed, and raises
:class:`ProviderError` saying whether trying again could help.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

ChatMessage = dict[str, str]


#: What a failure means for the student, by ``ProviderError.kind``. The operator's detail (the
#: exception's message) goes to the log and to the RQ job, never to the student.
STUDENT_MESSAGES = {
    "unavailable": "The tutor is unavailable right now. Try again in a minute.",
    "setup": "The tutor is not set up correctly, so it cannot answer. Please tell your teacher.",
    "too_long": "That message is too long for the tutor to read at once. "
    "Send a shorter part of it (a question and the lines it is about).",
    "empty": "The tutor could not come up with an answer. Try asking in a different way.",
}


class ProviderError(Exception):
    """A provider call failed; ``retryable`` says whether another try could succeed, ``kind``
    what to tell the student (a key of :data:`STUDENT_MESSAGES`)."""

    def __init__(self, message: str, *, retryable: bool, kind: str = "unavailable") -> None:
        super().__init__(message)
        self.retryable = retryable
        self.kind = kind if kind in STUDENT_MESSAGES else "unavailable"

    @property
    def student_message(self) -> str:
        return STUDENT_MESSAGES[self.kind]


class ContextOverflow(ProviderError):
    """The prompt did not fit the model's context window. Sending it again cannot help; a
    shorter history might."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=False, kind="too_long")


@dataclass
class Usage:
    """What the provider reported about one request (None: not reported)."""

    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    finish_reason: str | None = None  # "stop", "length" (cut at max_tokens), ...


@dataclass(frozen=True)
class ReplyContext:
    """What a provider may want beyond the chat itself (the builtin tutor uses it)."""

    subject: str
    topic_hint: str | None = None


class Provider(Protocol):
    name: str
    model: str

    def stream(self, messages: list[ChatMessage], usage: Usage, context: ReplyContext) -> Iterator[str]: ...


def get_provider(config: dict[str, Any]) -> Provider:
    name = config["AI_PROVIDER"]
    if name == "openai":
        from .openai_provider import OpenAIProvider

        return OpenAIProvider(
            base_url=config.get("OPENAI_BASE_URL") or None,
            api_key=config.get("OPENAI_API_KEY") or "not-needed",
            model=config["AI_MODEL"],
            timeout=float(config["AI_TIMEOUT"]),
            max_tokens=int(config.get("AI_MAX_TOKENS", 800)),
        )
    if name == "builtin":
        from .builtin import BuiltinProvider

        return BuiltinProvider(chunk_delay=float(config.get("BUILTIN_CHUNK_DELAY", 0.03)))
    raise ValueError(f"unknown AI_PROVIDER {name!r}")


_PIECES = re.compile(r"[^\W\d_]+|\d|[^\w\s]|_")

#: Tokens a chat template adds around each message (role markers, separators).
MESSAGE_OVERHEAD_TOKENS = 6


def estimate_tokens(text: str) -> int:
    """A conservative, tokenizer-free count: it should rather overshoot than undershoot.

    Real tokenizers (measured on llama.cpp with SmolLM2) split maths text into 1.3-1.4 times
    the "four characters a token" rule and numbers into 3.9 times as many, because digits and
    symbols are mostly tokens of their own. So: every digit and every symbol counts as one
    token, and a run of letters as one token per three letters (at least one). Whitespace is
    free. English prose comes out about 1.2x a real count, digit-heavy tables about 1.0-1.1x.
    """
    if not text:
        return 1
    count = 0
    for piece in _PIECES.findall(text):
        count += math.ceil(len(piece) / 3) if piece[0].isalpha() else 1
    return max(1, count)
