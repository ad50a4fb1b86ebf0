"""Any OpenAI-compatible chat-completions endpoint: OpenAI, Ollama, vLLM, llama.cpp."""

from __future__ import annotations

import functools
from collections.abc import Iterator

import openai

from . import ChatMessage, ProviderError, ReplyContext, Usage

RETRYABLE = (openai.RateLimitError, openai.InternalServerError, openai.APITimeoutError, openai.APIConnectionError)


@functools.lru_cache(maxsize=8)
def _client(base_url: str | None, api_key: str, timeout: float) -> openai.OpenAI:
    """One client (and its pool of HTTP connections) per endpoint and key in a process, so the
    worker, which runs replies in its own process (``worker.AppWorker``), keeps its connection
    to the provider between replies. Forked work horses start with none and make their own."""
    # Retries belong to the RQ job (visible as ``attempts``), not to the client.
    return openai.OpenAI(base_url=base_url, api_key=api_key, timeout=timeout, max_retries=0)


class OpenAIProvider:
    name = "openai"

    def __init__(self, *, base_url: str | None, api_key: str, model: str, timeout: float) -> None:
        self.model = model
        self.client = _client(base_url, api_key, timeout)

    def stream(self, messages: list[ChatMessage], usage: Usage, context: ReplyContext) -> Iterator[str]:  # noqa: ARG002
        try:
            response = self.client.chat.completions.create(
                model=self.model,
                messages=messages,  # type: ignore[arg-type]
                stream=True,
                stream_options={"include_usage": True},
                temperature=0.4,
            )
            for chunk in response:
                if chunk.usage is not None:
                    usage.prompt_tokens = chunk.usage.prompt_tokens
                    usage.completion_tokens = chunk.usage.completion_tokens
                for choice in chunk.choices:
                    if choice.delta and choice.delta.content:
                        yield choice.delta.content
        except RETRYABLE as exc:
            raise ProviderError(_describe(exc), retryable=True) from exc
        except openai.APIStatusError as exc:
            raise ProviderError(_describe(exc), retryable=False) from exc
        except openai.OpenAIError as exc:
            raise ProviderError(f"the AI service failed: {exc}", retryable=False) from exc


def _describe(exc: Exception) -> str:
    if isinstance(exc, openai.APITimeoutError):
        return "the AI service did not answer in time"
    if isinstance(exc, openai.APIConnectionError):
        return "the AI service could not be reached"
    if isinstance(exc, openai.APIStatusError):
        detail = ""
        if isinstance(exc.body, dict):
            err = exc.body.get("error", exc.body)
            detail = err.get("message", "") if isinstance(err, dict) else str(err)
        reasons = {
            401: "the API key was refused (check OPENAI_API_KEY)",
            403: "the API key may not use this model",
            404: "the model or endpoint was not found (check AI_MODEL and OPENAI_BASE_URL)",
            429: "the AI service is rate-limiting requests",
        }
        reason = reasons.get(exc.status_code) or f"the AI service answered {exc.status_code}"
        return f"{reason}{': ' + detail if detail else ''}"
    return str(exc)
