"""A real vLLM expert replica killed (SIGKILL) in the middle of a stream, with a fallback configured.

Gemma's config names SmolLM2 as its fallback (conftest). The client's stream must go on as one answer:
the text sent before the kill stays, SmolLM2 continues it as an assistant prefill, the finish reason is
a real one (never "incomplete"), no error event, and the final chunk names both experts. Ray Serve then
restarts the replica; meanwhile Gemma's requests are answered by SmolLM2 once no replica has accepted
them within Gemma's queue_s (a Gemma answer never waits the restart out), and the test waits until
Gemma answers again, so the tests after it see the service as it was. Only a process under this
session's own `coe serve` is killed, found by walking its process tree (never by name across the
machine).
"""

from __future__ import annotations

import json
import os
import signal
import time

import httpx

from tests.integration.conftest import GEMMA, GEMMA_QUEUE_S, SMOL
from tests.integration.processes import replica_processes

# Gemma is a base model on a Q/A transcript: it stops at its next "Q:", so it must be cut early.
PROMPT = [{"role": "user", "content": "Tell me a story about a dragon who learns to fly."}]
RECOVERY_TIMEOUT_S = 300
ANSWER_S = 5  # ample for 4 tokens of a 270M model once a replica has taken the request


def pieces(events: list[dict]) -> list[str]:
    return [c["delta"]["content"] for e in events for c in e.get("choices", []) if c["delta"].get("content")]


def test_a_stream_cut_by_a_killed_replica_completes_on_the_fallback(coe_server, base_url: str) -> None:
    victims = replica_processes(coe_server.proc.pid, GEMMA)
    assert len(victims) == 1, [p.cmdline() for p in victims]
    killed_pid = victims[0].pid
    body = {"model": GEMMA, "messages": PROMPT, "max_tokens": 160, "temperature": 0, "stream": True,
            "ignore_eos": True}  # a long answer whatever Gemma (a base model) makes of the prompt
    events: list[dict] = []
    before_kill = ""
    with httpx.stream("POST", f"{base_url}/chat/completions", json=body, timeout=180) as resp:
        assert resp.status_code == 200 and resp.headers["x-coe-expert"] == GEMMA
        for line in resp.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            event = json.loads(line[len("data: "):])
            events.append(event)
            if victims and pieces(events):  # the first token is out: kill the replica mid-answer
                before_kill = "".join(pieces(events))
                os.kill(victims[0].pid, signal.SIGKILL)
                victims = []
    assert not victims, f"the stream ended before the replica could be killed mid-answer: {len(events)} events, {events[-3:]}"
    assert not [e for e in events if "error" in e], events[-3:]
    text = "".join(pieces(events))
    finishes = [c["finish_reason"] for e in events for c in e.get("choices", []) if c.get("finish_reason")]
    assert finishes and finishes[-1] in ("stop", "length"), finishes
    assert text.startswith(before_kill) and len(text) > len(before_kill)
    served = events[-1]["coe"]["served_by"]
    assert served[0] == GEMMA and SMOL in served, events[-1]["coe"]

    # Until Ray Serve has a new Gemma replica, Gemma's requests are answered by its fallback: no replica
    # accepts them within Gemma's queue_s, so they do not wait the restart out in Serve's queue. (On a fast
    # machine the restart can be over before SmolLM2 has finished the stream: then Gemma answers at once.)
    started, during, waits = time.monotonic(), [], []
    while time.monotonic() - started < RECOVERY_TIMEOUT_S:
        sent = time.monotonic()
        reply = httpx.post(f"{base_url}/chat/completions", timeout=180,
                           json={"model": GEMMA, "messages": PROMPT, "max_tokens": 4, "temperature": 0})
        waits.append(round(time.monotonic() - sent, 1))
        assert reply.status_code == 200, reply.text
        during.append(reply.headers["x-coe-expert"])
        if during[-1] == GEMMA:
            break
        time.sleep(3)
    answers = list(zip(during, waits))
    assert during[-1] == GEMMA, f"Gemma did not answer again within {RECOVERY_TIMEOUT_S} s: {during}"
    assert all(wait < GEMMA_QUEUE_S + ANSWER_S for expert, wait in answers if expert == GEMMA), \
        f"a Gemma answer waited for its replica longer than queue_s: {answers}"
    assert [p.pid for p in replica_processes(coe_server.proc.pid, GEMMA)] not in ([], [killed_pid]), \
        "Gemma answered, yet no new replica replaced the killed one"
    print(f"replica killed: Gemma back after {time.monotonic() - started:.0f} s; answers meanwhile by "
          f"{answers} (expert, seconds)")
