"""The README table: each domain's held-out check for the base, each specialist and the upcycled MoE.

Every model answers the same held-out prompts in one run (greedy, vLLM, the scorers `coe finetune`
uses: HumanEval unit tests for code, exact answers for math), so the columns are comparable even when
the specialists' model cards were scored on different numbers of prompts. Each model is also compared
with the base prompt by prompt (wins/losses and a bootstrap 95% interval of the difference), because
a few problems either way is noise at these sample sizes. Every answer is kept next to the table.

    python -m coe.moe.compare MOE_DIR SPECIALIST_DIR... [--n 30] [--out bench/results/experts]
    python -m coe.moe.compare --from-answers bench/results/experts    # the tables again, no generation
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

from coe import paths

CHECKS = {"code": "HumanEval unit tests, pass@1", "math": "held-out word problems, exact answer"}


def paired_vs_base(model: list[float], base: list[float], resamples: int = 5000, seed: int = 0) -> dict:
    """Prompt-by-prompt difference to the base: wins, losses, mean and a bootstrap 95% interval."""
    diff = [m - b for m, b in zip(model, base, strict=True)]
    rng = random.Random(seed)
    means = sorted(sum(diff[rng.randrange(len(diff))] for _ in diff) / len(diff) for _ in range(resamples))
    return {"wins": sum(d > 0 for d in diff), "losses": sum(d < 0 for d in diff), "diff": sum(diff) / len(diff),
            "low": means[int(0.025 * resamples)], "high": means[int(0.975 * resamples) - 1]}


def tables(rows: list[dict]) -> tuple[str, dict]:
    """Markdown tables and their JSON from answer rows ({model, domain, score, ...}); 'base' is the baseline."""
    models = list(dict.fromkeys(r["model"] for r in rows))
    domains = list(dict.fromkeys(r["domain"] for r in rows))
    scores = {(m, d): [r["score"] for r in rows if r["model"] == m and r["domain"] == d] for m in models for d in domains}
    lines = ["| check | " + " | ".join(models) + " |", "|---" * (1 + len(models)) + "|"]
    paired_lines = ["| check: model vs base | wins | losses | difference [95% interval] |", "|---|---:|---:|---|"]
    result: dict = {"domains": {}}
    for domain in domains:
        n = len(scores[(models[0], domain)])
        lines.append(f"| {CHECKS.get(domain, domain)} ({n}) | "
                     + " | ".join(f"{sum(scores[(m, domain)]) / n:.3f}" for m in models) + " |")
        result["domains"][domain] = {"n": n, "scores": {m: sum(scores[(m, domain)]) / n for m in models}, "vs_base": {}}
        for model in models[1:]:
            p = paired_vs_base(scores[(model, domain)], scores[("base", domain)])
            result["domains"][domain]["vs_base"][model] = p
            paired_lines.append(f"| {domain}: {model} | {p['wins']} | {p['losses']} | "
                                f"{p['diff']:+.3f} [{p['low']:+.3f}, {p['high']:+.3f}] |")
    return "\n".join(lines) + "\n\n" + "\n".join(paired_lines) + "\n", result


def _generate(args: argparse.Namespace) -> list[dict]:
    from coe.finetune.evaluate import evaluate

    cards = [json.loads((s / "coe-specialist.json").read_text()) for s in args.specialists]
    bases = {c["base"] for c in cards}
    if len(bases) != 1:
        raise SystemExit(f"the specialists come from different base models: {sorted(bases)}")
    columns = [("base", Path(bases.pop()))] + [(c["name"], s) for c, s in zip(cards, args.specialists)]
    columns.append((f"{args.moe.name} (MoE)", args.moe))
    domains = [c["domain"] for c in cards]
    print(f"scoring {len(columns)} models on {args.n} held-out prompts of {', '.join(domains)} "
          f"(about 10 min on 2 cores for 82) ...", flush=True)
    results = evaluate([path for _, path in columns], domains, args.n)
    return [{"model": name, "domain": domain, **row}
            for name, path in columns for domain in domains for row in results[str(path)][domain]["answers"]]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("moe", type=Path, nargs="?")
    parser.add_argument("specialists", type=Path, nargs="*")
    parser.add_argument("--n", type=int, default=30, help="held-out prompts per domain")
    parser.add_argument("--out", type=Path, default=paths.results_dir("bench") / "experts")
    parser.add_argument("--from-answers", type=Path, help="rebuild the tables from a previous run's answers.jsonl folder")
    args = parser.parse_args(argv)
    started = time.monotonic()
    if args.from_answers:
        rows = [json.loads(line) for line in (args.from_answers / "answers.jsonl").read_text().splitlines()]
    elif args.moe is None or not args.specialists:
        parser.error("give the MoE folder and its specialists' folders, or --from-answers")
    else:
        rows = _generate(args)
    args.out.mkdir(parents=True, exist_ok=True)
    if not args.from_answers:
        (args.out / "answers.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    markdown, result = tables(rows)
    result["seconds"] = round(time.monotonic() - started)
    (args.out / "experts.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out / "experts.md").write_text(markdown)
    print(markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
