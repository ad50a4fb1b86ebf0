"""Any OpenAI-compatible chat-completions endpoint: OpenAI, Ollama, vLLM, llama.cpp."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator

import openai
from openai import _base_client

from . import ChatMessage, ProviderError, ReplyContext, Usage

# The HTTP library under the openai client (httpx, or its successor in newer releases): its
# transport errors can surface while a streamed body is being read.
_http = getattr(_base_client, "httpx2", None) or _base_client.httpx

RETRYABLE = (openai.RateLimitError, openai.InternalServerError, openai.APITimeoutError, openai.APIConnectionError)


_clients: dict[tuple[str | None, str, float], openai.OpenAI] = {}
_clients_lock = threading.Lock()


def _forget_clients() -> None:
    """In a forked child: the parent's pooled connections are not ours to share."""
    global _clients_lock
    _clients.clear()
    _clients_lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_clients)


def _client(base_url: str | None, api_key: str, timeout: float) -> openai.OpenAI:
    """One client (and its pool of HTTP connections) per endpoint and key in a process, so the
    worker, which runs replies in its own process (``worker.AppWorker``), keeps its connection
    to the provider between replies. Forked work horses start with none and make their own.

    Made under a lock: the reply worker starts a whole class's replies on threads at once, and
    each client costs about 10 ms of CPU (mostly its TLS context), so 200 threads missing an
    unlocked cache together built 200 clients.
    """
    key = (base_url, api_key, timeout)
    client = _clients.get(key)
    if client is None:
        with _clients_lock:
            client = _clients.get(key)
            if client is None:
                # Retries belong to the RQ job (visible as ``attempts``), not to the client.
                client = openai.OpenAI(base_url=base_url, api_key=api_key, timeout=timeout, max_retries=0)
                if len(_clients) >= 8:
                    _clients.clear()  # settings changed many times in one process (tests)
                _clients[key] = client
    return client


class OpenAIProvider:
    name = "openai"

    def __init__(self, *, base_url: str | None, api_key: str, model: str, timeout: float) -> None:
        self.model = model
        self.client = _client(base_url, api_key, timeout)

    def stream(self, messages: list[ChatMessage], usage: Usage, context: ReplyContext) -> Iterator[str]:  # noqa: ARG002
        """The reply's text pieces as the server sends them.

        The client sends the request and turns error statuses into its exceptions; the event
        stream itself is read line by line with ``json.loads``. The client's typed chunk
        objects cost about ten times as much CPU per chunk, which adds up when one worker
        streams a whole class's replies at once.
        """
        try:
            with self.client.chat.completions.with_streaming_response.create(
                model=self.model,
                messages=messages,  # type: ignore[arg-type]
                stream=True,
                stream_options={"include_usage": True},
                temperature=0.4,
            ) as response:
                for line in response.iter_lines():
                    if not line.startswith("data:"):
                        continue  # blank lines, comments (": ping"), event names
                    data = line[5:].strip()
                    if data == "[DONE]":
                        break
                    chunk = json.loads(data)
                    if not isinstance(chunk, dict):
                        continue
                    if chunk.get("error"):
                        error = chunk["error"]
                        message = error.get("message", "") if isinstance(error, dict) else str(error)
                        raise ProviderError(f"the AI service failed mid-reply: {message}", retryable=True)
                    if chunk.get("usage"):
                        usage.prompt_tokens = chunk["usage"].get("prompt_tokens")
                        usage.completion_tokens = chunk["usage"].get("completion_tokens")
                    for choice in chunk.get("choices") or ():
                        content = (choice.get("delta") or {}).get("content")
                        if content:
                            yield content
        except ProviderError:
            raise
        except ValueError as exc:  # not JSON: not an OpenAI-compatible stream
            raise ProviderError(
                f"the AI service sent something that is not an event stream: {exc}", retryable=False
            ) from exc
        except _http.TransportError as exc:
            raise ProviderError("the connection to the AI service broke mid-reply", retryable=True) from exc
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
