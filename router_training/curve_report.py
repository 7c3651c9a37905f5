"""Quality against spend on held-out prompts: does the router pay, and at what price?

For one held-out set (true scores of every expert on every prompt, the router's predictions, each
expert's relative cost) it reports, with paired bootstrap intervals over the prompts:
  - the router's curve (one point per cost price, the knobs marked),
  - random routing at the same spend: a random mix of the two single experts that bracket that spend
    on the single experts' upper frontier (the strongest cost-matched baseline that needs no router),
  - every single expert, the best single expert (chosen on training data, not on these prompts) and
    the per-prompt oracle,
  - the share of the oracle's headroom over the best single expert the router captures at coe:quality,
  - the lowest spend at which the router (and random routing) reach 95% of the best single expert's
    quality.
Written as JSON, markdown and a PNG plot; `coe train-router` writes one per router, the bench
scripts one per split.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from coe.routing.predictor import choose

BOOTSTRAP = 1000


def frontier(costs: np.ndarray, qualities: np.ndarray) -> list[int]:
    """Single experts on the upper concave frontier of (cost, quality), cheapest first."""
    order = sorted(range(len(costs)), key=lambda j: (costs[j], -qualities[j]))
    hull: list[int] = []
    for j in order:
        if hull and qualities[j] <= qualities[hull[-1]]:
            continue
        while len(hull) >= 2:
            a, b = hull[-2], hull[-1]
            # drop b when it lies on or under the segment a -> j
            if (qualities[b] - qualities[a]) * (costs[j] - costs[a]) <= (qualities[j] - qualities[a]) * (costs[b] - costs[a]):
                hull.pop()
            else:
                break
        hull.append(j)
    return hull


def random_at_spend(spend: float, costs: np.ndarray, per_prompt: np.ndarray) -> np.ndarray:
    """Per-prompt expected score of routing each prompt at random between the two frontier experts
    that bracket `spend` (mixing weights chosen so the expected spend is `spend`)."""
    means = per_prompt.mean(axis=0)
    hull = frontier(costs, means)
    if spend <= costs[hull[0]]:
        return per_prompt[:, hull[0]]
    for a, b in zip(hull, hull[1:]):
        if spend <= costs[b]:
            w = (spend - costs[a]) / (costs[b] - costs[a])
            return (1 - w) * per_prompt[:, a] + w * per_prompt[:, b]
    return per_prompt[:, hull[-1]]


def _interval(values: np.ndarray) -> list[float]:
    return [float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))]


def spend_to_reach(points: Sequence[dict[str, Any]], target: float) -> float | None:
    reached = [p["spend"] for p in points if p["quality"] >= target]
    return min(reached) if reached else None


def heldout_curve(scores: np.ndarray, predicted: np.ndarray, costs: np.ndarray, experts: Sequence[str], best: int,
                  margin: float | np.ndarray, lams: Sequence[float], knob_lams: dict[str, float], seed: int = 0) -> dict[str, Any]:
    """The report as a JSON-able dict; rows not scored for every expert are left out (counted).
    `margin`: one, or one per row (coe.routing.predictor.gated_margin)."""
    full = np.isfinite(scores).all(axis=1)
    s, p = scores[full], predicted[full]
    margin = margin[full] if np.ndim(margin) else margin
    n = len(s)
    if n == 0:
        return {"heldout_n": 0, "left_out": int((~full).sum()), "note": "no held-out prompt is scored for every expert"}
    rng = np.random.default_rng(seed)
    boots = rng.integers(n, size=(BOOTSTRAP, n))
    rows = np.arange(n)
    oracle = s.max(axis=1)
    best_col = s[:, best]

    def summary(per_prompt: np.ndarray) -> dict[str, Any]:
        return {"quality": float(per_prompt.mean()), "interval": _interval(per_prompt[boots].mean(axis=1))}

    points = []
    for lam in sorted(set([*lams, *knob_lams.values()])):
        picks = choose(p, costs, lam, margin, best)
        picked = s[rows, picks]
        spend = float(costs[picks].mean())
        random = random_at_spend(spend, costs, s)
        gain = picked - random
        points.append({"lam": float(lam), "spend": spend, **summary(picked),
                       "random_quality": float(random.mean()),
                       "gain_over_random": float(gain.mean()), "gain_interval": _interval(gain[boots].mean(axis=1)),
                       "switched": float((picks != best).mean()),
                       "knobs": sorted(k for k, v in knob_lams.items() if v == lam)})
    quality_picks = choose(p, costs, knob_lams.get("quality", 0.0), margin, best)
    routed = s[rows, quality_picks]
    headroom = oracle - best_col
    boot_share = [(routed[b] - best_col[b]).mean() / h if (h := headroom[b].mean()) > 0 else np.nan for b in boots]
    share = float((routed - best_col).mean() / headroom.mean()) if headroom.mean() > 0 else float("nan")
    target = 0.95 * float(best_col.mean())
    random_points = [{"spend": float(c), "quality": float(random_at_spend(float(c), costs, s).mean())}
                     for c in np.linspace(float(costs.min()), float(costs.max()), 101)]
    return {
        "heldout_n": n,
        "left_out": int((~full).sum()),
        "experts": list(experts),
        "relative_costs": {e: float(c) for e, c in zip(experts, costs)},
        "best_single": {"expert": experts[best], "spend": float(costs[best]), **summary(best_col)},
        "singles": {e: {"spend": float(costs[j]), **summary(s[:, j])} for j, e in enumerate(experts)},
        "oracle": summary(oracle),
        "router_quality": {"spend": float(costs[quality_picks].mean()), **summary(routed),
                           "switched": float((quality_picks != best).mean())},
        "headroom_share": share,
        "headroom_share_interval": _interval(np.array([b for b in boot_share if np.isfinite(b)])) if np.isfinite(boot_share).any() else None,
        "gain_over_best": {"mean": float((routed - best_col).mean()), "interval": _interval((routed - best_col)[boots].mean(axis=1))},
        "spend_for_95pct_of_best": {"router": spend_to_reach(points, target), "random": spend_to_reach(random_points, target),
                                    "target_quality": target},
        "curve": points,
    }


def markdown(report: dict[str, Any], title: str) -> str:
    if not report.get("heldout_n"):
        return f"## {title}\n\n{report.get('note', 'no held-out data')}\n"
    best, rq, orc = report["best_single"], report["router_quality"], report["oracle"]
    interval = report["headroom_share_interval"]
    share = f"{report['headroom_share']:+.1%}" + (f" [{interval[0]:+.1%}, {interval[1]:+.1%}]" if interval else "")
    reach = report["spend_for_95pct_of_best"]
    fmt = lambda v: "never" if v is None else f"{v:.1%}"  # noqa: E731
    lines = [
        f"## {title}", "",
        f"{report['heldout_n']} held-out prompts ({report['left_out']} left out: not scored for every expert); "
        "95% bootstrap intervals over prompts.", "",
        "| | spend | quality | 95% interval |", "|---|---:|---:|---|",
    ]
    for name, row in report["singles"].items():
        mark = " (best single, chosen on training data)" if name == best["expert"] else ""
        lines.append(f"| {name}{mark} | {row['spend']:.1%} | {row['quality']:.4f} | [{row['interval'][0]:.4f}, {row['interval'][1]:.4f}] |")
    lines.append(f"| oracle (per prompt) | | {orc['quality']:.4f} | [{orc['interval'][0]:.4f}, {orc['interval'][1]:.4f}] |")
    lines.append(f"| **router, coe:quality** | {rq['spend']:.1%} | {rq['quality']:.4f} | [{rq['interval'][0]:.4f}, {rq['interval'][1]:.4f}] |")
    lines += ["", f"- share of the oracle's headroom captured at coe:quality: **{share}** "
              f"(switched away from {best['expert']} on {rq['switched']:.0%} of prompts)",
              f"- spend to reach 95% of the best single expert's quality: router {fmt(reach['router'])}, "
              f"random routing {fmt(reach['random'])}", "",
              "| knob | lam | spend | quality | random at that spend | router - random (95% interval) |",
              "|---|---:|---:|---:|---:|---|"]
    for point in report["curve"]:
        if point["knobs"]:
            g = point["gain_interval"]
            lines.append(f"| {', '.join(point['knobs'])} | {point['lam']:.3g} | {point['spend']:.1%} | {point['quality']:.4f} | "
                         f"{point['random_quality']:.4f} | {point['gain_over_random']:+.4f} [{g[0]:+.4f}, {g[1]:+.4f}] |")
    return "\n".join(lines) + "\n"


def plot(report: dict[str, Any], title: str, path: Path) -> Path | None:
    """Quality against spend; None when matplotlib is not installed (the JSON and markdown still are)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    if not report.get("heldout_n"):
        return None
    fig, ax = plt.subplots(figsize=(6, 4))
    curve = sorted(report["curve"], key=lambda p: p["spend"])
    ax.plot([p["spend"] for p in curve], [p["quality"] for p in curve], "o-", ms=3, label="router")
    ax.plot([p["spend"] for p in curve], [p["random_quality"] for p in curve], "--", label="random at same spend")
    for name, row in report["singles"].items():
        ax.plot(row["spend"], row["quality"], "s", ms=6)
        ax.annotate(name, (row["spend"], row["quality"]), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.axhline(report["oracle"]["quality"], color="grey", lw=0.8, ls=":", label="oracle")
    ax.axhline(report["spend_for_95pct_of_best"]["target_quality"], color="red", lw=0.8, ls=":", label="95% of best single")
    ax.set_xlabel("spend (share of all-to-the-most-expensive)")
    ax.set_ylabel("mean score on held-out prompts")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_report(report: dict[str, Any], folder: Path, title: str, stem: str = "curve") -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = [folder / f"{stem}.json", folder / f"{stem}.md"]
    written[0].write_text(json.dumps(report, indent=2) + "\n")
    written[1].write_text(markdown(report, title))
    image = plot(report, title, folder / f"{stem}.png")
    return written + ([image] if image else [])
