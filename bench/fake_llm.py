"""A fast fake OpenAI-compatible server for load benchmarks (stdlib asyncio only).

    python bench/fake_llm.py --port 18700 [--first-token-delay 0.5] [--tokens 30] \\
        [--token-delay 0.03] [--usage] [--ping-interval 10]

Endpoints
  POST /v1/chat/completions  ``stream: true``: SSE ``data: {chat.completion.chunk}`` lines, one
                             token per chunk, a final chunk with ``finish_reason: "stop"``, an
                             optional usage chunk (``--usage`` or ``stream_options.include_usage``),
                             then ``data: [DONE]``. Without ``stream``: one chat.completion JSON.
  GET  /v1/models            one model, ``fake``.
  GET  /stats                JSON: settings, ``in_flight``, ``max_concurrency`` (most chat
                             requests in flight at once since start or the last reset),
                             ``total``, and ``requests``: one record per chat request with
                             ``arrival``, ``first_token`` (time the first content chunk was
                             written), ``end`` (wall-clock ``time.time()`` seconds),
                             ``delay``, ``tokens``, ``status`` (``done`` / ``aborted``),
                             ``stream``. ``GET /stats?records=0`` leaves the records out.
  POST /reset                clears the records and the concurrency peak.
  POST /config               JSON with any of ``first_token_delay``, ``tokens``,
                             ``token_delay``, ``usage``, ``ping_interval``: new defaults.

Per request, the last user message can override the defaults with magic words:
``[[delay=120]]`` (first-token delay, seconds), ``[[tokens=5]]``, ``[[token_delay=0.01]]``.
While it waits longer than ``ping_interval`` before the first token, a streamed response
sends an SSE comment (``: ping``) every ``ping_interval`` seconds, which clients ignore but
which keeps their read timeouts (the app's AI_TIMEOUT) from firing.

Responses are written with HTTP/1.1 chunked encoding and connections are kept alive, as
the ``openai`` client expects. One event loop holds thousands of concurrent streams.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import signal
import sys
import time
import uuid
from urllib.parse import parse_qs, urlsplit

MAGIC = re.compile(r"\[\[(delay|tokens|token_delay)=([0-9.]+)\]\]")
MAX_RECORDS = 200_000
WORDS = ["Let's", "think", "about", "this", "step", "by", "step.", "What", "do", "you", "already", "know", "about", "the", "problem,", "and", "which", "part", "of", "it", "feels", "hardest?", "Try", "the", "first", "step", "and", "tell", "me", "what", "you", "get,", "then", "we", "can", "check", "it", "together", "before", "moving", "on."]  # fmt: skip


class FakeLLM:
    def __init__(self, first_token_delay: float = 0.5, tokens: int = 30, token_delay: float = 0.03,
                 usage: bool = False, ping_interval: float = 10.0) -> None:  # fmt: skip
        self.config = {
            "first_token_delay": first_token_delay,
            "tokens": tokens,
            "token_delay": token_delay,
            "usage": usage,
            "ping_interval": ping_interval,
        }
        self.records: list[dict] = []
        self.in_flight = 0
        self.max_concurrency = 0
        self.total = 0
        self.connections = 0
        self.started = time.time()

    # ------------------------------------------------------------------ HTTP plumbing

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                    return
                lines = head.decode("latin-1").split("\r\n")
                try:
                    method, target, _version = lines[0].split(" ", 2)
                except ValueError:
                    return
                headers = {}
                for line in lines[1:]:
                    if ":" in line:
                        k, v = line.split(":", 1)
                        headers[k.strip().lower()] = v.strip()
                length = int(headers.get("content-length") or 0)
                body = await reader.readexactly(length) if length else b""
                keep = headers.get("connection", "").lower() != "close"
                ok = await self.route(method, target, body, writer)
                if not ok or not keep:
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            self.connections -= 1
            try:
                writer.close()
            except Exception:  # noqa: BLE001
                pass

    @staticmethod
    async def send_json(writer: asyncio.StreamWriter, status: int, data: object) -> bool:
        payload = json.dumps(data).encode()
        reason = {200: "OK", 400: "Bad Request", 404: "Not Found"}.get(status, "OK")
        writer.write(
            f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(payload)}\r\n\r\n".encode()
            + payload
        )
        await writer.drain()
        return True

    async def route(self, method: str, target: str, body: bytes, writer: asyncio.StreamWriter) -> bool:
        url = urlsplit(target)
        path = url.path.rstrip("/")
        if method == "POST" and path.endswith("/chat/completions"):
            try:
                req = json.loads(body or b"{}")
            except ValueError:
                return await self.send_json(writer, 400, {"error": {"message": "bad JSON", "type": "invalid"}})
            return await self.chat(req, writer)
        if method == "GET" and path.endswith("/models"):
            return await self.send_json(
                writer, 200, {"object": "list", "data": [{"id": "fake", "object": "model", "owned_by": "bench"}]}
            )
        if method == "GET" and path == "/stats":
            q = parse_qs(url.query)
            data = {
                "config": self.config,
                "in_flight": self.in_flight,
                "max_concurrency": self.max_concurrency,
                "total": self.total,
                "connections": self.connections,
                "started": self.started,
                "now": time.time(),
            }
            if q.get("records", ["1"])[0] != "0":
                data["requests"] = self.records
            return await self.send_json(writer, 200, data)
        if method == "POST" and path == "/reset":
            self.records = []
            self.max_concurrency = self.in_flight
            self.total = 0
            return await self.send_json(writer, 200, {"status": "reset"})
        if method == "POST" and path == "/config":
            try:
                new = json.loads(body or b"{}")
                for key, value in new.items():
                    if key not in self.config:
                        raise ValueError(key)
                    self.config[key] = bool(value) if key == "usage" else float(value)
                self.config["tokens"] = int(self.config["tokens"])
            except (ValueError, TypeError, AttributeError) as exc:
                return await self.send_json(writer, 400, {"error": f"bad config: {exc}"})
            return await self.send_json(writer, 200, self.config)
        return await self.send_json(writer, 404, {"error": {"message": f"no route {method} {path}", "type": "nf"}})

    # ------------------------------------------------------------------ chat completions

    def _params(self, req: dict) -> tuple[float, int, float]:
        delay, tokens, token_delay = (
            float(self.config["first_token_delay"]),
            int(self.config["tokens"]),
            float(self.config["token_delay"]),
        )
        last_user = ""
        for m in req.get("messages") or []:
            if isinstance(m, dict) and m.get("role") == "user" and isinstance(m.get("content"), str):
                last_user = m["content"]
        for key, value in MAGIC.findall(last_user):
            if key == "delay":
                delay = float(value)
            elif key == "tokens":
                tokens = max(1, int(float(value)))
            else:
                token_delay = float(value)
        return delay, tokens, token_delay

    async def chat(self, req: dict, writer: asyncio.StreamWriter) -> bool:
        arrival = time.time()
        delay, tokens, token_delay = self._params(req)
        stream = bool(req.get("stream"))
        usage = bool(self.config["usage"]) or bool((req.get("stream_options") or {}).get("include_usage"))
        model = req.get("model") or "fake"
        rec = {"arrival": arrival, "first_token": None, "end": None, "delay": delay, "tokens": tokens,
               "stream": stream, "status": "running"}  # fmt: skip
        if len(self.records) < MAX_RECORDS:
            self.records.append(rec)
        self.total += 1
        self.in_flight += 1
        self.max_concurrency = max(self.max_concurrency, self.in_flight)
        try:
            ok = await (self._stream(writer, rec, model, delay, tokens, token_delay, usage) if stream
                        else self._plain(writer, rec, model, delay, tokens, token_delay))  # fmt: skip
            rec["status"] = "done" if ok else "aborted"
            return ok
        except (ConnectionError, asyncio.CancelledError):
            rec["status"] = "aborted"
            raise
        finally:
            rec["end"] = time.time()
            self.in_flight -= 1

    async def _plain(self, writer, rec, model, delay, tokens, token_delay) -> bool:
        await asyncio.sleep(delay + tokens * token_delay)
        rec["first_token"] = time.time()
        text = " ".join(WORDS[i % len(WORDS)] for i in range(tokens))
        return await self.send_json(writer, 200, {
            "id": f"chatcmpl-{uuid.uuid4().hex[:12]}", "object": "chat.completion", "created": int(time.time()),
            "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 42, "completion_tokens": tokens, "total_tokens": 42 + tokens},
        })  # fmt: skip

    async def _stream(self, writer, rec, model, delay, tokens, token_delay, usage) -> bool:
        cid = f"chatcmpl-{uuid.uuid4().hex[:12]}"
        created = int(time.time())

        async def send(data: bytes) -> None:
            writer.write(b"%x\r\n%s\r\n" % (len(data), data))
            await writer.drain()

        def chunk(delta: dict, finish: str | None = None, **extra) -> bytes:
            obj = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
                   "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra}  # fmt: skip
            return b"data: " + json.dumps(obj).encode() + b"\n\n"

        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        await writer.drain()
        # the role chunk, as OpenAI sends first (no content: not a token)
        await send(chunk({"role": "assistant", "content": ""}))
        ping = float(self.config["ping_interval"])
        t_first = rec["arrival"] + delay
        while True:
            left = t_first - time.time()
            if left <= 0:
                break
            if ping > 0 and left > ping:
                await asyncio.sleep(ping)
                await send(b": ping\n\n")  # raises if the client went away
            else:
                await asyncio.sleep(left)
        for i in range(tokens):
            piece = WORDS[i % len(WORDS)]
            await send(chunk({"content": piece if i == 0 else " " + piece}))
            if i == 0:
                rec["first_token"] = time.time()
            if token_delay > 0 and i + 1 < tokens:
                await asyncio.sleep(token_delay)
        await send(chunk({}, "stop"))
        if usage:
            u = {"prompt_tokens": 42, "completion_tokens": tokens, "total_tokens": 42 + tokens}
            obj = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
                   "choices": [], "usage": u}  # fmt: skip
            await send(b"data: " + json.dumps(obj).encode() + b"\n\n")
        await send(b"data: [DONE]\n\n")
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        return True


async def serve(host: str, port: int, fake: FakeLLM, ready_file: str | None = None) -> None:
    server = await asyncio.start_server(fake.handle, host, port, backlog=4096, limit=1 << 20)
    port = server.sockets[0].getsockname()[1]
    print(f"fake LLM listening on http://{host}:{port}/v1", flush=True)
    if ready_file:
        with open(ready_file, "w") as fh:
            fh.write(str(port))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=18700, help="0: any free port (written to --ready-file)")
    p.add_argument("--first-token-delay", type=float, default=0.5, help="seconds before the first token (0.5)")
    p.add_argument("--tokens", type=int, default=30, help="tokens per reply (30)")
    p.add_argument("--token-delay", type=float, default=0.03, help="seconds between tokens (0.03)")
    p.add_argument("--usage", action="store_true", help="always send a usage chunk before [DONE]")
    p.add_argument("--ping-interval", type=float, default=10.0, help="SSE comment interval while waiting (0: off)")
    p.add_argument("--ready-file", help="write the port here once listening")
    args = p.parse_args(argv)
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ImportError, ValueError, OSError):
        pass
    fake = FakeLLM(args.first_token_delay, args.tokens, args.token_delay, args.usage, args.ping_interval)
    asyncio.run(serve(args.host, args.port, fake, args.ready_file))
    return 0


if __name__ == "__main__":
    sys.exit(main())
