"""Offline routing analysis: would routing between these experts pay, and does the router capture it?

Input: per-prompt scores of several experts on the same prompts (one harness run per expert, or a
JSONL file), optionally the router's per-prompt choices (a harness run of ``model=coe`` records which
expert served each prompt). Output, over the prompts every expert has a valid score for:

    best single   the expert with the best mean (chosen on these same prompts: optimistic for it)
    oracle        per prompt, the best expert's score (an upper bound; part of it is judge noise)
    random        per prompt, the mean over experts (the expectation of a uniform random choice)
    router        per prompt, the score of the expert the router chose, read from that expert's run,
                  so router and experts are compared on the same judgments (no extra judge noise)
    headroom captured = (router - best single) / (oracle - best single)

with 95% intervals from a paired bootstrap over prompts. ``yardsticks`` and ``headroom_share`` are the
definitions the router-training analyses use too.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np


class AnalysisInputError(ValueError):
    """Scores that cannot be analysed (fewer than two experts, no prompt scored by all, bad lines)."""


def yardsticks(scores: np.ndarray, best: int) -> dict[str, float]:
    """Mean score of the best single expert (column ``best``), the per-prompt oracle and random routing.
    ``scores``: [prompts, experts] without NaN."""
    return {"best single": float(scores[:, best].mean()), "oracle": float(scores.max(axis=1).mean()),
            "random": float(scores.mean(axis=1).mean())}


def headroom_share(value: float, best: float, oracle: float) -> float:
    """Share of the oracle's gain over the best single expert that ``value`` captures (0 when there is
    no headroom: nothing to capture, so nothing is claimed)."""
    return (value - best) / (oracle - best) if oracle > best else 0.0


@dataclass
class ScoreMatrix:
    prompt_ids: list[str]
    categories: list[str]
    experts: list[str]
    scores: np.ndarray  # [prompts, experts], complete (prompts missing any expert's score are dropped)
    dropped: int = 0


def _rows_from_run(folder: Path) -> list[dict[str, Any]]:
    manifest_path, per_prompt = folder / "manifest.json", folder / "per_prompt.jsonl"
    if not manifest_path.is_file() or not per_prompt.is_file():
        raise AnalysisInputError(f"{folder} is not a finished harness run (no manifest.json / per_prompt.jsonl)")
    expert = json.loads(manifest_path.read_text())["arrangement"]["evaluated"]
    rows = [json.loads(line) for line in per_prompt.read_text().splitlines() if line.strip()]
    return [{**r, "expert": expert} for r in rows]


def _rows_from_file(path: Path) -> list[dict[str, Any]]:
    rows = []
    for lineno, raw in enumerate(path.read_text().splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            row = json.loads(raw)
            rows.append({"prompt_id": str(row["prompt_id"]), "category": str(row.get("category", "all")),
                         "expert": str(row["expert"]), "score": None if row["score"] is None else float(row["score"])})
        except (ValueError, KeyError, TypeError) as err:
            raise AnalysisInputError(f"{path}:{lineno}: expected prompt_id, expert, score ({err})") from None
    return rows


def load_scores(runs: Sequence[Path], scores_file: Path | None) -> ScoreMatrix:
    rows = [r for run in runs for r in _rows_from_run(Path(run))]
    if scores_file is not None:
        rows += _rows_from_file(Path(scores_file))
    experts = sorted({r["expert"] for r in rows})
    if len(experts) < 2:
        raise AnalysisInputError(f"routing needs scores of at least two experts; got {experts or 'none'}")
    table: dict[str, dict[str, float]] = {}
    category: dict[str, str] = {}
    for r in rows:
        category.setdefault(r["prompt_id"], r["category"])
        if r["score"] is not None:
            table.setdefault(r["prompt_id"], {})[r["expert"]] = float(r["score"])
    all_prompts = sorted(category)
    complete = [p for p in all_prompts if len(table.get(p, {})) == len(experts)]
    if not complete:
        raise AnalysisInputError("no prompt has a valid score from every expert (invalid judgments are not scores)")
    scores = np.array([[table[p][e] for e in experts] for p in complete])
    return ScoreMatrix(complete, [category[p] for p in complete], experts, scores, len(all_prompts) - len(complete))


def load_router_choices(folder: Path) -> dict[str, str]:
    """prompt_id -> the expert that served it (``x-coe-expert`` of its first turn), from a harness run
    of the router."""
    per_prompt = Path(folder) / "per_prompt.jsonl"
    if not per_prompt.is_file():
        raise AnalysisInputError(f"{folder} is not a finished harness run (no per_prompt.jsonl)")
    rows = [json.loads(line) for line in per_prompt.read_text().splitlines() if line.strip()]
    return {r["prompt_id"]: r["expert"] for r in rows if r.get("expert")}


def _interval(values: np.ndarray) -> list[float]:
    return [float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))]


def analyse(m: ScoreMatrix, choices: dict[str, str] | None = None, *, seed: int = 0, rounds: int = 1000) -> dict[str, Any]:
    s = m.scores
    best = int(np.argmax(s.mean(axis=0)))
    arrangements: dict[str, np.ndarray] = {
        "best single": s[:, best], "oracle": s.max(axis=1), "random": s.mean(axis=1),
    }
    router_info: dict[str, Any] = {}
    if choices is not None:
        picked = [m.experts.index(choices[p]) if choices.get(p) in m.experts else -1 for p in m.prompt_ids]
        known = np.array([j >= 0 for j in picked])
        router_info = {"prompts_with_choice": int(known.sum()),
                       "prompts_without_scorable_choice": int((~known).sum()),
                       "choices": {e: int(sum(j == i for j in picked)) for i, e in enumerate(m.experts)}}
        if known.any():
            rows = np.flatnonzero(known)
            router_scores = np.full(len(picked), np.nan)
            router_scores[rows] = s[rows, np.array(picked)[rows]]
            arrangements["router"] = router_scores
    # Compare on the prompts every arrangement has a score for (the router may lack some).
    mask = np.all([~np.isnan(v) for v in arrangements.values()], axis=0)
    idx = np.flatnonzero(mask)
    rng = np.random.default_rng(seed)
    boots = rng.integers(len(idx), size=(rounds, len(idx)))
    results: dict[str, Any] = {}
    b_all, o_all = arrangements["best single"][idx], arrangements["oracle"][idx]
    for name, values in arrangements.items():
        v = values[idx]
        share = headroom_share(float(v.mean()), float(b_all.mean()), float(o_all.mean()))
        boot_means = v[boots].mean(axis=1)
        boot_share = np.array([headroom_share(bm, b_all[r].mean(), o_all[r].mean()) for bm, r in zip(boot_means, boots)])
        results[name] = {"mean": float(v.mean()), "ci95": _interval(boot_means),
                         "headroom_share": share, "headroom_ci95": _interval(boot_share)}
    per_category = {}
    cats = np.array(m.categories)
    for c in sorted(set(m.categories)):
        rows = cats == c
        means = s[rows].mean(axis=0)
        per_category[c] = {"n": int(rows.sum()), "means": {e: float(means[j]) for j, e in enumerate(m.experts)},
                           "best": m.experts[int(np.argmax(means))]}
    return {
        "experts": m.experts,
        "expert_means": {e: float(s[:, j].mean()) for j, e in enumerate(m.experts)},
        "best_single": m.experts[best],
        "prompts": int(len(idx)),
        "prompts_dropped_incomplete": m.dropped,
        "arrangements": results,
        "router": router_info,
        "per_category": per_category,
        "bootstrap_rounds": rounds,
    }


def to_markdown(report: dict[str, Any]) -> str:
    lines = [
        f"Prompts scored by every expert: {report['prompts']} ({report['prompts_dropped_incomplete']} dropped: "
        f"an expert had no valid score). Best single expert: {report['best_single']}.",
        "",
        "| arrangement | mean score [95% CI] | headroom captured [95% CI] |",
        "|---|---:|---:|",
    ]
    for name, r in report["arrangements"].items():
        lines.append(f"| {name} | {r['mean']:.3f} [{r['ci95'][0]:.3f}, {r['ci95'][1]:.3f}] | "
                     f"{100 * r['headroom_share']:+.0f}% [{100 * r['headroom_ci95'][0]:+.0f}, {100 * r['headroom_ci95'][1]:+.0f}] |")
    experts = report["experts"]
    lines += ["", "| category | n | " + " | ".join(experts) + " | best |", "|---|---:|" + "---:|" * len(experts) + "---|"]
    for c, row in report["per_category"].items():
        lines.append(f"| {c} | {row['n']} | " + " | ".join(f"{row['means'][e]:.2f}" for e in experts) + f" | {row['best']} |")
    if report["router"]:
        r = report["router"]
        lines += ["", f"Router choices: {r['choices']}; prompts whose chosen expert has no run here: "
                      f"{r['prompts_without_scorable_choice']}."]
    return "\n".join(lines) + "\n"
