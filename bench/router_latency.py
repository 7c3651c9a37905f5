"""Stage-1 routing decision latency, one prompt at a time, for each embedder, in one run.

A decision is what the server does per request before any expert runs: embed the conversation,
``predict_proba`` with the trained classifier, take the top category and look its expert up in a
dict. The last rows time the served path itself: a trained router artifact (``--router``, default
the one ``make router`` builds) loaded as the server loads it, deciding through its predictor. Prompts are cut from the default dataset to exactly 32 and 256 MiniLM tokens, so both
embedders see the same text. The classifier is the default (``logreg``) trained on a small slice of
the dataset: its weights do not change its latency, and embedding the full set with MiniLM would
take minutes. Absolute numbers on a shared 2-core machine are noisy; compare rows within one run.

    python bench/router_latency.py [--iterations 300] [--out results/router_latency.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from coe.paths import routers_dir
from router_training.classifiers import train_classifier
from router_training.data import CATEGORIES, default_dataset
from router_training.embedders import get_embedder

EMBEDDERS = ("minilm", "static", "static-tuned")
TOKEN_LENGTHS = (32, 256)
PROMPTS_PER_LENGTH = 20


@dataclass(frozen=True)
class LatencyRow:
    embedder: str
    tokens: int
    p50_ms: float
    p99_ms: float
    embed_p50_ms: float
    classify_p50_ms: float


def prompts_of_length(tokens: int, count: int) -> list[str]:
    """Real prompt text cut to ``tokens`` MiniLM word pieces (no special tokens)."""
    from tokenizers import Tokenizer

    from router_training.embedders import _minilm_path

    tokenizer = Tokenizer.from_file(str(_minilm_path() / "tokenizer.json"))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    out: list[str] = []
    for item in default_dataset():
        ids = tokenizer.encode(item.text, add_special_tokens=False).ids
        if len(ids) >= tokens and item.text.isascii():
            out.append(tokenizer.decode(ids[:tokens]))
        if len(out) == count:
            return out
    raise RuntimeError(f"fewer than {count} prompts with {tokens} tokens")


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) * 1000


def timed(label: str, embed: Callable[[str], Any], decide: Callable[[Any], Any], iterations: int) -> list[LatencyRow]:
    """``embed`` then ``decide`` on each prompt, one at a time, at every token length."""
    rows = []
    for tokens in TOKEN_LENGTHS:
        prompts = prompts_of_length(tokens, PROMPTS_PER_LENGTH)
        total, embedding, deciding = [], [], []
        for i in range(iterations + 20):  # the first 20 are warm-up and not recorded
            prompt = prompts[i % len(prompts)]
            t0 = time.perf_counter()
            vector = embed(prompt)
            t1 = time.perf_counter()
            assert decide(vector)
            t2 = time.perf_counter()
            if i >= 20:
                total.append(t2 - t0)
                embedding.append(t1 - t0)
                deciding.append(t2 - t1)
        rows.append(
            LatencyRow(
                label,
                tokens,
                round(_percentile(total, 50), 3),
                round(_percentile(total, 99), 3),
                round(statistics.median(embedding) * 1000, 3),
                round(statistics.median(deciding) * 1000, 3),
            )
        )
    return rows


def measure(embedder_name: str, iterations: int, train_per_category: int) -> list[LatencyRow]:
    embedder = get_embedder(embedder_name)
    dataset = default_dataset(cap=train_per_category)
    X = embedder.encode([item.text for item in dataset])
    classifier = train_classifier("logreg", X, [item.category for item in dataset])
    classes = [str(c) for c in classifier.classes_]
    expert_of = {category: f"expert-{category}" for category in CATEGORIES}
    return timed(
        embedder_name,
        lambda prompt: embedder.encode([prompt]),
        lambda vector: expert_of[classes[int(classifier.predict_proba(vector)[0].argmax())]],
        iterations,
    )


def measure_served(folder: Path, iterations: int) -> list[LatencyRow]:
    """The whole decision the server makes with a trained artifact: its embedder, its numpy
    classifier, the per-prompt predictor and the knob's preference order (``CategoryRouter``)."""
    from coe.routing.router import CategoryRouter
    from coe.routing.text import conversation_text

    router = CategoryRouter.load(folder)
    return timed(
        f"router {folder.name} ({router.artifact.embedder['name']}, served path)",
        lambda prompt: router.embedder.encode([conversation_text([{"role": "user", "content": prompt}])]),
        lambda vector: router.decide_batch(vector)[0].expert,
        iterations,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--iterations", type=int, default=300)
    parser.add_argument("--train-per-category", type=int, default=50)
    parser.add_argument("--embedders", nargs="+", default=list(EMBEDDERS))
    parser.add_argument("--router", type=Path, default=routers_dir() / "default",
                        help="also time the served decision of this router artifact (skipped if absent)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    rows = [r for name in args.embedders for r in measure(name, args.iterations, args.train_per_category)]
    if (args.router / "router.json").is_file():
        rows += measure_served(args.router, args.iterations)
    else:
        print(f"no router at {args.router} (make router): served decision not timed")
    print(f"routing decision latency, one prompt at a time, {args.iterations} runs, {os.cpu_count()} CPUs")
    print("| embedder | tokens | p50 ms | p99 ms | embed p50 ms | decide p50 ms |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r.embedder} | {r.tokens} | {r.p50_ms:.2f} | {r.p99_ms:.2f} "
            f"| {r.embed_p50_ms:.2f} | {r.classify_p50_ms:.3f} |"
        )
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps([asdict(r) for r in rows], indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
