"""Check an OpenAI-compatible model server the way the tutor will use it (manual; not in CI).

    python bench/check_model.py --base-url http://127.0.0.1:8000/v1 --model smollm2 \\
        [--api-key KEY] [--context-window 4096] [--max-tokens 256]

Runs through the tutor's own provider code (``tutor.providers.openai_provider``) and prints:
1. ``GET /v1/models``: whether the model is listed (the worker's start-up check);
2. a two-turn tutoring conversation, streamed: time to the first token and to the end, the
   ``finish_reason``, whether the server sent token counts (else the tutor estimates them);
3. the reply cap: a request that asks for a long answer with ``max_tokens`` 16 must stop with
   ``finish_reason: length``;
4. an overflow probe: a prompt about 1.5x ``--context-window`` long; how the server says so
   (OpenAI: HTTP 400 ``context_length_exceeded``; llama.cpp: HTTP 200 and an empty stream),
   both of which the tutor handles.
Exit code 0 when every check passed, 1 otherwise.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tutor.prompting import build_messages, prompt_budget  # noqa: E402
from tutor.providers import ContextOverflow, ProviderError, ReplyContext, Usage, estimate_tokens  # noqa: E402
from tutor.providers.openai_provider import OpenAIProvider, check_model  # noqa: E402


def _stream(provider: OpenAIProvider, chat: list[dict]) -> tuple[str, Usage, float | None, float]:
    usage = Usage()
    start = time.monotonic()
    first = None
    parts = []
    for piece in provider.stream(chat, usage, ReplyContext(subject="mathematics")):
        if first is None:
            first = time.monotonic() - start
        parts.append(piece)
    return "".join(parts), usage, first, time.monotonic() - start


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--base-url",
        required=True,
        help="e.g. http://127.0.0.1:8000/v1 (llama.cpp), http://127.0.0.1:11434/v1 (Ollama)",
    )
    p.add_argument("--model", required=True)
    p.add_argument("--api-key", default="not-needed")
    p.add_argument("--context-window", type=int, default=4096, help="the server's context (n_ctx / num_ctx)")
    p.add_argument("--max-tokens", type=int, default=256)
    p.add_argument("--timeout", type=float, default=120.0)
    args = p.parse_args(argv)
    ok = True

    def report(passed: bool, line: str) -> None:
        nonlocal ok
        ok = ok and passed
        print(f"[{'ok' if passed else 'FAIL'}] {line}")

    problem = check_model(args.base_url, args.api_key, args.model)
    report(problem is None, problem or f"GET /v1/models lists {args.model!r} (or lists nothing to check)")

    provider = OpenAIProvider(base_url=args.base_url, api_key=args.api_key, model=args.model,
                              timeout=args.timeout, max_tokens=args.max_tokens)  # fmt: skip
    budget = prompt_budget(args.context_window, args.max_tokens)
    history = [("student", "How do I solve 2x + 3 = 11?")]
    try:
        chat = build_messages("mathematics", history, budget, grade_level=7)
        text, usage, first, total = _stream(provider, chat)
        report(bool(text.strip()), f"turn 1: first token {first or 0:.2f} s, done {total:.2f} s, "
               f"finish_reason {usage.finish_reason!r}, {len(text)} characters")  # fmt: skip
        print(f"       {text[:300]!r}")
        history += [("tutor", text), ("student", "I subtracted 3 and got 2x = 8. Now what?")]
        chat = build_messages("mathematics", history, budget, grade_level=7)
        text, usage, first, total = _stream(provider, chat)
        report(bool(text.strip()), f"turn 2: first token {first or 0:.2f} s, done {total:.2f} s, "
               f"finish_reason {usage.finish_reason!r}")  # fmt: skip
        sent_usage = usage.prompt_tokens is not None and usage.completion_tokens is not None
        estimate = sum(estimate_tokens(m["content"]) for m in chat)
        print(f"[info] token counts {'sent by the server' if sent_usage else 'NOT sent (the tutor estimates them)'}: "
              f"prompt {usage.prompt_tokens} (our estimate {estimate}), completion {usage.completion_tokens}")  # fmt: skip
    except ProviderError as exc:
        report(False, f"conversation failed: {exc}")

    capped = OpenAIProvider(base_url=args.base_url, api_key=args.api_key, model=args.model,
                            timeout=args.timeout, max_tokens=16)  # fmt: skip
    try:
        long_ask = [{"role": "user", "content": "Explain in detail, in at least 300 words, why the sky is blue."}]
        _, usage, _, total = _stream(capped, long_ask)
        report(usage.finish_reason == "length", f"max_tokens 16: finish_reason {usage.finish_reason!r} "
               f"after {total:.2f} s (the tutor marks such a reply \"(cut short)\")")  # fmt: skip
    except ProviderError as exc:
        report(False, f"max_tokens probe failed: {exc}")

    filler = " ".join(f"{i}" for i in range(int(args.context_window * 1.5)))
    try:
        text, usage, _, _ = _stream(provider, [{"role": "user", "content": f"Sum these: {filler}"}])
        if not text:
            report(True, "overflow: HTTP 200 with an empty stream (llama.cpp style; the tutor retries with less)")
        else:
            report(False, f"overflow: the server answered a prompt longer than --context-window "
                   f"({len(text)} characters, finish_reason {usage.finish_reason!r}); it may truncate "
                   "silently (Ollama does) or its context is larger than you said")  # fmt: skip
    except ContextOverflow as exc:
        report(True, f"overflow: the server refused the prompt ({exc})")
    except ProviderError as exc:
        report(False, f"overflow: an error the tutor does not read as 'too long': {exc}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
