"""`coe train-router` end to end: data -> splits -> stage-1 classifier -> threshold -> K-shot map -> artifact.

Each stage is its own module; this one only orders them, reports progress, and writes one versioned
artifact folder that the server loads (`coe.routing.artifact`).
"""

from __future__ import annotations

import math
import os
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from coe.routing.artifact import RouterArtifact
from router_training.data import DataFileError, LabelledPrompt
from router_training.kshot_evidence import KShotScores, kshot_sample
from router_training.splits import group_by_label

if TYPE_CHECKING:
    from router_training.score_predictor import PredictorChoice

Progress = Callable[[str], None]


class StepReporter:
    """Progress for long loops; the CLI swaps in a rich progress bar, library callers get plain lines."""

    def __init__(self, say: Progress = print) -> None:
        self.say = say

    def step(self, label: str, done: int, total: int) -> None:
        if done == total or done % max(1, total // 10) == 0:
            self.say(f"{label}: {done}/{total}")
AnswerFn = Callable[[str, str], "str | None"]  # (expert_id, prompt) -> answer, None: cannot be answered
ScoreFn = Callable[[LabelledPrompt, str], "float | None"]  # (prompt, answer) -> score or invalid

# Mode -> allowed relative loss of mean score against the category's best expert.
MODE_LOSS: dict[str, float | None] = {"quality": None, "balanced": 0.05, "cheap": 0.15}


@dataclass
class TrainingPlan:
    dataset: list[LabelledPrompt]
    experts: list[str]
    general_expert: str | None  # None: the best single expert on the K-shot evidence
    out: Path
    embedder: str = "static-tuned"
    classifier: str = "logreg"
    k: int | None = 5
    seed: int = 0
    active_params: dict[str, float] = field(default_factory=dict)
    target_accuracy: float = 0.9
    name: str | None = None  # a fixed folder name (the default router); else router-<timestamp>
    inputs_sha256: str = ""
    costs: dict[str, float | None] = field(default_factory=dict)  # expert -> $ per Mtok (coe.experts.costs)
    # True when `dataset` is the default labelled set: scores with categories of their own then train stage 1.
    stage1_from_scores: bool = False


def version_stamp() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")


def score_by_answering(
    plan: TrainingPlan, pool: Sequence[int], answer: AnswerFn, score: ScoreFn, reporter: StepReporter
) -> KShotScores:
    """Every expert answers K prompts per category; an invalid judgment stays NaN and is counted."""
    chosen = kshot_sample(plan.dataset, pool, plan.k, plan.seed)
    matrix = np.full((len(chosen), len(plan.experts)), np.nan)
    invalid, unanswered, done, total = 0, 0, 0, len(chosen) * len(plan.experts)
    for row, index in enumerate(chosen):
        item = plan.dataset[index]
        for col, expert in enumerate(plan.experts):
            response = answer(expert, item.text)
            done += 1
            if response is None:  # the expert could not take this prompt: no answer, so no score
                unanswered += 1
            else:
                value = score(item, response)
                invalid += value is None
                if value is not None:
                    matrix[row, col] = value
            reporter.step("k-shot answers scored", done, total)
    return KShotScores([plan.dataset[i].text for i in chosen], [plan.dataset[i].category for i in chosen], matrix,
                       invalid, unanswered)


SERVABLE_CLASSIFIERS = ("logreg",)


def train_router(
    plan: TrainingPlan, kshot: Callable[[Sequence[int]], KShotScores], progress: Progress = print
) -> Path:
    """`kshot` gets dataset indices and returns the scored evidence. The evidence is split 60/20/20 by
    category: the predictor learns from the first part, the knobs are calibrated on the second, and
    the third is only reported on (quality against spend, router/curve.*). Stage 1 never trains on a
    prompt of the last two parts."""
    from coe.experts.costs import relative_costs
    from coe.routing.artifact import LinearClassifier
    from coe.routing.embedders import SERVED_EMBEDDERS
    from router_training.classifiers import train_classifier
    from router_training.curve_report import write_report
    from router_training.embedders import get_embedder, get_embedder_class
    from router_training.kshot import select_experts
    from router_training.score_predictor import features, fit_stage2
    from router_training.splits import stratified_split
    from router_training.threshold import tune_threshold

    embedder_class = get_embedder_class(plan.embedder)
    if embedder_class.name not in SERVED_EMBEDDERS or plan.classifier not in SERVABLE_CLASSIFIERS:
        raise DataFileError(
            f"a router artifact holds embedder {' or '.join(SERVED_EMBEDDERS)} (static-tuned is served as static) "
            f"with classifier "
            f"{'/'.join(SERVABLE_CLASSIFIERS)} (plain arrays the server loads without code); "
            f"{plan.embedder} + {plan.classifier} is compared in `python -m router_training.compare`"
        )
    started = time.monotonic()
    evidence = kshot(range(len(plan.dataset)))
    parts = stratified_split(evidence.categories, seed=plan.seed)
    fit_rows, cal_rows, held_rows = (np.array(rows, dtype=int) for rows in (parts.train, parts.calibration, parts.heldout))
    reserved = {evidence.prompts[i] for i in [*parts.calibration, *parts.heldout]}
    progress(f"scores: {len(evidence.prompts)} prompts x {len(plan.experts)} experts; predictor {len(fit_rows)}, "
             f"calibration {len(cal_rows)}, held-out report {len(held_rows)}")

    stage1 = stage1_data(plan, evidence, parts, reserved, progress)
    items, stage1_train = stage1.items, stage1.train
    labels = [p.category for p in items]

    if embedder_class.needs_training_data:  # a tuned table learns from stage 1's train prompts only
        tuning = tuning_sample(items, stage1_train, plan.seed)
        progress(f"embedder {plan.embedder}: training on {len(tuning)} prompts (cached after the first time)")
        embedder = get_embedder(plan.embedder, train_items=[items[i] for i in tuning], seed=plan.seed)
    else:
        embedder = get_embedder(plan.embedder)
    vectors = cached_embeddings(embedder, [p.text for p in items], progress)
    y = np.array(labels)
    split = stage1.split
    model = train_classifier(plan.classifier, vectors[stage1_train], y[stage1_train], seed=plan.seed)
    cal_probs = model.predict_proba(vectors[split.calibration])
    threshold = tune_threshold(cal_probs, list(model.classes_), y[split.calibration], target_accuracy=plan.target_accuracy)
    metrics = heldout_metrics(model, vectors[split.heldout], y[split.heldout], threshold.threshold)
    progress(f"stage 1 ({plan.classifier}): held-out accuracy {metrics['accuracy']:.3f}, macro-F1 {metrics['macro_f1']:.3f}; "
             f"confidence threshold for {plan.target_accuracy:.0%} routed accuracy {threshold.threshold:.3f}")
    if not threshold.feasible:
        progress(f"WARNING: no confidence threshold reaches {plan.target_accuracy:.0%} routed accuracy on the calibration "
                 f"split, so the category maps (and coe:<threshold> knobs) would send every prompt to the general expert. "
                 f"The per-prompt predictor still routes; for better categories use more or cleaner labelled prompts "
                 f"or fewer overlapping categories.")

    # Stage 2, per prompt: embedding + stage-1 probabilities -> each expert's score.
    ev_vectors = cached_embeddings(embedder, evidence.prompts, progress)
    ev_probs = model.predict_proba(ev_vectors)
    x = features(ev_vectors, ev_probs)
    confidence = ev_probs.max(axis=1)
    scores = evidence.matrix
    known = np.concatenate([fit_rows, cal_rows])
    general_ranking = rank_overall(scores[known], plan.experts, plan.general_expert)
    general = general_ranking[0]
    best = plan.experts.index(general)
    relative = relative_costs({e: plan.costs.get(e) for e in plan.experts})
    costs = np.array([relative[e] for e in plan.experts])
    if len(set(costs.tolist())) == 1:
        progress("no price for every expert (set cost_per_mtok in coe.yaml): every expert counts as the same cost, "
                 "so coe:balanced, coe:cheap and coe:budget-B route as coe:quality")
    stage2 = fit_stage2(x[fit_rows], scores[fit_rows], x[cal_rows], scores[cal_rows], costs, best, plan.experts, plan.seed,
                        cal_comparisons=rows_within(evidence.comparisons, cal_rows), confidence_cal=confidence[cal_rows])
    choice = stage2.choice
    never = choice.margin >= 100 * (float(np.nanstd(scores[fit_rows])) or 1.0)
    progress(predictor_summary(choice, general, never))
    report = stage2.report(x[held_rows], scores[held_rows], seed=plan.seed, confidence=confidence[held_rows])
    if report.get("heldout_n"):
        share = report["headroom_share"]
        progress(f"held-out ({report['heldout_n']} prompts): router {report['router_quality']['quality']:.4f} vs best single "
                 f"{report['best_single']['quality']:.4f}, oracle {report['oracle']['quality']:.4f}; "
                 + (f"headroom captured {share:+.1%}" if np.isfinite(share) else "no headroom (the oracle ties the best single expert)"))

    rankings, selection = {}, {}
    for mode, loss in MODE_LOSS.items():
        emap = select_experts(
            scores[known], [evidence.categories[i] for i in known], plan.experts, k=None, seed=plan.seed,
            active_params=plan.active_params or None, max_loss=loss if plan.active_params else None, relative_loss=True,
        )
        guarded = guard_ties(emap, general) if mode == "quality" else []
        rankings[mode] = {str(c): category_ranking(emap, str(c), general_ranking) for c in model.classes_}
        selection[mode] = {**emap.to_dict(), "kept_general_on_tie": guarded}
    stamp = version_stamp()
    artifact = RouterArtifact(
        version=plan.name or stamp,
        embedder=embedder.fingerprint(),
        classifier=plan.classifier,
        categories=[str(c) for c in model.classes_],
        threshold=float(threshold.threshold),
        general_ranking=general_ranking,
        rankings=rankings,
        selection={"k": plan.k, "prompts_scored": len(evidence.prompts), "invalid_scores": evidence.invalid,
                   "unanswered": evidence.unanswered, "experts": plan.experts, "maps": selection,
                   "general_means": overall_means(scores[known], plan.experts)},
        metrics={**metrics, "threshold": asdict(threshold)},
        # A named router (the default one) is rebuilt deterministically: no clock in it.
        created="" if plan.name else datetime.now(timezone.utc).isoformat(timespec="seconds"),
        inputs_sha256=plan.inputs_sha256,
        predictor={"kind": "ridge", "alpha": choice.alpha, "margin": choice.margin, "experts": list(plan.experts),
                   "cv_quality": choice.cv_quality, "cv_best_single": choice.cv_best_single, "folds": choice.folds,
                   "calibration_gain": choice.calibration_gain, "calibration_basis": choice.calibration_basis,
                   "calibration_n": choice.calibration_n, "min_confidence": choice.min_confidence,
                   "quality_switches": not never},
        relative_costs=relative,
        operating_points=stage2.points,
        knob_lams=stage2.knobs,
        report={k: v for k, v in report.items() if k != "curve"},
    )
    folder = plan.out / (plan.name or f"router-{stamp}")
    artifact.save(folder, LinearClassifier.from_sklearn(model), getattr(embedder, "folder", None), stage2.predictor)
    written = write_report(report, folder / "report", f"router {artifact.version}: held-out quality against spend")
    progress(f"router written to {folder} in {time.monotonic() - started:.0f} s; report: {written[1]}")
    return folder


# A tuned static table trains in about 50 s per 600 prompts on 2 cores; past this many, a seeded
# per-category sample of stage 1's train prompts tunes it (the classifier still sees them all).
MAX_TUNING_PROMPTS = 2000


@dataclass(frozen=True)
class Stage1Data:
    """What stage 1 learns from: labelled prompts and their train/calibration/held-out split."""

    items: list[LabelledPrompt]
    train: list[int]
    split: Any  # router_training.splits.Split: calibration and heldout are used as they are
    origin: str  # "labelled set" or "scores"


def stage1_data(plan: TrainingPlan, evidence: KShotScores, parts: Any, reserved: set[str], progress: Progress) -> Stage1Data:
    """Stage 1 learns the categories the scores use. With the default labelled set (no --data), scores
    whose categories that set does not have (a user's own: MMLU subjects, prompt sources...) train
    stage 1 themselves, on the predictor's rows only, calibrated and reported on the scores' own
    calibration and held-out rows; otherwise the labelled set does, without the prompts stage 2
    calibrates or reports on."""
    from router_training.splits import Split, stratified_split

    known = {p.category for p in plan.dataset}
    foreign = sorted(set(evidence.categories) - known)
    if foreign and plan.stage1_from_scores:
        items = [LabelledPrompt(text, category, "scores") for text, category in zip(evidence.prompts, evidence.categories)]
        split = Split(sorted(parts.train), sorted(parts.calibration), sorted(parts.heldout))
        shown = ", ".join(foreign[:4]) + (f" and {len(foreign) - 4} more" if len(foreign) > 4 else "")
        progress(f"stage 1 learns the scores' {len(set(evidence.categories))} categories ({shown} are not in the labelled "
                 f"set): {len(split.train)}/{len(split.calibration)}/{len(split.heldout)} of the scored prompts")
        return Stage1Data(items, list(split.train), split, "scores")
    if foreign:
        progress(f"WARNING: the scores' categories {', '.join(foreign[:4])}{' ...' if len(foreign) > 4 else ''} are not "
                 f"in --data, so stage 1 cannot predict them and their K-shot maps are never used; label --data with "
                 f"the same categories, or leave --data out to let stage 1 learn them from the scores")
    split = stratified_split([p.category for p in plan.dataset], seed=plan.seed)
    train = [i for i in split.train if plan.dataset[i].text not in reserved]
    progress(f"data: {len(plan.dataset)} prompts, split {len(train)}/{len(split.calibration)}/{len(split.heldout)}"
             + (f" ({len(split.train) - len(train)} scored prompts kept out of stage-1 training)"
                if len(train) < len(split.train) else ""))
    return Stage1Data(list(plan.dataset), train, split, "labelled set")


def tuning_sample(items: Sequence[LabelledPrompt], train: Sequence[int], seed: int) -> list[int]:
    """Stage 1's train rows, or at most MAX_TUNING_PROMPTS of them drawn per category in proportion."""
    if len(train) <= MAX_TUNING_PROMPTS:
        return list(train)
    rng = random.Random(seed)
    by_category = group_by_label([items[i].category for i in train])
    share = MAX_TUNING_PROMPTS / len(train)
    chosen: list[int] = []
    for category in sorted(by_category):
        rows = [train[j] for j in by_category[category]]
        chosen += rng.sample(rows, max(1, round(len(rows) * share)))
    return sorted(chosen)


def predictor_summary(choice: PredictorChoice, general: str, never: bool) -> str:
    """One progress line: the predictor's knobs, its out-of-fold score, and what the calibration
    check saw (in score units, or pick-vs-best-single win margin for preferences)."""
    line = (f"predictor: ridge alpha {choice.alpha:g}, switch margin {choice.margin:.3g}"
            f"; out-of-fold mean score {choice.cv_quality:.4f} vs best single {general} {choice.cv_best_single:.4f}")
    if choice.calibration_basis == "comparisons":
        line += (f"; on the calibration prompts its switches won {choice.calibration_gain:+.3f} (wins - losses, per "
                 f"comparison) of {choice.calibration_n} comparisons with {general}"
                 if choice.calibration_n else f"; no calibration comparison of a switch against {general}")
    elif np.isfinite(choice.calibration_gain):
        line += f"; on the calibration rows its switches gained {choice.calibration_gain:+.4f}"
    if choice.min_confidence > 0:
        line += f"; quality switches only at stage-1 confidence >= {choice.min_confidence:.3f}"
    if never:
        line += ("; switching on predicted quality is off (it did not pay, or could not be checked): the router stays "
                 "on the best single expert unless a price moves it")
    return line


def rows_within(comparisons: np.ndarray | None, rows: np.ndarray) -> np.ndarray | None:
    """The comparisons on `rows`, renumbered to positions in `rows`."""
    if comparisons is None:
        return None
    position = {int(r): i for i, r in enumerate(rows)}
    kept = [(position[int(c[0])], *c[1:]) for c in comparisons if int(c[0]) in position]
    return np.array(kept, dtype=float).reshape(-1, 4)


def cached_embeddings(embedder: Any, texts: list[str], progress: Progress) -> np.ndarray:
    """Embeddings cached by the embedder's fingerprint and the texts' content hash, so retraining with
    another K, knob or scores file skips the encoding (the slow part: about 30 s per 1,000 prompts)."""
    import hashlib
    import json

    from coe.paths import cache_subdir

    key = hashlib.sha256(json.dumps([embedder.fingerprint(), texts]).encode()).hexdigest()[:24]
    path = cache_subdir("embeddings") / f"{embedder.name}-{key}.npy"
    if path.is_file():
        progress(f"embeddings of {len(texts)} prompts from the cache ({path.name})")
        return np.load(path, allow_pickle=False)
    vectors = embedder.encode(texts)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.npy")
    np.save(tmp, vectors)
    os.replace(tmp, path)
    progress(f"embedded {len(texts)} prompts with {embedder.name} ({vectors.shape[1]} dims)")
    return vectors


def overall_means(matrix: np.ndarray, experts: Sequence[str]) -> dict[str, float | None]:
    columns = np.asarray(matrix, dtype=float).T
    return {e: (float(np.nanmean(col)) if np.isfinite(col).any() else None) for e, col in zip(experts, columns)}


def rank_overall(matrix: np.ndarray, experts: Sequence[str], forced: str | None) -> list[str]:
    """Experts by mean score over every scored prompt, best first (unscored last, config order on ties);
    `forced` (--general-expert) goes first."""
    means = overall_means(matrix, experts)
    order = sorted(range(len(experts)), key=lambda j: (means[experts[j]] is None, -(means[experts[j]] or 0.0), j))
    ranking = [experts[j] for j in order]
    if forced:
        ranking.remove(forced)
        ranking.insert(0, forced)
    return ranking


def category_ranking(emap: Any, category: str, general_ranking: list[str]) -> list[str]:
    """The map's choice first, then the other experts by their mean in this category (unscored ones
    in general order); a category without evidence follows the general ranking."""
    if category not in emap.mapping:
        return list(general_ranking)
    chosen = emap.mapping[category]
    means = {r.expert: r.mean for r in emap.rows if r.category == category and math.isfinite(r.mean)}
    rest = [e for e in general_ranking if e != chosen]
    rest.sort(key=lambda e: (e not in means, -means.get(e, 0.0)))  # stable: general order breaks ties
    return [chosen, *rest]


def guard_ties(emap: Any, general: str) -> list[str]:
    """Keep the general (best single) expert in categories where the winner's lead is not significant.

    Switching experts on noise loses on average (measured on the AlpacaEval matrix: small-K maps gave
    up 15-50% of the oracle headroom); a specialist must earn its category.
    """
    kept = []
    for category, tied in emap.ties().items():
        if emap.mapping[category] != general and general in tied:
            emap.mapping[category] = general
            kept.append(category)
    return kept


def heldout_metrics(model: Any, vectors: np.ndarray, y: np.ndarray, threshold: float) -> dict[str, Any]:
    from sklearn.metrics import accuracy_score, f1_score

    probs = model.predict_proba(vectors)
    predicted = model.classes_[probs.argmax(axis=1)]
    accepted = probs.max(axis=1) >= threshold
    return {
        "heldout_n": int(len(y)),
        "accuracy": float(accuracy_score(y, predicted)),
        "macro_f1": float(f1_score(y, predicted, average="macro")),
        "accepted_fraction": float(accepted.mean()),
        "accuracy_when_accepted": float(accuracy_score(y[accepted], predicted[accepted])) if accepted.any() else math.nan,
    }
