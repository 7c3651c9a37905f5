"""A real OpenAI-compatible HTTP server on loopback, for tests of CoE's remote-expert path.

It is not a mock of LiteLLM or of CoE: it listens on a real port, speaks the wire format
(`POST /v1/chat/completions`, JSON or SSE), and records every request it receives, so a test can
check what actually crossed the network. It stands in for a paid remote API.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class UpstreamLog:
    requests: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, body: dict[str, Any]) -> None:
        with self.lock:
            self.requests.append(body)


def completion_body(model: str, text: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-upstream", "object": "chat.completion", "created": int(time.time()), "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": len(text.split()), "total_tokens": 3 + len(text.split())},
    }


def chunk_body(model: str, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {"id": "chatcmpl-upstream", "object": "chat.completion.chunk", "created": int(time.time()), "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: "_Server"

    def log_message(self, *args: Any) -> None:  # keep test output clean
        pass

    def do_GET(self) -> None:  # GET /v1/models: the models this server answers for
        self._json(200, {"object": "list", "data": [{"id": m, "object": "model"} for m in self.server.models]})

    def _json(self, status: int, data: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        payload = json.dumps(data).encode()
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length", 0))
        body = json.loads(self.rfile.read(length) or b"{}")
        self.server.log.record(body)
        model = body.get("model", "upstream")
        text = self.server.answer
        with self.server.log.lock:
            self.server.counts[model] = count = self.server.counts.get(model, 0) + 1
        messages = body.get("messages") or []
        if messages and messages[-1].get("role") == "assistant" and text.startswith(messages[-1].get("content", "")):
            text = text[len(messages[-1]["content"]):]  # a provider that accepts an assistant prefill continues it
        behaviour = self.server.behaviours.get(model, "")
        kind, _, arg = behaviour.partition(":")
        if kind == "reset":  # close the TCP connection with RST, no HTTP answer
            import socket
            import struct

            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            return
        if kind == "silent":
            time.sleep(float(arg or 60))
            self.close_connection = True
            return
        if kind == "slow-first":
            time.sleep(float(arg))
        failing = (kind == "fail-once" and count == 1) or (kind == "fail-first" and count <= int(arg.split("/")[1])) \
            or (kind == "flap" and (count - 1) % int(arg.split("/")[1]) < int(arg.split("/")[0]))
        if failing:
            status = int(arg.split("/")[0]) if kind != "flap" else 503
            self._json(status, {"error": {"message": f"injected {status}", "type": "error", "param": None, "code": None}})
            return
        if model in self.server.faults:  # an OpenAI-style error, chosen by model name
            status, code, message, *headers = self.server.faults[model]
            self._json(status, {"error": {"message": message, "type": "error", "param": None, "code": code}},
                       headers[0] if headers else None)
            return
        if body.get("stream"):
            self.send_response(200)
            self.send_header("content-type", "text/event-stream")
            self.send_header("connection", "close")
            self.end_headers()
            words = [w + " " for w in text.split(" ") if w]
            for i, word in enumerate(words):
                if kind == "cut-after" and i == int(arg):
                    self.close_connection = True
                    return  # the connection closes mid-answer: no finish_reason, no [DONE]
                if kind == "stall-after" and i == int(arg):
                    time.sleep(60)
                    self.close_connection = True
                    return
                if kind == "malformed" and i == int(arg or 1):
                    self.wfile.write(b"data: {not json\n\n")
                    self.wfile.flush()
                self._event(chunk_body(model, {"content": word}))
            self._event(chunk_body(model, {}, "stop"))
            if kind != "no-done":
                self.wfile.write(b"data: [DONE]\n\n")
            self.wfile.flush()
            self.close_connection = True
            return
        payload = json.dumps(completion_body(model, text)).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _event(self, data: dict[str, Any]) -> None:
        self.wfile.write(f"data: {json.dumps(data)}\n\n".encode())
        self.wfile.flush()


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys

        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):  # a client that hung up
            super().handle_error(request, client_address)
    log: UpstreamLog
    answer: str
    models: list[str]
    faults: dict[str, tuple]
    behaviours: dict[str, str]
    counts: dict[str, int]


class OpenAIUpstream:
    """`with OpenAIUpstream(answer="...") as up:` -> `up.base_url`, `up.log.requests`."""

    def __init__(self, answer: str = "hello from upstream", models: list[str] | None = None,
                 faults: dict[str, tuple] | None = None, behaviours: dict[str, str] | None = None) -> None:
        """`faults`: model name -> (HTTP status, error code, message[, headers]) answered instead of a completion.
        `behaviours`: model name -> how that model misbehaves:
          reset              the TCP connection is reset, no HTTP answer
          silent[:S]         no answer for S seconds (default 60)
          slow-first:S       the answer starts after S seconds
          fail-once:STATUS   the first request gets STATUS, later ones an answer
          fail-first:STATUS/N  the first N requests get STATUS
          flap:F/P           of every P requests the first F get 503 (a primary that flaps)
          cut-after:N        a stream closes after N words (no finish_reason, no [DONE])
          stall-after:N      a stream goes silent after N words
          malformed[:N]      an unparseable chunk before word N
          no-done            a stream ends without [DONE]
        An assistant message last in the request whose text starts the answer is continued (prefill)."""
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.log = UpstreamLog()
        self._server.answer = answer
        self._server.models = list(models or [])
        self._server.faults = dict(faults or {})
        self._server.behaviours = dict(behaviours or {})
        self._server.counts = {}
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    @property
    def log(self) -> UpstreamLog:
        return self._server.log

    def __enter__(self) -> "OpenAIUpstream":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
