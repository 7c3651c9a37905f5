"""The leaderboard: every finished run under a results root, as a markdown table and a static HTML page
with matplotlib plots (per-category bars for each arrangement, score against mean active parameters,
score against latency), written next to the results.

Scores are never compared across judges silently: the judge is a column, and each plot's legend names
it, because a 135M local judge and GPT-4 give numbers that mean different things.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

BENCHMARKS = ("mt-bench", "arena-hard")


def collect_runs(root: Path) -> list[dict[str, Any]]:
    """results.json of every run under ``root/<benchmark>/<run>/``, ordered by benchmark then score."""
    runs = []
    for path in sorted(Path(root).glob("*/*/results.json")):
        report = json.loads(path.read_text())
        report["folder"] = str(path.parent)
        runs.append(report)
    return sorted(runs, key=lambda r: (r["benchmark"], -(r["score"] if r.get("score") is not None else -1e9)))


def label(run: dict[str, Any]) -> str:
    arrangement = run["manifest"]["arrangement"]
    name = arrangement["evaluated"]
    if arrangement.get("router_version"):
        name += f" ({arrangement['router_version']})"
    return name


def _fmt_score(run: dict[str, Any]) -> str:
    score = run.get("score")
    if score is None:
        return "n/a"
    if run["benchmark"] == "arena-hard":
        lo, hi = run.get("ci95") or (None, None)
        ci = f" [{100 * lo:.1f}, {100 * hi:.1f}]" if lo is not None else ""
        return f"{100 * score:.1f}%{ci}"
    return f"{score:.2f}"


def _fmt_params(value: float | None) -> str:
    return "n/a" if value is None else f"{value / 1e6:.1f} M"


def row(run: dict[str, Any]) -> dict[str, str]:
    m = run["manifest"]
    judgments = run["judgments"]
    latency = run["latency_s"]["p50"]
    tokens = run["completion_tokens"]["mean"]
    experts = ", ".join(e["id"] for e in m["arrangement"]["experts"])
    return {
        "benchmark": run["benchmark"],
        "arrangement": label(run),
        "experts": experts,
        "judge": m["judge"]["model"],
        "score": _fmt_score(run),
        "valid judgments": f"{judgments['valid']}/{judgments['total']}",
        "questions": str(run["questions"]),
        "mean active params": _fmt_params(run["routing"]["mean_active_params"]),
        "latency p50": "n/a" if latency is None else f"{latency:.2f} s",
        "tokens/answer": "n/a" if tokens is None else f"{tokens:.0f}",
        "commit": (m["git"].get("commit") or "")[:8],
        "run": run["run"],
    }


def markdown_table(runs: list[dict[str, Any]]) -> str:
    if not runs:
        return "No finished runs yet: run `coe eval mt-bench` or `coe eval arena-hard` first.\n"
    rows = [row(r) for r in runs]
    headers = list(rows[0])
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(r[h] for h in headers) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def run_summary_markdown(folder: Path) -> str:
    """What `coe eval` prints at the end of a run: its leaderboard row and per-category scores."""
    run = json.loads((Path(folder) / "results.json").read_text())
    lines = [markdown_table([run]), "| category | score | valid judgments |", "|---|---:|---:|"]
    for category, c in run["per_category"].items():
        score = c["score"]
        shown = "n/a" if score is None else (f"{100 * score:.1f}%" if run["benchmark"] == "arena-hard" else f"{score:.2f}")
        lines.append(f"| {category} | {shown} | {c['valid']}/{c['judgments']} |")
    reasons = run["judgments"]["invalid_reasons"]
    if reasons:
        lines.append("")
        lines.append("Invalid judgments (counted, not scored): " + ", ".join(f"{k} {v}" for k, v in reasons.items()))
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------------
# Plots and HTML


def _plots(runs: list[dict[str, Any]], benchmark: str, out: Path) -> list[tuple[str, str]]:
    """PNG files for one benchmark; returns (file name, caption) pairs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    scale = 100.0 if benchmark == "arena-hard" else 1.0
    unit = "win rate vs baseline (%)" if benchmark == "arena-hard" else "MT-Bench score (1-10)"
    names = [f"{label(r)} / judge {r['manifest']['judge']['model']}" for r in runs]
    figures: list[tuple[str, str]] = []

    categories = sorted({c for r in runs for c in r["per_category"]})
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(categories) + 2), 4))
    width = 0.8 / max(1, len(runs))
    for i, (run, name) in enumerate(zip(runs, names)):
        values = [(run["per_category"].get(c, {}).get("score") or 0.0) * scale for c in categories]
        ax.bar(np.arange(len(categories)) + i * width, values, width, label=name)
    ax.set_xticks(np.arange(len(categories)) + width * (len(runs) - 1) / 2, categories, rotation=30, ha="right")
    ax.set_ylabel(unit)
    ax.set_title(f"{benchmark}: per-category score (categories without a valid judgment show 0)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    figures.append((f"{benchmark}-categories.png", "per-category scores"))
    fig.savefig(out / figures[-1][0], dpi=100)
    plt.close(fig)

    for key, xlabel, fname, caption in (
        ("params", "mean active parameters (millions)", f"{benchmark}-params.png", "score against mean active parameters"),
        ("latency", "answer latency p50 (s)", f"{benchmark}-latency.png", "score against latency"),
    ):
        fig, ax = plt.subplots(figsize=(6, 4))
        plotted = 0
        for run, name in zip(runs, names):
            x = run["routing"]["mean_active_params"] / 1e6 if key == "params" and run["routing"]["mean_active_params"] else \
                run["latency_s"]["p50"] if key == "latency" else None
            if x is None or run.get("score") is None:
                continue
            ax.scatter([x], [run["score"] * scale], label=name)
            plotted += 1
        ax.set_xlabel(xlabel)
        ax.set_ylabel(unit)
        ax.set_title(f"{benchmark}: {caption}" + ("" if plotted else " (no run has the data)"))
        if plotted:
            ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(out / fname, dpi=100)
        plt.close(fig)
        figures.append((fname, caption))
    return figures


# Marks the page as rendered only when every plot decoded (naturalWidth > 0); the Chromium test reads it.
_CHECK_IMAGES = """<script>
window.addEventListener("load", () => {
  const imgs = Array.from(document.images);
  document.body.dataset.images = imgs.length;
  document.body.dataset.imagesLoaded = imgs.filter(i => i.complete && i.naturalWidth > 0).length;
});
</script>"""


def write(root: Path) -> tuple[str, Path]:
    """Write leaderboard.md, leaderboard.html and the plots into ``root``; return (markdown, html path)."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    runs = collect_runs(root)
    md = markdown_table(runs)
    (root / "leaderboard.md").write_text("# CoE leaderboard\n\n" + md)
    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>CoE leaderboard</title>",
             "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
             "td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}img{max-width:100%}</style>",
             "</head><body><h1>CoE leaderboard</h1>"]
    for benchmark in BENCHMARKS:
        selected = [r for r in runs if r["benchmark"] == benchmark]
        if not selected:
            continue
        rows = [row(r) for r in selected]
        headers = list(rows[0])
        parts.append(f"<h2>{html.escape(benchmark)}</h2><table><thead><tr>"
                     + "".join(f"<th>{html.escape(h)}</th>" for h in headers) + "</tr></thead><tbody>")
        parts += ["<tr>" + "".join(f"<td>{html.escape(r[h])}</td>" for h in headers) + "</tr>" for r in rows]
        parts.append("</tbody></table>")
        for fname, caption in _plots(selected, benchmark, root):
            parts.append(f"<figure><img src='{html.escape(fname)}' alt='{html.escape(caption)}'>"
                         f"<figcaption>{html.escape(benchmark)}: {html.escape(caption)}</figcaption></figure>")
    if not runs:
        parts.append("<p>No finished runs yet.</p>")
    parts.append(_CHECK_IMAGES + "</body></html>")
    page = root / "leaderboard.html"
    page.write_text("\n".join(parts))
    return md, page
