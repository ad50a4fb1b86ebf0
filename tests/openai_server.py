"""A small OpenAI-compatible chat-completions server for tests (real HTTP, real client)."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class ScriptedOpenAI:
    """Answers ``POST /v1/chat/completions`` following ``script``: a list of
    ``429`` / ``500`` / ``401`` / ``"stream"``; after the script it keeps streaming.

    It can act like the real servers differ: ``style="llamacpp"`` sends no usage and answers a
    streamed prompt longer than ``context_window`` with 200 and an empty body;
    ``style="openai"`` sends usage and answers such a prompt with 400
    ``context_length_exceeded``. Prompt tokens are counted as characters / ``chars_per_token``
    (plus 4 a message). ``max_tokens`` is honoured: the reply (one token a word) stops there
    with ``finish_reason: "length"``, else ends with ``"stop"``. ``GET /v1/models`` lists
    ``models``.
    """

    def __init__(
        self,
        script: list[int | str] | None = None,
        reply: str = "Let's think about it step by step.",
        *,
        style: str = "openai",
        context_window: int | None = None,
        chars_per_token: float = 3.0,
        models: tuple[str, ...] = ("test-model",),
    ) -> None:
        self.script = list(script or [])
        self.reply = reply
        self.style = style
        self.context_window = context_window
        self.chars_per_token = chars_per_token
        self.models = models
        self.requests: list[dict] = []
        self.model_requests = 0
        self.chunk_delay = 0.0
        self.first_token_delay = 0.0
        self.in_flight = 0  # streaming requests being answered now
        self.max_in_flight = 0  # the most at once
        self._count = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def _json(self, status, payload):
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):  # noqa: N802
                if self.path.rstrip("/").endswith("/models"):
                    outer.model_requests += 1
                    data = [{"id": m, "object": "model", "owned_by": "test"} for m in outer.models]
                    self._json(200, {"object": "list", "data": data})
                else:
                    self._json(404, {"error": {"message": "not found"}})

            def do_POST(self):  # noqa: N802
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                outer.requests.append(body)
                action = outer.script.pop(0) if outer.script else "stream"
                if action != "stream":
                    payload = json.dumps({"error": {"message": f"scripted {action}", "type": "test"}}).encode()
                    self.send_response(int(action))
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    if int(action) == 429:
                        self.send_header("Retry-After", "0")
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                if outer.context_window is not None:
                    prompt = outer.prompt_tokens(body)
                    if prompt + int(body.get("max_tokens") or 0) > outer.context_window:
                        if outer.style == "llamacpp" and body.get("stream"):
                            self.send_response(200)  # what llama.cpp's server does: nothing at all
                            self.send_header("Content-Type", "text/event-stream")
                            self.send_header("Connection", "close")
                            self.end_headers()
                            self.close_connection = True
                            return
                        message = (
                            f"This model's maximum context length is {outer.context_window} tokens. However, "
                            f"your messages resulted in {prompt} tokens."
                        )
                        err = {"message": message, "type": "invalid_request_error", "code": "context_length_exceeded"}
                        self._json(400, {"error": err})
                        return
                with outer._count:
                    outer.in_flight += 1
                    outer.max_in_flight = max(outer.max_in_flight, outer.in_flight)
                try:
                    self._stream(body)
                finally:
                    with outer._count:
                        outer.in_flight -= 1

            def _stream(self, body):
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Cache-Control", "no-cache")
                self.send_header("Connection", "close")
                self.end_headers()
                time.sleep(outer.first_token_delay)
                words = outer.reply.split(" ")
                finish = "stop"
                cap = body.get("max_tokens")
                if cap is not None and len(words) > int(cap):
                    words, finish = words[: int(cap)], "length"
                for i, word in enumerate(words):
                    piece = word if i == 0 else " " + word
                    chunk = {
                        "id": "chatcmpl-test",
                        "object": "chat.completion.chunk",
                        "created": int(time.time()),
                        "model": body.get("model", "test-model"),
                        "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}],
                    }
                    self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                    self.wfile.flush()
                    if outer.chunk_delay:
                        time.sleep(outer.chunk_delay)
                last = {
                    "id": "chatcmpl-test",
                    "object": "chat.completion.chunk",
                    "created": int(time.time()),
                    "model": body.get("model", "test-model"),
                    "choices": [{"index": 0, "delta": {}, "finish_reason": finish}],
                }
                self.wfile.write(f"data: {json.dumps(last)}\n\n".encode())
                if outer.style != "llamacpp":
                    prompt = outer.prompt_tokens(body)
                    usage = {
                        "id": "chatcmpl-test",
                        "object": "chat.completion.chunk",
                        "created": int(time.time()),
                        "model": body.get("model", "test-model"),
                        "choices": [],
                        "usage": {"prompt_tokens": prompt, "completion_tokens": len(words),
                                  "total_tokens": prompt + len(words)},
                    }  # fmt: skip
                    self.wfile.write(f"data: {json.dumps(usage)}\n\n".encode())
                self.wfile.write(b"data: [DONE]\n\n")
                self.wfile.flush()
                self.close_connection = True

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def prompt_tokens(self, body: dict) -> int:
        messages = body.get("messages") or []
        return sum(4 + int(len(str(m.get("content", ""))) / self.chars_per_token) for m in messages)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def __enter__(self) -> ScriptedOpenAI:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
