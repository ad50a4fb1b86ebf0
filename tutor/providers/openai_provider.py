"""Any OpenAI-compatible chat-completions endpoint: OpenAI, Ollama, vLLM, llama.cpp."""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Iterator

import openai
from openai import _base_client

from . import ChatMessage, ContextOverflow, ProviderError, ReplyContext, Usage

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

    def __init__(
        self, *, base_url: str | None, api_key: str, model: str, timeout: float, max_tokens: int = 800
    ) -> None:
        self.model = model
        self.max_tokens = max_tokens
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
                # Without a cap, local servers write until the context is full (minutes).
                max_tokens=self.max_tokens,
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
                        if choice.get("finish_reason"):
                            usage.finish_reason = choice["finish_reason"]
                        content = (choice.get("delta") or {}).get("content")
                        if content:
                            yield content
        except ProviderError:
            raise
        except ValueError as exc:  # not JSON: not an OpenAI-compatible stream
            raise ProviderError(
                f"the AI service sent something that is not an event stream: {exc}", retryable=False, kind="setup"
            ) from exc
        except _http.TransportError as exc:
            raise ProviderError("the connection to the AI service broke mid-reply", retryable=True) from exc
        except RETRYABLE as exc:
            raise ProviderError(_describe(exc), retryable=True) from exc
        except openai.APIStatusError as exc:
            if _is_context_overflow(exc):
                raise ContextOverflow(_describe(exc)) from exc
            kind = "setup" if exc.status_code in (401, 403, 404) else "unavailable"
            raise ProviderError(_describe(exc), retryable=False, kind=kind) from exc
        except openai.OpenAIError as exc:
            raise ProviderError(f"the AI service failed: {exc}", retryable=False) from exc


def check_model(base_url: str | None, api_key: str, model: str, timeout: float = 5.0) -> str | None:
    """Ask the server's ``GET /v1/models`` whether ``model`` is there: None if it is (or the
    server does not list models), else one line saying what is wrong. Never raises.

    Permissive servers (llama.cpp, some proxies) answer any model name with whatever they have
    loaded, so a typo in AI_MODEL would otherwise go unnoticed.
    """
    where = base_url or "https://api.openai.com/v1"
    try:
        client = openai.OpenAI(base_url=base_url, api_key=api_key, timeout=timeout, max_retries=0)
        try:
            names = [m.id for m in client.models.list()]
        finally:
            client.close()
    except openai.APIStatusError as exc:
        if exc.status_code in (401, 403):
            return f"the AI service at {where} refused the API key ({exc.status_code}); check OPENAI_API_KEY"
        return None  # no model list here (404 and the like): nothing to check against
    except openai.APIConnectionError:
        return f"the AI service at {where} could not be reached; check OPENAI_BASE_URL (replies will fail until it answers)"
    except Exception as exc:  # noqa: BLE001 - a start-up check must not stop the worker
        return f"could not list the models at {where}: {exc}"
    if names and model not in names:
        listed = ", ".join(names[:8]) + (" ..." if len(names) > 8 else "")
        return f"AI_MODEL={model!r} is not among the models the AI service at {where} lists ({listed}); check AI_MODEL"
    return None


# OpenAI: 400 with code ``context_length_exceeded``; llama.cpp: "the request exceeds the
# available context size"; vLLM: "This model's maximum context length is ..."; Ollama trims
# silently.
_OVERFLOW = re.compile(r"context[ _](length|size|window)|maximum context|too many tokens|prompt is too long", re.I)


def _is_context_overflow(exc: openai.APIStatusError) -> bool:
    if exc.status_code not in (400, 413, 422):
        return False
    body = exc.body if isinstance(exc.body, dict) else {}
    err = body.get("error", body)
    code = err.get("code") if isinstance(err, dict) else None
    return code == "context_length_exceeded" or bool(_OVERFLOW.search(f"{exc.message} {body}"))


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
