"""Decode throughput of an upcycled MoE expert against its dense source, on the same prompts, one run.

Both checkpoints run in the same fresh process, one after the other, in eager vLLM-CPU with the same
settings (batch of all prompts, greedy, fixed max_tokens, EOS ignored so both decode the same number
of tokens), so the ratio is fair even though absolute numbers on a shared 2-core machine are noisy.
Also reported: total parameters against parameters active per token (top-k of the experts).

    python bench/moe_throughput.py [--moe DIR] [--dense DIR] [--dtype bfloat16] [--out bench/results/moe_throughput.json]

Without --moe, a 2-expert top-2 MoE is upcycled from --dense (twice), which times the kernel only.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from coe import paths
from coe.models.inspect import checkpoint_stats
from coe.moe.probe import probe
from coe.moe.settings import moe_settings
from coe.moe.upcycle import upcycle

PROMPTS = [
    "Write a Python function that returns the factorial of n.",
    "A shop has 17 apples and buys 4 boxes of 6 apples. How many apples does it have?",
    "Write a short poem about the sea.",
    "Explain what a hash table is in two sentences.",
    "List three uses of copper.",
    "What is the capital of Japan and why is it important?",
    "Translate 'good morning' into French and Spanish.",
    "Give me a tip for learning to play the guitar.",
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dense", type=Path, default=paths.model_cache_dir() / "smollm2-135m-instruct")
    parser.add_argument("--moe", type=Path, default=None)
    parser.add_argument("--dtype", default="bfloat16")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--out", type=Path, default=paths.results_dir("bench") / "moe_throughput.json")
    args = parser.parse_args(argv)
    tmp = None
    if args.moe is None:
        tmp = tempfile.TemporaryDirectory(prefix="coe-moe-bench-")
        args.moe = upcycle([args.dense, args.dense], Path(tmp.name) / "moe", top_k=2).path
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(args.dense))
    prompts = [tokenizer.apply_chat_template([{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True)
               for p in PROMPTS]
    started = time.monotonic()
    report = probe([str(args.dense), str(args.moe)], prompts, max_tokens=args.max_tokens, dtype=args.dtype,
                   ignore_eos=True)
    rows = []
    for run, folder in zip(report["vllm"], (args.dense, args.moe)):
        stats = checkpoint_stats(Path(folder))
        settings = moe_settings(Path(folder))
        rows.append({
            "model": str(folder), "kind": settings.describe() if settings else "dense",
            "total_params": stats.num_params, "active_params": stats.active_params,
            "tokens": run["gen_tokens"], "seconds": round(run["gen_s"], 3),
            "tokens_per_s": round(run["gen_tokens"] / run["gen_s"], 2), "boot_s": round(run["boot_s"], 1),
        })
    result = {"dtype": args.dtype, "prompts": len(PROMPTS), "max_tokens": args.max_tokens, "rows": rows,
              "moe_over_dense_throughput": round(rows[1]["tokens_per_s"] / rows[0]["tokens_per_s"], 3),
              "wall_s": round(time.monotonic() - started, 1)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print("| model | kind | total params | active params | tokens/s (batch of 8) |")
    print("|---|---|---:|---:|---:|")
    for row in rows:
        print(f"| {Path(row['model']).name} | {row['kind']} | {row['total_params'] / 1e6:.1f}M | "
              f"{row['active_params'] / 1e6:.1f}M | {row['tokens_per_s']:.1f} |")
    print(f"MoE / dense throughput: {result['moe_over_dense_throughput']:.2f} ({args.dtype}); wrote {args.out}")
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
