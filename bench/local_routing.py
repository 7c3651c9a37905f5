"""Does routing between CoE's own local experts pay off? One run, real checks, written to disk.

Starts `coe serve` with the default arrangement (the specialists and the MoE too once `make experts`
has built them), has every local expert answer the local labelled prompts
(router_training.local_analysis), scores them (HumanEval unit tests, exact math answers, and the
SmolLM2 expert itself as a weak LLM judge for writing/general), then compares the K-shot category map
against the best single expert, random routing and the oracle on held-out halves.

    make bench-routing     # or: python bench/local_routing.py --per-category 10 --seeds 20 [--categories coding,math]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

from coe import paths
from coe.serve.subprocess_server import CoEServer, free_port
from router_training import local_analysis as la

JUDGE = "smollm2-135m-instruct"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--per-category", type=int, default=10)
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--categories", default="coding,math,writing,general",
                        help="which local categories to score (writing/general need the LLM judge)")
    parser.add_argument("--out", type=Path, default=paths.results_dir("bench") / "local_routing")
    args = parser.parse_args()
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

    from coe.config import default_config_text, load_config
    from coe.models.resolve import without_missing_optional
    from evals.scorers.llm_judge import LLMJudgeScorer

    served, skipped = without_missing_optional(load_config())
    experts = [e.id for e in served.experts if e.remote is None]
    for reason in skipped.values():
        print(f"skipping optional {reason}", flush=True)
    config_path = Path(tempfile.mkdtemp()) / "coe.yaml"
    config_path.write_text(default_config_text())
    server = CoEServer(config_path, free_port(), config_path.with_name("serve.log"))
    print(f"starting coe serve ({', '.join(experts)}; 1-3 minutes) ...", flush=True)
    server.start()
    try:
        endpoint = f"{server.url}/v1"
        client = httpx.Client(base_url=endpoint, timeout=600)

        def answer(expert: str, prompt: str, max_tokens: int) -> str:
            body = {"model": expert, "messages": [{"role": "user", "content": prompt}],
                    "temperature": 0, "max_tokens": max_tokens}
            resp = client.post("/chat/completions", json=body)
            if resp.status_code != 200:  # a failed request is not a wrong answer: stop and say why
                raise SystemExit(f"{expert} answered HTTP {resp.status_code}: {resp.text[:500]}\n"
                                 f"(server log: {config_path.with_name('serve.log')})")
            return resp.json()["choices"][0]["message"]["content"]

        judge = LLMJudgeScorer(f"openai/{JUDGE}", api_base=endpoint, api_key="unused", max_tokens=256)
        wanted = set(args.categories.split(","))
        items = [i for i in la.local_items(args.per_category) if i.category in wanted]
        started = time.monotonic()

        def step(done: int, total: int) -> None:
            if done % 10 == 0 or done == total:
                print(f"  scored {done}/{total} ({time.monotonic() - started:.0f} s)", flush=True)

        transcript: list[dict] = []
        matrix = la.score_answers(items, experts, answer, judge, step, transcript=transcript)
    finally:
        server.stop()
    categories = [i.category for i in items]
    report = {
        "experts": experts,
        "categories": sorted(wanted),
        "judge": f"{JUDGE} (local, weak)",
        "per_category": la.per_expert_table(matrix, categories, experts),
        "invalid_scores": int(np.isnan(matrix).sum()),
        "summary": la.evaluate(matrix, categories, experts, k_list=(1, 3, None), seeds=args.seeds),
        "seconds": round(time.monotonic() - started),
    }
    print(la.save(report, args.out, transcript))
    print(f"invalid scores (unparseable judgments): {report['invalid_scores']}; written to {args.out}")


if __name__ == "__main__":
    main()
