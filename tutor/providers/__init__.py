"""AI providers behind one small interface, picked by ``AI_PROVIDER``.

A provider turns a chat (``[{"role": "system"|"user"|"assistant", "content": ...}]``) into a
stream of text chunks. It reports token counts on a :class:`Usage` it is handed, and raises
:class:`ProviderError` saying whether trying again could help.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

ChatMessage = dict[str, str]


class ProviderError(Exception):
    """A provider call failed; ``retryable`` says whether another try could succeed."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


@dataclass
class Usage:
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


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
        )
    if name == "builtin":
        from .builtin import BuiltinProvider

        return BuiltinProvider(chunk_delay=float(config.get("BUILTIN_CHUNK_DELAY", 0.03)))
    raise ValueError(f"unknown AI_PROVIDER {name!r}")


def estimate_tokens(text: str) -> int:
    """A cheap, provider-independent estimate (about four characters a token)."""
    return max(1, len(text) // 4)
