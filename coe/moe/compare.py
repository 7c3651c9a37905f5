"""The README table: each domain's held-out check for the base, each specialist and the upcycled MoE.

The base and specialist scores come from the specialists' model cards (written by `coe finetune` with
the same prompts, greedy decoding and scorers); only the MoE is generated here, so the table costs one
engine instead of four. Every MoE answer is kept next to the table.

    python -m coe.moe.compare MOE_DIR SPECIALIST_DIR... [--out bench/results/experts]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from coe.finetune.evaluate import evaluate


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("moe", type=Path)
    parser.add_argument("specialists", type=Path, nargs="+")
    parser.add_argument("--out", type=Path, default=Path("bench/results/experts"))
    args = parser.parse_args(argv)
    cards = [json.loads((s / "coe-specialist.json").read_text()) for s in args.specialists]
    held = [c["held_out"] for c in cards]
    if any(h is None for h in held):
        raise SystemExit("every specialist needs held-out scores in its card (build it with --eval-n > 0)")
    domains = list(held[0])
    n = held[0][domains[0]]["n"]
    moe = evaluate([args.moe], domains, n)[str(args.moe)]
    args.out.mkdir(parents=True, exist_ok=True)
    with (args.out / "moe_answers.jsonl").open("w") as handle:
        for domain in domains:
            for row in moe[domain]["answers"]:
                handle.write(json.dumps({"domain": domain, **row}) + "\n")
    header = "| check | base | " + " | ".join(f"{c['name']}" for c in cards) + f" | {args.moe.name} (MoE) |"
    lines = [header, "|---" * (3 + len(cards)) + "|"]
    table = {}
    for domain in domains:
        base = held[0][domain]["base"]
        spec = [h[domain]["specialist"] for h in held]
        lines.append(f"| {held[0][domain]['check']} ({n}) | {base:.3f} | " + " | ".join(f"{s:.3f}" for s in spec)
                     + f" | {moe[domain]['score']:.3f} |")
        table[domain] = {"base": base, "specialists": dict(zip([c["name"] for c in cards], spec)),
                         "moe": moe[domain]["score"], "n": n}
    (args.out / "experts.json").write_text(json.dumps(table, indent=2) + "\n")
    (args.out / "experts.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
