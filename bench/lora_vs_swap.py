"""Specialists of one base as LoRA adapters on its engine against today's swap pool, on one mixed trace.

The same seeded trace (Poisson arrivals, a mix of base, code and math requests, greedy, EOS ignored
so every request decodes exactly `--max-tokens` tokens) is replayed three times from one process, one
engine at a time, each with the same engine settings (eager, bf16, one pinned core, same batch size):

  lora       one engine on the base with both adapters (vLLM multi-LoRA, CoE's LoRASet): no swaps;
  swap pool  one engine slot holding one merged checkpoint at a time (coe/swap, grouping by expert),
             given its best case: every image built and warm (in RAM) before the trace starts;
  base only  the base engine without LoRA, every request sent to the base weights: the same tokens
             with no adapter work, i.e. what LoRA itself costs.

Reported per row: throughput (requests and tokens per second of makespan, first arrival to last
answer), p50/p99 latency, swaps, and for the lora row how many greedy answers equal the swap pool's
answer from the merged checkpoint in bf16 (the rounding of W + BA to bf16 moves some after a few
tokens; in float32 they are equal, tests/integration/test_lora_experts.py).

The specialists are the ones `make experts` built (`<model cache>/smollm2-code`, `.../smollm2-math`),
or, before that has run, quick real ones trained here in seconds (coe/finetune/quick.py; named in
the output).

    python bench/lora_vs_swap.py [--requests 60] [--rate 2.0] [--max-tokens 16] [--out FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")  # (AsyncLLM still runs its engine core in a child)

from coe import paths  # noqa: E402
from coe.config import EngineOptions, ExpertConfig, PromptFormat, SwapPoolConfig  # noqa: E402
from coe.finetune.layout import ADAPTER_FOLDER  # noqa: E402
from coe.protocol import GenerationRequest, SamplingSettings  # noqa: E402

BASE = "smollm2-135m-instruct"
SPECIALISTS = ("smollm2-code", "smollm2-math")
PROMPTS = {
    BASE: ["What is the capital of France?", "Write one sentence about the sea.", "Name a famous painter.",
           "Give me a tip for learning the guitar."],
    "smollm2-code": ["Write a Python function that reverses a string.", "Write a Python function that sums a list.",
                     "Write a Python function that checks if a number is prime."],
    "smollm2-math": ["Ana has 12 pens and buys 3 bags of 4 pens. How many pens does she have?",
                     "A train goes 60 km in 1.5 hours. What is its speed?",
                     "Tom had 30 apples and gave away 12. How many are left?"],
}
OPTIONS = EngineOptions(max_model_len=512, max_num_seqs=16, cpu_bind="0")


@dataclass(frozen=True)
class Arrival:
    at_s: float
    expert: str
    prompt: str


def make_trace(n: int, rate_per_s: float, seed: int) -> list[Arrival]:
    """Poisson arrivals; half the requests for the base, a quarter for each specialist."""
    rng = random.Random(seed)
    experts, weights = [BASE, *SPECIALISTS], [2, 1, 1]
    t, trace = 0.0, []
    for _ in range(n):
        t += rng.expovariate(rate_per_s)
        expert = rng.choices(experts, weights)[0]
        trace.append(Arrival(t, expert, rng.choice(PROMPTS[expert])))
    return trace


def request(prompt: str, max_tokens: int, adapter: str | None = None) -> GenerationRequest:
    return GenerationRequest(uuid.uuid4().hex, ({"role": "user", "content": prompt},),
                             SamplingSettings(temperature=0.0, max_tokens=max_tokens, ignore_eos=True), adapter=adapter)


async def replay(trace: list[Arrival], answer) -> dict:
    """Sends every arrival at its time through `answer(arrival) -> GenerationResult`; latency per request."""
    loop = asyncio.get_running_loop()
    start = loop.time()

    async def one(a: Arrival) -> tuple[float, str, int]:
        await asyncio.sleep(max(0.0, start + a.at_s - loop.time()))
        sent = loop.time()
        result = await answer(a)
        return loop.time() - sent, result.text, result.usage.completion_tokens

    done = await asyncio.gather(*(one(a) for a in trace))
    makespan = loop.time() - start
    latencies = sorted(d[0] for d in done)
    return {
        "requests_per_s": len(trace) / makespan,
        "tokens_per_s": sum(d[2] for d in done) / makespan,
        "p50_s": latencies[len(latencies) // 2],
        "p99_s": latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))],
        "makespan_s": makespan,
        "texts": [d[1] for d in done],
    }


def specialists(work: Path, say) -> tuple[dict[str, Path], str]:
    """name -> folder with the merged checkpoint and adapter/: the built ones, or quick ones trained now."""
    built = {name: paths.model_cache_dir() / name for name in SPECIALISTS}
    if all((folder / ADAPTER_FOLDER / "adapter_config.json").is_file() and (folder / "config.json").is_file()
           for folder in built.values()):
        return built, "built by `make experts`"
    from coe.finetune.quick import QUICK, build_specialists
    from coe.models.prepare import prepare

    say("the specialists are not built (`make experts`): training quick ones (coe/finetune/quick.py)")
    quick = build_specialists(prepare(BASE).path, work / "specialists")
    return ({f"smollm2-{domain}": folder for domain, folder in quick.items()},
            f"quick ones trained by this bench ({QUICK.steps} steps, rank {QUICK.rank})")


async def lora_row(base: Path, folders: dict[str, Path], trace: list[Arrival], max_tokens: int) -> dict:
    from coe.experts.vllm_backend import VLLMBackend

    backend = VLLMBackend(base, OPTIONS, PromptFormat.chat, BASE,
                          adapters={name: folder / ADAPTER_FOLDER for name, folder in folders.items()})
    await backend.start()  # preloads both adapters into the CPU cache: they start warm, as the swap pool's images
    try:
        async def answer(a: Arrival):
            return await backend.chat(request(a.prompt, max_tokens, None if a.expert == BASE else a.expert))

        await answer(trace[0])  # one untimed request, as in every row
        return {"row": "lora", "swaps": 0, **await replay(trace, answer)}
    finally:
        backend.close()


async def base_only_row(base: Path, trace: list[Arrival], max_tokens: int) -> dict:
    from coe.experts.vllm_backend import VLLMBackend

    backend = VLLMBackend(base, OPTIONS, PromptFormat.chat, BASE)
    await backend.start()
    try:
        async def answer(a: Arrival):
            return await backend.chat(request(a.prompt, max_tokens))

        await answer(trace[0])
        return {"row": "base only", "swaps": 0, **await replay(trace, answer)}
    finally:
        backend.close()


async def swap_row(base: Path, folders: dict[str, Path], trace: list[Arrival], max_tokens: int, work: Path) -> dict:
    from coe.swap.slot import EngineSlot

    checkpoints = {BASE: base, **folders}
    experts = {e: ExpertConfig(id=e, weights=str(p), prompt_format=PromptFormat.chat, engine=OPTIONS)
               for e, p in checkpoints.items()}
    pool = SwapPoolConfig(id="bench", experts=list(checkpoints), warm_gib=1.0, prefetch=False,
                          warm_dir=paths.warm_dir() / f"lora-bench-{os.getpid()}")
    slot = EngineSlot("bench-slot", pool, experts, checkpoints, work / "images")
    await slot.start()
    try:
        for expert in [*folders, BASE]:  # build every image, then every one warm, the base hot
            await slot._swap(expert)
        for expert in checkpoints:
            slot.tiers.promote(expert)

        async def answer(a: Arrival):
            return await slot.chat(a.expert, request(a.prompt, max_tokens))

        await answer(Arrival(0, BASE, trace[0].prompt))
        before = sum(slot.metrics.swaps.values())
        row = await replay(trace, answer)
        return {"row": "swap pool", "swaps": sum(slot.metrics.swaps.values()) - before, **row}
    finally:
        await slot.shutdown()
        shutil.rmtree(pool.warm_dir, ignore_errors=True)


def agreement(trace: list[Arrival], texts: dict[str, list[str]]) -> dict[str, str]:
    """Greedy answers that are equal, as 'k/n': each LoRA specialist against its merged checkpoint (the swap
    pool's), and the base's answers of each arrangement against the plain base engine's."""
    def equal(expert: str, x: list[str], y: list[str]) -> str:
        pairs = [(p, q) for a, p, q in zip(trace, x, y) if a.expert == expert]
        return f"{sum(p == q for p, q in pairs)}/{len(pairs)}"

    out = {f"{e}: lora = merged": equal(e, texts["lora"], texts["swap pool"]) for e in SPECIALISTS}
    out[f"{BASE}: lora = base only"] = equal(BASE, texts["lora"], texts["base only"])
    out[f"{BASE}: swap pool = base only"] = equal(BASE, texts["swap pool"], texts["base only"])
    return out


def format_table(rows: list[dict], trace: list[Arrival], max_tokens: int, rate: float, source: str) -> str:
    counts = {e: sum(a.expert == e for a in trace) for e in [BASE, *SPECIALISTS]}
    lora = next(r for r in rows if r["row"] == "lora")
    lines = [f"trace: {len(trace)} requests at {rate:g} req/s Poisson ({', '.join(f'{e} {n}' for e, n in counts.items())}), "
             f"{max_tokens} tokens each (EOS ignored); specialists: {source}",
             "| arrangement | requests/s | tokens/s | p50 | p99 | swaps | vs lora: throughput, p50 |",
             "|---|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        vs = f"{r['requests_per_s'] / lora['requests_per_s']:.2f}x, {r['p50_s'] / lora['p50_s']:.2f}x"
        lines.append(f"| {r['row']} | {r['requests_per_s']:.2f} | {r['tokens_per_s']:.1f} | {r['p50_s']:.2f} s | "
                     f"{r['p99_s']:.2f} s | {r['swaps']} | {vs} |")
    return "\n".join(lines)


async def run(args: argparse.Namespace, say) -> dict:
    from coe.models.prepare import prepare

    work = Path(tempfile.mkdtemp(prefix="coe-lora-bench-"))
    try:
        base = prepare(BASE).path
        folders, source = specialists(work, say)
        trace = make_trace(args.requests, args.rate, args.seed)
        rows = []
        for name, make in [("lora", lambda: lora_row(base, folders, trace, args.max_tokens)),
                           ("swap pool", lambda: swap_row(base, folders, trace, args.max_tokens, work)),
                           ("base only", lambda: base_only_row(base, trace, args.max_tokens))]:
            say(f"booting and replaying: {name}")
            started = time.monotonic()
            rows.append(await make())
            say(f"  {name}: done in {time.monotonic() - started:.0f} s")
        texts = {r["row"]: r.pop("texts") for r in rows}
        return {"rows": rows, "specialists": source, "requests": args.requests, "rate": args.rate,
                "max_tokens": args.max_tokens, "seed": args.seed,
                "equal_answers_bf16": agreement(trace, texts),
                "table": format_table(rows, trace, args.max_tokens, args.rate, source)}
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=60)
    parser.add_argument("--rate", type=float, default=2.0, help="Poisson arrivals per second")
    parser.add_argument("--max-tokens", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=paths.results_dir("bench") / "lora_vs_swap.json")
    args = parser.parse_args(argv)

    def say(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    result = asyncio.run(run(args, say))
    print(result["table"])
    print("equal greedy answers (bf16):", "; ".join(f"{e} {v}" for e, v in result["equal_answers_bf16"].items()))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
