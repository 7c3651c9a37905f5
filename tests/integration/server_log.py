"""Reading what `coe serve` printed: the access lines Ray Serve forwards from the ingress to its terminal."""

from __future__ import annotations

import time
import uuid

import httpx

from coe.serve.subprocess_server import CoEServer


def probe_request(server: CoEServer, model: str) -> str:
    """One one-token chat request carrying an `x-request-id` of its own (Ray Serve names the request by it
    in its access line); returns that id."""
    request_id = f"access-probe-{uuid.uuid4().hex}"
    response = httpx.post(f"{server.url}/v1/chat/completions", headers={"x-request-id": request_id}, timeout=120,
                          json={"model": model, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 1})
    assert response.status_code == 200, response.text
    return request_id


def lines_naming(server: CoEServer, *texts: str, wait_s: float) -> list[str]:
    """The lines of the server's output that contain every one of `texts`, once they appear or after
    `wait_s` seconds (Ray forwards each replica's output to the driver a moment after it is written,
    each replica on its own)."""
    deadline = time.monotonic() + wait_s
    while True:
        lines = [line for line in server.log_path.read_text(errors="replace").splitlines()
                 if all(text in line for text in texts)]
        if lines or time.monotonic() > deadline:
            return lines
        time.sleep(0.25)
