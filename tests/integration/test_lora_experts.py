"""LoRA specialists served on their base's engine: each equals its merged checkpoint, batched together.

Two real adapters of SmolLM2 are trained here with `coe finetune`'s code (coe/finetune/quick.py),
which writes each fine-tune twice: as a PEFT adapter and merged into a checkpoint. One engine on the
base serves both adapters and the base itself; every answer, sent as one mixed batch, must equal the
answer of an engine booted directly on the merged checkpoint (or the base). In float32 they are equal
token for token (measured); in bfloat16 rounding the merged weights W + BA to 8 bits of mantissa moves
some greedy answers after a few tokens, which is why this check runs in float32 (bench/lora_vs_swap.py
reports the bf16 agreement).

The mixed batch is the case vLLM-CPU gets wrong on its own (coe/experts/lora.py): without CoE's zero
adapter, the base requests of a mixed batch run through the last adapter loaded.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from pathlib import Path

import pytest
import pytest_asyncio
import torch

from coe.config import EngineOptions, PromptFormat
from coe.experts.vllm_backend import VLLMBackend
from coe.models.prepare import prepare
from coe.protocol import GenerationRequest, SamplingSettings
from coe.finetune.quick import build_specialists
from tests.integration.server_log import lines_naming, probe_request

os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"

pytestmark = pytest.mark.integration
in_module_loop = pytest.mark.asyncio(loop_scope="module")

BASE = "smollm2-135m-instruct"
PROMPTS = ["What is the capital of France?", "Write a Python function that reverses a string.",
           "Ana has 12 pens and buys 3 bags of 4 pens. How many pens does she have?",
           "Write one sentence about the sea.", "A train goes 60 km in 1.5 hours. What is its speed?"]
OPTIONS = EngineOptions(max_model_len=512, max_num_seqs=16, cpu_bind="0", dtype="float32")


def request(prompt: str, adapter: str | None) -> GenerationRequest:
    return GenerationRequest(uuid.uuid4().hex, ({"role": "user", "content": prompt},),
                             SamplingSettings(temperature=0.0, max_tokens=40), adapter=adapter)


async def answers(backend: VLLMBackend, adapter: str | None = None) -> list[str]:
    return [r.text for r in await asyncio.gather(*[backend.chat(request(p, adapter)) for p in PROMPTS])]


@pytest.fixture(scope="module")
def specialists(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return build_specialists(prepare(BASE).path, tmp_path_factory.mktemp("lora"), dtype=torch.float32)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def reference(specialists: dict[str, Path]) -> dict[str, list[str]]:
    """Greedy answers of plain engines (no adapters) on the base and on each merged checkpoint."""
    out = {}
    for name, folder in {"base": prepare(BASE).path, **specialists}.items():
        engine = VLLMBackend(folder, OPTIONS, PromptFormat.chat, name)
        await engine.start()
        try:
            out[name] = await answers(engine)
        finally:
            engine.close()
    assert out["code"] != out["base"] and out["math"] != out["base"], "the adapters must change answers"
    return out


@pytest.fixture
def lora_server(specialists: dict[str, Path], tmp_path_factory: pytest.TempPathFactory):
    """`coe serve` (Ray Serve) with the base and both adapters as experts: one engine for all three.

    Function-scoped, and its test comes first in this module: the server is gone before `lora_engine`
    boots in this process. Both at once, beside the session's service, took this 24 GiB machine to 92% of
    its memory (2026-12-07); apart, the suite's peak was 85%."""
    import yaml

    from coe.serve.subprocess_server import CoEServer, free_port

    folder = tmp_path_factory.mktemp("lora-serve")
    engine = {"cpu_bind": "0", "max_model_len": 512, "dtype": "float32"}
    config = {"server": {"access_log": False}, "experts": [{"id": BASE, "weights": f"bundled:{BASE}", "engine": engine},
                          *({"id": f"smollm2-{name}", "adapter": {"base": BASE, "path": str(path / "adapter")}}
                            for name, path in specialists.items())]}
    (folder / "coe.yaml").write_text(yaml.safe_dump(config))
    server = CoEServer(folder / "coe.yaml", free_port(), folder / "serve.log").start()
    try:
        yield server
    finally:
        server.stop()


def test_the_endpoint_serves_each_adapter_as_an_expert(reference, lora_server) -> None:
    """Through Ray Serve and HTTP, concurrently: each expert's answers equal the plain engines' ones."""
    from concurrent.futures import ThreadPoolExecutor

    import httpx

    from coe.api import server_timing

    models = {card["id"]: card["coe"] for card in httpx.get(f"{lora_server.url}/v1/models").json()["data"]}
    assert {k: (models[k]["kind"], models[k]["tier"]) for k in ("smollm2-code", "smollm2-math")} == {
        "smollm2-code": ("adapter", "warm"), "smollm2-math": ("adapter", "warm")}
    assert models[BASE]["kind"] == "local"

    def ask(job: tuple[str, str]) -> tuple[str, str, str]:
        model, prompt = job
        response = httpx.post(f"{lora_server.url}/v1/chat/completions", timeout=300, json={
            "model": model, "messages": [{"role": "user", "content": prompt}], "temperature": 0, "max_tokens": 40})
        assert response.status_code == 200, response.text
        # The ingress's own frontend on the engine (coe/serve/linked_engine.py) carries the adapters too.
        assert "linked" in server_timing.parse(response.headers["server-timing"]), response.headers["server-timing"]
        body = response.json()
        return body["model"], response.headers["x-coe-expert"], body["choices"][0]["message"]["content"]

    jobs = [(model, p) for model in (BASE, "smollm2-code", "smollm2-math") for p in PROMPTS]
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(ask, jobs))
    for (model, _prompt), (named, header, _text) in zip(jobs, results):
        assert named == header == model
    served = {name: [text for (model, _), (_, _, text) in zip(jobs, results) if model == expert]
              for name, expert in (("base", BASE), ("code", "smollm2-code"), ("math", "smollm2-math"))}
    assert served == reference

    # `server.access_log: false` (`coe serve --no-access-log`): no line per request. The session's server,
    # with the default, prints its probe's line within seconds (test_chat_endpoint.py).
    request_id = probe_request(lora_server, BASE)
    assert lines_naming(lora_server, request_id, wait_s=10) == []
    assert lines_naming(lora_server, "POST /v1/chat/completions", wait_s=0) == []

    # `server.keep_off_engine_cores` (default): the engine is pinned to core 0, so Ray's processes and the
    # replicas run on the other cores, while the engine's processes start with every core.
    cores = os.sched_getaffinity(0)
    if len(cores) >= 2 and 0 in cores:
        tree = cores_by_process(lora_server.proc.pid)
        ray_side = {title: got for title, got in tree if title.startswith("ray::") or "raylet" in title
                    or "gcs_server" in title}
        assert any(title.startswith("ray::ServeReplica:coe:ingress") for title in ray_side)
        assert any("raylet" in title for title in ray_side)
        assert {title: got for title, got in ray_side.items() if got != cores - {0}} == {}
        assert [got for title, got in tree if title.startswith("VLLM::EngineCore")] == [cores]
        assert lines_naming(lora_server, "off the engines' cores 0", wait_s=0)  # and `coe serve` says so


def cores_by_process(root: int) -> list[tuple[str, set[int]]]:
    """(title, every core any of its threads may run on) of every process under `root`, itself included."""
    import psutil

    out = []
    for proc in [psutil.Process(root), *psutil.Process(root).children(recursive=True)]:
        try:
            title = " ".join(proc.cmdline()).strip()  # Ray pads its titles
            cores = set().union(*(os.sched_getaffinity(thread.id) for thread in proc.threads()))
        except (psutil.Error, OSError):  # ended between the listing and the read
            continue
        out.append((title, cores))
    return out


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def lora_engine(specialists: dict[str, Path]):
    engine = VLLMBackend(prepare(BASE).path, OPTIONS, PromptFormat.chat, "base",
                         adapters={name: folder / "adapter" for name, folder in specialists.items()})
    await engine.start()
    yield engine
    engine.close()


@in_module_loop
async def test_adapters_and_base_in_one_batch_equal_their_merged_checkpoints(lora_engine, reference) -> None:
    assert await lora_engine.adapter_tiers() == {"code": "warm", "math": "warm"}  # preloaded at start
    names = ["base", "code", "math"]
    mixed = await asyncio.gather(*[lora_engine.chat(request(p, None if n == "base" else n)) for n in names for p in PROMPTS])
    got = {n: [r.text for r in mixed[i * len(PROMPTS):(i + 1) * len(PROMPTS)]] for i, n in enumerate(names)}
    assert got == reference


@in_module_loop
async def test_an_unknown_adapter_is_refused_by_name(lora_engine) -> None:
    from coe.errors import ExpertUnavailable

    with pytest.raises(ExpertUnavailable, match="serves no adapter 'nope'"):
        await lora_engine.chat(request("hi", "nope"))
