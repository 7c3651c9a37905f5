"""What the CoE endpoint costs over calling the same engine directly, measured in one run.

Two arms, same expert (SmolLM2-135M-Instruct, eager bf16, one core), same prompts, same settings:
  direct   - `VLLMBackend` in this process: tokenization + vLLM AsyncLLM, no HTTP, no Ray.
  endpoint - `coe serve` over HTTP (openai-style JSON): the FastAPI ingress replica serves the port
             itself (direct ingress) and runs the same backend class on the engine the expert's
             replica started (server.direct_engines), as `coe serve` does by default.
Each arm runs a sequential pass (latency) and a concurrent pass (throughput) for two workloads:
max_tokens=1 (almost pure overhead) and max_tokens=32 (a short answer). The ratios are what to read:
absolute numbers on a shared 2-core machine are noisy.

    make bench            # or: python bench/endpoint_overhead.py --requests 40 --concurrency 8
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx
import yaml

from coe import paths
from coe.config import EngineOptions, PromptFormat, load_config
from coe.models.resolve import resolve_checkpoint
from coe.protocol import GenerationRequest, SamplingSettings
from coe.serve.subprocess_server import CoEServer, free_port

EXPERT = "smollm2-135m-instruct"
QUESTIONS = [
    "What is the capital of France?",
    "Name a primary colour.",
    "What is 3 + 4?",
    "Give one word for a large body of salt water.",
    "What do bees make?",
    "Which planet is closest to the sun?",
    "Write a greeting.",
    "What is the opposite of hot?",
]


@dataclass
class ArmResult:
    arm: str
    max_tokens: int
    p50_ms: float
    p99_ms: float
    throughput_rps: float
    tokens_per_s: float


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def measure(call, arm: str, max_tokens: int, requests: int, concurrency: int) -> ArmResult:
    """`call(question, max_tokens) -> completion_tokens`. Warm-up, sequential pass, concurrent pass."""
    for q in QUESTIONS[:2]:
        await call(q, max_tokens)
    latencies = []
    for i in range(requests):
        start = time.perf_counter()
        await call(QUESTIONS[i % len(QUESTIONS)], max_tokens)
        latencies.append((time.perf_counter() - start) * 1000)

    queue = list(range(requests))
    tokens = 0

    async def worker() -> None:
        nonlocal tokens
        while queue:
            i = queue.pop()
            produced = await call(QUESTIONS[i % len(QUESTIONS)], max_tokens)
            tokens += produced  # read-modify-write after the await, or concurrent workers lose counts

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - start
    return ArmResult(
        arm, max_tokens, statistics.median(latencies), percentile(latencies, 0.99),
        requests / elapsed, tokens / elapsed,
    )


def request_for(question: str, max_tokens: int, n: int) -> GenerationRequest:
    return GenerationRequest(
        request_id=f"bench-{n}-{time.perf_counter_ns()}",
        messages=({"role": "user", "content": question},),
        sampling=SamplingSettings(temperature=0.0, max_tokens=max_tokens),
    )


async def run_direct(checkpoint: Path, options: EngineOptions, args) -> list[ArmResult]:
    from coe.experts.vllm_backend import VLLMBackend

    backend = VLLMBackend(checkpoint, options, PromptFormat.chat, EXPERT)
    await backend.start()
    counter = iter(range(1 << 30))

    async def call(question: str, max_tokens: int) -> int:
        result = await backend.chat(request_for(question, max_tokens, next(counter)))
        return result.usage.completion_tokens

    try:
        return [await measure(call, "direct", mt, args.requests, args.concurrency) for mt in args.max_tokens]
    finally:
        await backend.shutdown()


async def run_endpoint(config_path: Path, port: int, args) -> list[ArmResult]:
    server = CoEServer(config_path, port, Path(tempfile.mkdtemp()) / "serve.log").start()
    try:
        async with httpx.AsyncClient(base_url=f"{server.url}/v1", timeout=300) as client:

            async def call(question: str, max_tokens: int) -> int:
                body = {
                    "model": EXPERT,
                    "messages": [{"role": "user", "content": question}],
                    "temperature": 0,
                    "max_tokens": max_tokens,
                }
                resp = await client.post("/chat/completions", json=body)
                resp.raise_for_status()
                return resp.json()["usage"]["completion_tokens"]

            return [await measure(call, "endpoint", mt, args.requests, args.concurrency) for mt in args.max_tokens]
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--out", type=Path, default=paths.results_dir("bench") / "endpoint_overhead.json")
    args = parser.parse_args()

    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    expert = load_config().expert(EXPERT)
    assert expert is not None
    options = expert.engine.model_copy(update={"cpu_bind": "0"})
    checkpoint = resolve_checkpoint(expert)
    config = {"experts": [{**expert.model_dump(mode="json", exclude_none=True), "engine": options.model_dump()}]}
    config_path = Path(tempfile.mkdtemp()) / "bench.yaml"
    config_path.write_text(yaml.safe_dump(config))

    print(f"endpoint arm: coe serve with one expert ({EXPERT}), {args.requests} requests per pass ...", flush=True)
    endpoint = asyncio.run(run_endpoint(config_path, free_port(), args))
    print("direct arm: the same engine in this process ...", flush=True)
    os.environ.update({"VLLM_CPU_KVCACHE_SPACE": f"{options.kv_cache_gib:g}", "VLLM_CPU_OMP_THREADS_BIND": "0"})
    direct = asyncio.run(run_direct(checkpoint, options, args))

    print(f"\n{'max_tokens':>10} {'arm':>9} {'p50 ms':>8} {'p99 ms':>8} {'req/s':>7} {'tok/s':>7}")
    for d, e in zip(direct, endpoint):
        for r in (d, e):
            print(f"{r.max_tokens:>10} {r.arm:>9} {r.p50_ms:8.1f} {r.p99_ms:8.1f} {r.throughput_rps:7.2f} {r.tokens_per_s:7.1f}")
        print(
            f"{'':>10} {'ratio':>9} {e.p50_ms / d.p50_ms:7.2f}x {e.p99_ms / d.p99_ms:7.2f}x "
            f"{e.throughput_rps / d.throughput_rps:6.2f}x   (endpoint / direct; +{e.p50_ms - d.p50_ms:.1f} ms p50)"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"direct": [asdict(r) for r in direct], "endpoint": [asdict(r) for r in endpoint],
                                    "settings": vars(args) | {"out": str(args.out)}}, indent=2))
    print(f"\nwritten to {args.out}")


if __name__ == "__main__":
    main()
