"""The README table: each domain's held-out check for the base, each specialist and the upcycled MoE.

Every model answers the same held-out prompts in one run (greedy, vLLM, the scorers `coe finetune`
uses: HumanEval unit tests for code, exact answers for math), so the columns are comparable even when
the specialists' model cards were scored on different numbers of prompts. Every answer is kept next
to the table.

    python -m coe.moe.compare MOE_DIR SPECIALIST_DIR... [--n 30] [--out bench/results/experts]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from coe.finetune.evaluate import evaluate


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("moe", type=Path)
    parser.add_argument("specialists", type=Path, nargs="+")
    parser.add_argument("--n", type=int, default=30, help="held-out prompts per domain")
    parser.add_argument("--out", type=Path, default=Path("bench/results/experts"))
    args = parser.parse_args(argv)
    cards = [json.loads((s / "coe-specialist.json").read_text()) for s in args.specialists]
    bases = {c["base"] for c in cards}
    if len(bases) != 1:
        raise SystemExit(f"the specialists come from different base models: {sorted(bases)}")
    base = Path(bases.pop())
    domains = [c["domain"] for c in cards]
    columns = [("base", base)] + [(c["name"], s) for c, s in zip(cards, args.specialists)] + [(f"{args.moe.name} (MoE)", args.moe)]
    started = time.monotonic()
    print(f"scoring {len(columns)} models on {args.n} held-out prompts of {', '.join(domains)} ...", flush=True)
    results = evaluate([path for _, path in columns], domains, args.n)
    args.out.mkdir(parents=True, exist_ok=True)
    with (args.out / "answers.jsonl").open("w") as handle:
        for name, path in columns:
            for domain in domains:
                for row in results[str(path)][domain]["answers"]:
                    handle.write(json.dumps({"model": name, "domain": domain, **row}) + "\n")
    first_check = {c["domain"]: (c.get("held_out") or {}).get(c["domain"], {}).get("check", c["domain"]) for c in cards}
    lines = ["| check | " + " | ".join(name for name, _ in columns) + " |", "|---" * (1 + len(columns)) + "|"]
    table: dict = {"n": args.n, "seconds": round(time.monotonic() - started), "domains": {}}
    for domain in domains:
        scores = {name: results[str(path)][domain]["score"] for name, path in columns}
        lines.append(f"| {first_check[domain]} ({args.n}) | " + " | ".join(f"{s:.3f}" for s in scores.values()) + " |")
        table["domains"][domain] = scores
    (args.out / "experts.json").write_text(json.dumps(table, indent=2) + "\n")
    (args.out / "experts.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
