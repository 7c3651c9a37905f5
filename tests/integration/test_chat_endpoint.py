"""The chat endpoint against real vLLM experts in Ray Serve, through the official openai SDK."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys

import httpx
import pytest

from coe.api import server_timing
from coe.serve.runner import LEAN_RAY_ENV, NO_MEMORY_MONITOR_ENV
from coe.serve.serve_config import INGRESS_MAIN_LOOP_ENV, INGRESS_NAME
from tests.integration.conftest import GEMMA, MOE, MOE_SWAPPED, REMOTE, SMOL, VARIANT
from tests.integration.processes import deployment_processes, processes_titled, replica_processes, serve_controller
from tests.integration.server_log import lines_naming, probe_request

CAPITAL = [{"role": "user", "content": "What is the capital of France?"}]


def test_models_lists_every_expert(client) -> None:
    models = {m.id: m for m in client.models.list().data if m.model_extra["coe"]["kind"] != "router"}
    assert set(models) == {SMOL, GEMMA, REMOTE, VARIANT, MOE, MOE_SWAPPED}
    extra = {mid: m.model_extra["coe"] for mid, m in models.items()}
    assert extra[SMOL]["kind"] == "local" and not extra[SMOL]["is_base_model"]
    assert extra[GEMMA]["is_base_model"]
    assert extra[REMOTE]["kind"] == "remote"


@pytest.mark.parametrize("expert", [SMOL, GEMMA])
def test_each_bundled_expert_answers_as_a_plain_engine_does(client, expert: str) -> None:
    # bf16 greedy text depends on the CPU's kernels (AVX2, AVX-512, AMX), so the reference is a plain
    # vLLM engine on this machine, never a fixed word. 24 greedy tokens are a prefix of its 32.
    reply = client.chat.completions.create(model=expert, messages=CAPITAL, temperature=0, max_tokens=24)
    text = reply.choices[0].message.content
    assert text.strip() and direct_outputs(client, expert)[0].startswith(text), text
    assert reply.model == expert
    assert reply.choices[0].finish_reason in ("stop", "length")
    assert reply.usage.prompt_tokens > 5 and 0 < reply.usage.completion_tokens <= 24


@pytest.mark.parametrize("expert", [SMOL, GEMMA, REMOTE])
def test_stream_equals_non_stream(client, expert: str) -> None:
    kwargs = dict(model=expert, messages=CAPITAL, temperature=0, max_tokens=24)
    whole = client.chat.completions.create(**kwargs)
    chunks = list(client.chat.completions.create(stream=True, stream_options={"include_usage": True}, **kwargs))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert text == whole.choices[0].message.content
    assert finishes == [whole.choices[0].finish_reason]
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens


def test_sse_wire_format(base_url: str) -> None:
    body = {"model": SMOL, "messages": CAPITAL, "max_tokens": 8, "temperature": 0, "stream": True}
    with httpx.stream("POST", f"{base_url}/chat/completions", json=body, timeout=120) as resp:
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/event-stream")
        assert resp.headers["x-coe-expert"] == SMOL
        events = [line[len("data: ") :] for line in resp.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    last = json.loads(events[-2])
    assert last["choices"][0]["finish_reason"] in ("stop", "length")
    assert last["usage"]["total_tokens"] == last["usage"]["prompt_tokens"] + last["usage"]["completion_tokens"]


CONVERSATIONS = [
    CAPITAL,
    [{"role": "system", "content": "You are a terse assistant."}, {"role": "user", "content": "Name three primary colours."}],
    [
        {"role": "user", "content": "What is 2 + 2?"},
        {"role": "assistant", "content": "4"},
        {"role": "user", "content": "And times three?"},
    ],
]


def direct_engine_outputs(checkpoint: str, prompt_format: str, cpu_bind: str) -> list[str]:
    job = {
        "checkpoint": checkpoint,
        "prompt_format": prompt_format,
        "max_model_len": 1024,
        "max_tokens": 32,
        "conversations": CONVERSATIONS,
        # Same thread count as the served engine: a different OpenMP split changes float sums.
        "env": {"VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_CPU_OMP_THREADS_BIND": cpu_bind},
    }
    proc = subprocess.run(
        [sys.executable, "-m", "tests.integration.direct_engine"],
        input=json.dumps(job), capture_output=True, text=True, timeout=600, env={**os.environ},
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("COE-JSON ")]
    assert proc.returncode == 0 and lines, proc.stderr[-3000:]
    return json.loads(lines[-1][len("COE-JSON ") :])


# How each bundled expert is served in the session service: prompt format and the cores its engine uses.
SERVED_AS = {SMOL: ("chat", "0"), GEMMA: ("completion", "1")}


@functools.cache
def _direct_outputs(location: str, fmt: str, cpu_bind: str) -> tuple[str, ...]:
    return tuple(direct_engine_outputs(location, fmt, cpu_bind))


def direct_outputs(client, expert: str) -> tuple[str, ...]:
    """A plain vLLM engine's greedy answers to CONVERSATIONS (32 tokens), booted once per expert."""
    location = client.models.retrieve(expert).model_extra["coe"]["location"]
    return _direct_outputs(location, *SERVED_AS[expert])


@pytest.mark.parametrize("expert", [SMOL, GEMMA])
def test_greedy_text_equals_direct_engine(client, expert: str) -> None:
    served = [
        client.chat.completions.create(model=expert, messages=conv, temperature=0, max_tokens=32).choices[0].message.content
        for conv in CONVERSATIONS
    ]
    assert served == list(direct_outputs(client, expert))


def test_remote_expert_through_litellm_matches_local(client) -> None:
    kwargs = dict(messages=CAPITAL, temperature=0, max_tokens=24)
    local = client.chat.completions.create(model=SMOL, **kwargs).choices[0].message.content
    remote = client.chat.completions.create(model=REMOTE, **kwargs)
    assert remote.choices[0].message.content == local
    assert remote.usage.completion_tokens > 0


def test_litellm_client_talks_to_coe(base_url: str, client) -> None:
    import litellm

    kwargs = dict(model=f"openai/{SMOL}", api_base=base_url, api_key="unused", messages=CAPITAL, temperature=0, max_tokens=24)
    whole = litellm.completion(**kwargs)
    via_sdk = client.chat.completions.create(model=SMOL, messages=CAPITAL, temperature=0, max_tokens=24)
    assert whole.choices[0].message.content == via_sdk.choices[0].message.content
    streamed = "".join(c.choices[0].delta.content or "" for c in litellm.completion(stream=True, **kwargs))
    assert streamed == whole.choices[0].message.content


def test_ignore_eos_generates_exactly_max_tokens(client) -> None:
    # vLLM's own server takes `ignore_eos`; the side-by-side bench needs the same work on both sides.
    reply = client.chat.completions.create(model=SMOL, messages=[{"role": "user", "content": "Say hi."}],
                                           temperature=0, max_tokens=40, extra_body={"ignore_eos": True})
    assert reply.usage.completion_tokens == 40 and reply.choices[0].finish_reason == "length"


def test_server_timing_splits_a_local_answer_by_hop(base_url: str) -> None:
    """Each layer reports its own share (coe/api/server_timing.py): nested, so each is at most its parent."""
    body = {"model": SMOL, "messages": CAPITAL, "max_tokens": 4, "temperature": 0}
    resp = httpx.post(f"{base_url}/chat/completions", json=body, timeout=120)
    assert resp.status_code == 200
    timings = server_timing.parse(resp.headers["server-timing"])
    assert set(timings) == {"call", "handle", "expert", "ingress"}  # a swap pool's slot: through its replica
    assert 0 < timings["expert"] <= timings["handle"] <= timings["call"] <= timings["ingress"]


def test_a_dedicated_engine_is_reached_without_its_replica(base_url: str) -> None:
    """Gemma has an engine of its own: the ingress runs its own vLLM frontend on it (coe/serve/linked_engine.py),
    so the answer's path is `linked`, with no handle hop, and the answer is the one Gemma gives."""
    body = {"model": GEMMA, "messages": CAPITAL, "max_tokens": 4, "temperature": 0}
    resp = httpx.post(f"{base_url}/chat/completions", json=body, timeout=120)
    assert resp.status_code == 200 and resp.json()["model"] == GEMMA
    timings = server_timing.parse(resp.headers["server-timing"])
    assert set(timings) == {"call", "linked", "expert", "ingress"}
    assert 0 < timings["expert"] <= timings["linked"] <= timings["call"] <= timings["ingress"]


def test_the_ingress_alone_runs_on_serves_main_loop(coe_server) -> None:
    # server.ingress_on_main_loop (default on) must reach the ingress replica's process, where Ray Serve
    # reads it at import, and no engine's replica, whose engine boot would block that loop.
    def settings(proc) -> dict[str, str | None]:
        env = proc.environ()
        return {name: env.get(name) for name in INGRESS_MAIN_LOOP_ENV}

    (ingress,) = deployment_processes(coe_server.proc.pid, INGRESS_NAME)
    assert settings(ingress) == INGRESS_MAIN_LOOP_ENV
    experts = replica_processes(coe_server.proc.pid, GEMMA)
    assert experts and all(settings(proc) != INGRESS_MAIN_LOOP_ENV for proc in experts)


def test_coe_serves_local_ray_runs_lean(coe_server) -> None:
    # The controller's slower poll must reach the process that polls (Ray reads it at import there).
    env = serve_controller(coe_server.proc.pid).environ()
    assert {name: env.get(name) for name in LEAN_RAY_ENV} == LEAN_RAY_ENV
    # The memory monitor runs in the raylet: no Ray worker (an ingress, an engine's replica) is killed for
    # memory another program holds.
    (raylet,) = processes_titled(coe_server.proc.pid, "/raylet/raylet")
    assert {name: raylet.environ().get(name) for name in NO_MEMORY_MONITOR_ENV} == NO_MEMORY_MONITOR_ENV


def test_each_request_leaves_one_access_line(coe_server) -> None:
    # server.access_log defaults to true, as vLLM's uvicorn access log does; the LoRA server
    # (tests/integration/test_lora_experts.py) runs with it false and checks the lines are gone.
    # Serve names the request by its x-request-id on every hop: the ingress's line is the HTTP one.
    request_id = probe_request(coe_server, SMOL)
    lines = lines_naming(coe_server, request_id, "POST /v1/chat/completions 200", wait_s=20)
    assert len(lines) == 1, lines
