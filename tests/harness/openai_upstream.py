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
            for word in text.split(" "):
                self._event(chunk_body(model, {"content": word + " "}))
            self._event(chunk_body(model, {}, "stop"))
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
    log: UpstreamLog
    answer: str
    models: list[str]
    faults: dict[str, tuple]


class OpenAIUpstream:
    """`with OpenAIUpstream(answer="...") as up:` -> `up.base_url`, `up.log.requests`."""

    def __init__(self, answer: str = "hello from upstream", models: list[str] | None = None,
                 faults: dict[str, tuple] | None = None) -> None:
        """`faults`: model name -> (HTTP status, error code, message[, headers]) answered instead of a completion."""
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.log = UpstreamLog()
        self._server.answer = answer
        self._server.models = list(models or [])
        self._server.faults = dict(faults or {})
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
