"""A small OpenAI-compatible chat-completions server for tests (real HTTP, real client)."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class ScriptedOpenAI:
    """Answers ``POST /v1/chat/completions`` following ``script``: a list of
    ``429`` / ``500`` / ``401`` / ``"stream"``; after the script it keeps streaming."""

    def __init__(
        self, script: list[int | str] | None = None, reply: str = "Let's think about it step by step."
    ) -> None:
        self.script = list(script or [])
        self.reply = reply
        self.requests: list[dict] = []
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
                usage = {
                    "id": "chatcmpl-test",
                    "object": "chat.completion.chunk",
                    "created": int(time.time()),
                    "model": body.get("model", "test-model"),
                    "choices": [],
                    "usage": {"prompt_tokens": 42, "completion_tokens": len(words), "total_tokens": 42 + len(words)},
                }
                self.wfile.write(f"data: {json.dumps(usage)}\n\ndata: [DONE]\n\n".encode())
                self.wfile.flush()
                self.close_connection = True

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def __enter__(self) -> ScriptedOpenAI:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
