"""Quality against spend on data nobody tuned the router to: the numbers behind the README's routing table.

    python bench/routing_curves.py             # about 10 minutes on 2 cores the first time (MiniLM
                                               # embeds 14k MMLU questions once; cached after)
    python bench/routing_curves.py --only alpacaeval

Runs `coe train-router`'s own stage 2 (router_training.score_predictor.fit_stage2: ridge predictor,
CV-tuned ridge strength and switch margin, knob prices calibrated on a calibration split) and its
held-out report (router_training.curve_report) on:

  alpacaeval  the AlpacaEval 2.0 preference matrix (797 prompts, 5 prompt sources), three five-model
              sets: leave-one-source-out (train and calibrate on four sources, report on the fifth)
              and 5 random 60/20/20 splits. Stage-1 categories are the source tags of the training
              sources. No prices: quality only (coe:quality).
  mmlu        Mixtral-8x7B vs GPT-4-1106 per-question correctness on MMLU (14,042 questions, 57
              subjects; RouteLLM's public data), priced from LiteLLM's map ($0.60 vs $10.00 per
              Mtok input): 3 random 60/20/20 splits grouped by question text, and leave-one-domain-out
              (STEM / humanities / social sciences / other).
  alpacaeval-pairwise  the same AlpacaEval splits, trained from pairwise
              preferences instead of scores: per training prompt --pairs-per-prompt random expert
              pairs, winner = the higher judged preference, reduced to scores by
              router_training.preferences (Bradley-Terry); reported on the held-out true scores.

The best single expert and every knob are chosen without the reported rows. Writes JSON, markdown
and a plot per split under results_dir("bench")/routing_curves/ and prints a summary table.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from coe.experts.costs import relative_costs
from coe.paths import cache_subdir, results_dir
from router_training.classifiers import train_classifier
from router_training.curve_report import write_report
from router_training.pipeline import rows_within
from router_training.score_predictor import features, fit_stage2
from router_training.splits import stratified_split

SETS = ("strong", "complementary", "mid5")


def stage1_probabilities(vectors: np.ndarray, labels: np.ndarray, fit_rows: np.ndarray) -> np.ndarray:
    model = train_classifier("logreg", vectors[fit_rows], labels[fit_rows], seed=0)
    return model.predict_proba(vectors)


def run_split(name: str, vectors: np.ndarray, labels: np.ndarray, scores: np.ndarray, costs: np.ndarray,
              experts: list[str], train: np.ndarray, held: np.ndarray, out: Path, seed: int,
              train_scores: np.ndarray | None = None, comparisons: np.ndarray | None = None) -> dict:
    """Fit (75%) and calibrate (25%) inside `train`, report on `held`. `train_scores` (default: `scores`)
    is what the router learns from, `comparisons` (row, a, b, outcome) the preferences they were
    imputed from; the report always uses `scores`."""
    learned = scores if train_scores is None else train_scores
    inner = stratified_split(labels[train].tolist(), seed=seed, fractions=(0.75, 0.125, 0.125))
    fit_rows = train[np.array(inner.train)]
    cal_rows = train[np.array(inner.calibration + inner.heldout)]
    probabilities = stage1_probabilities(vectors, labels, fit_rows)
    x, confidence = features(vectors, probabilities), probabilities.max(axis=1)
    best = int(np.argmax(np.nanmean(learned[train], axis=0)))
    stage2 = fit_stage2(x[fit_rows], learned[fit_rows], x[cal_rows], learned[cal_rows], costs, best, experts, seed,
                        cal_comparisons=rows_within(comparisons, cal_rows), confidence_cal=confidence[cal_rows])
    report = stage2.report(x[held], scores[held], seed=seed, confidence=confidence[held])
    report["split"] = name
    report["predictor"] = {"alpha": stage2.choice.alpha, "margin": stage2.choice.margin,
                           "calibration_gain": stage2.choice.calibration_gain,
                           "calibration_basis": stage2.choice.calibration_basis, "calibration_n": stage2.choice.calibration_n,
                           "min_confidence": stage2.choice.min_confidence}
    write_report(report, out, name, stem=name.replace(" ", "_").replace("/", "-"))
    return report


def alpacaeval_splits(tags: np.ndarray) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """Leave-one-source-out, then 5 random 60/20/20 splits (train = the first two parts)."""
    splits = [(f"loso-{held}", np.flatnonzero(tags != held), np.flatnonzero(tags == held)) for held in sorted(set(tags))]
    for seed in range(5):
        part = stratified_split(tags.tolist(), seed=seed)
        splits.append((f"random-{seed}", np.array(part.train + part.calibration), np.array(part.heldout)))
    return splits


def alpacaeval_columns(setname: str, scores: np.ndarray, train: np.ndarray) -> list[int]:
    from router_training import pref_analysis as pa

    if setname == "mid5":  # five mid-ranked models (ranks 11-15 on the training rows)
        return list(np.argsort(-scores[train].mean(axis=0))[10:15])
    return pa.choose_expert_set(setname, scores[train])


def alpacaeval(out: Path) -> list[dict]:
    from router_training import pref_analysis as pa

    m = pa.load_pref_matrix(pa.DEFAULT_CSV)
    vectors = pa.embed_prompts(m.instructions, cache_subdir("pref-embeddings"))
    tags = np.asarray(m.datasets)
    rows = []
    for setname in SETS:
        for split_name, train, held in alpacaeval_splits(tags):
            cols = alpacaeval_columns(setname, m.scores, train)
            experts = [m.models[c] for c in cols]
            report = run_split(f"alpacaeval {setname} {split_name}", vectors, tags, m.scores[:, cols],
                               np.ones(len(cols)), experts, train, held, out, seed=0)
            rows.append(report)
            print(summary_line(report), flush=True)
    return rows


def sampled_preferences(scores: np.ndarray, rows: np.ndarray, tags: np.ndarray, experts: list[str],
                        pairs_per_prompt: int, seed: int) -> list:
    """Arena-style data derived from the matrix: per prompt, `pairs_per_prompt` distinct expert pairs
    drawn at random; the winner is the answer the judge preferred more (equal: a tie)."""
    from itertools import combinations

    from router_training.preferences import Comparison

    rng = np.random.default_rng(seed)
    all_pairs = list(combinations(range(len(experts)), 2))
    out = []
    for r in rows:
        for p in rng.choice(len(all_pairs), size=min(pairs_per_prompt, len(all_pairs)), replace=False):
            a, b = all_pairs[p] if rng.random() < 0.5 else all_pairs[p][::-1]
            diff = scores[r, a] - scores[r, b]
            out.append(Comparison(str(r), str(tags[r]), experts[a], experts[b], 0.5 if diff == 0 else float(diff > 0)))
    return out


def alpacaeval_pairwise(out: Path, pairs_per_prompt: int) -> list[dict]:
    """The router learns only from pairwise preferences of its training prompts (router_training.
    preferences: the reduction `--scores` applies to a preference file); the report scores it with the
    judged quality of the held-out prompts, as the score-trained rows are."""
    from router_training import pref_analysis as pa
    from router_training.preferences import comparison_table, preference_scores

    m = pa.load_pref_matrix(pa.DEFAULT_CSV)
    vectors = pa.embed_prompts(m.instructions, cache_subdir("pref-embeddings"))
    tags = np.asarray(m.datasets)
    rows = []
    for setname in SETS:
        for split_name, train, held in alpacaeval_splits(tags):
            cols = alpacaeval_columns(setname, m.scores, train)
            experts = [m.models[c] for c in cols]
            judged = m.scores[:, cols]
            comparisons = sampled_preferences(judged, train, tags, experts, pairs_per_prompt, seed=0)
            keys, strengths = preference_scores(comparisons, experts)
            learned = np.full_like(judged, np.nan)
            learned[[int(prompt) for prompt, _ in keys]] = strengths
            table = comparison_table(comparisons, experts, {key: int(key[0]) for key in keys})
            report = run_split(f"alpacaeval-pairs{pairs_per_prompt} {setname} {split_name}", vectors, tags, judged,
                               np.ones(len(cols)), experts, train, held, out, seed=0, train_scores=learned,
                               comparisons=table)
            rows.append(report)
            print(summary_line(report), flush=True)
    return rows


MMLU_DOMAINS = {  # the usual four MMLU groups (Hendrycks et al. 2021)
    "stem": {"abstract_algebra", "anatomy", "astronomy", "college_biology", "college_chemistry", "college_computer_science",
             "college_mathematics", "college_physics", "computer_security", "conceptual_physics", "electrical_engineering",
             "elementary_mathematics", "high_school_biology", "high_school_chemistry", "high_school_computer_science",
             "high_school_mathematics", "high_school_physics", "high_school_statistics", "machine_learning"},
    "humanities": {"formal_logic", "high_school_european_history", "high_school_us_history", "high_school_world_history",
                   "international_law", "jurisprudence", "logical_fallacies", "moral_disputes", "moral_scenarios",
                   "philosophy", "prehistory", "professional_law", "world_religions"},
    "social_sciences": {"econometrics", "high_school_geography", "high_school_government_and_politics",
                        "high_school_macroeconomics", "high_school_microeconomics", "high_school_psychology",
                        "human_sexuality", "professional_psychology", "public_relations", "security_studies",
                        "sociology", "us_foreign_policy"},
}


def mmlu(out: Path) -> list[dict]:
    from router_training.embedders import get_embedder
    from router_training.mmlu_pair import PRICES_PER_MTOK, load_mmlu_pair
    from router_training.pipeline import cached_embeddings

    pair = load_mmlu_pair()
    experts = list(pair.experts)
    relative = relative_costs({e: PRICES_PER_MTOK[e] for e in experts})
    costs = np.array([relative[e] for e in experts])
    vectors = cached_embeddings(get_embedder("minilm"), list(pair.prompts), print)
    subjects = np.asarray(pair.subjects)
    # Split by question text so a question listed twice (105 are) never sits on both sides.
    texts, first = np.unique(np.asarray(pair.prompts), return_index=True)
    text_of = {t: i for i, t in enumerate(texts)}
    group = np.array([text_of[t] for t in pair.prompts])
    rows = []
    for seed in range(3):
        part = stratified_split(subjects[first].tolist(), seed=seed)
        held_groups = set(np.array(part.heldout).tolist())
        held = np.flatnonzero([g in held_groups for g in group])
        train = np.flatnonzero([g not in held_groups for g in group])
        rows.append(run_split(f"mmlu random-{seed}", vectors, subjects, pair.scores, costs, experts, train, held, out, seed))
        print(summary_line(rows[-1]), flush=True)
    domain = np.array([next((d for d, s in MMLU_DOMAINS.items() if subj in s), "other") for subj in subjects])
    for held_domain in ("stem", "humanities", "social_sciences", "other"):
        held_text = set(group[domain == held_domain].tolist())
        held = np.flatnonzero(domain == held_domain)
        train = np.flatnonzero([(d != held_domain) and (g not in held_text) for d, g in zip(domain, group)])
        rows.append(run_split(f"mmlu lodo-{held_domain}", vectors, subjects, pair.scores, costs, experts, train, held, out, 0))
        print(summary_line(rows[-1]), flush=True)
    return rows


def fmt_interval(value: float, interval: list[float] | None) -> str:
    if interval is None or not np.isfinite(value):
        return "n/a"
    return f"{value:+.1%} [{interval[0]:+.1%}, {interval[1]:+.1%}]"


def summary_line(report: dict) -> str:
    reach = report["spend_for_95pct_of_best"]
    fmt = lambda v: "never" if v is None else f"{v:.0%}"  # noqa: E731
    gain = report["gain_over_best"]
    return (f"{report['split']:<40} n={report['heldout_n']:<5} best={report['best_single']['quality']:.4f} "
            f"router={report['router_quality']['quality']:.4f} oracle={report['oracle']['quality']:.4f} "
            f"gain={gain['mean']:+.4f} [{gain['interval'][0]:+.4f}, {gain['interval'][1]:+.4f}] "
            f"headroom={fmt_interval(report['headroom_share'], report['headroom_share_interval'])} "
            f"switched={report['router_quality']['switched']:.0%} spend95: router {fmt(reach['router'])} random {fmt(reach['random'])}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=("alpacaeval", "mmlu", "alpacaeval-pairwise"))
    parser.add_argument("--pairs-per-prompt", type=int, nargs="+", default=[1, 10],
                        help="alpacaeval-pairwise: comparisons per training prompt (10 = every pair of 5 experts)")
    args = parser.parse_args()
    out = results_dir("bench") / "routing_curves"
    reports = []
    if args.only in (None, "alpacaeval"):
        reports += alpacaeval(out)
    if args.only in (None, "mmlu"):
        reports += mmlu(out)
    if args.only in (None, "alpacaeval-pairwise"):
        for pairs in args.pairs_per_prompt:
            reports += alpacaeval_pairwise(out, pairs)
    summary = out / ("summary.json" if args.only is None else f"summary-{args.only}.json")
    summary.write_text(json.dumps([{k: v for k, v in r.items() if k != "curve"} for r in reports], indent=2) + "\n")
    print(f"wrote {summary}")


if __name__ == "__main__":
    main()
