"""`coe train-router` end to end: data -> splits -> stage-1 classifier -> threshold -> K-shot map -> artifact.

Each stage is its own module; this one only orders them, reports progress, and writes one versioned
artifact folder that the server loads (`coe.routing.artifact`).
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from coe.routing.artifact import RouterArtifact
from router_training.data import DataFileError, LabelledPrompt
from router_training.splits import group_by_label

Progress = Callable[[str], None]


class StepReporter:
    """Progress for long loops; the CLI swaps in a rich progress bar, library callers get plain lines."""

    def __init__(self, say: Progress = print) -> None:
        self.say = say

    def step(self, label: str, done: int, total: int) -> None:
        if done == total or done % max(1, total // 10) == 0:
            self.say(f"{label}: {done}/{total}")
AnswerFn = Callable[[str, str], str]  # (expert_id, prompt) -> answer
ScoreFn = Callable[[LabelledPrompt, str], "float | None"]  # (prompt, answer) -> score or invalid

# Mode -> allowed relative loss of mean score against the category's best expert.
MODE_LOSS: dict[str, float | None] = {"quality": None, "balanced": 0.05, "cheap": 0.15}


@dataclass
class TrainingPlan:
    dataset: list[LabelledPrompt]
    experts: list[str]
    general_expert: str | None  # None: the best single expert on the K-shot evidence
    out: Path
    embedder: str = "minilm"
    classifier: str = "logreg"
    k: int | None = 5
    seed: int = 0
    active_params: dict[str, float] = field(default_factory=dict)
    target_accuracy: float = 0.9


def version_stamp() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")


def kshot_sample(dataset: Sequence[LabelledPrompt], pool: Sequence[int], k: int | None, seed: int) -> list[int]:
    """K prompts per category from the training split, seeded; every category gets its own draw."""
    rng = random.Random(seed)
    pool = list(pool)
    by_category = group_by_label([dataset[i].category for i in pool])
    chosen: list[int] = []
    for category in sorted(by_category):
        items = [pool[j] for j in by_category[category]]
        chosen += items if k is None else rng.sample(items, min(k, len(items)))
    return chosen


@dataclass
class KShotScores:
    """The evidence stage 2 is chosen from: which prompts, their categories, each expert's scores."""

    prompts: list[str]
    categories: list[str]
    matrix: np.ndarray  # [n_prompts, n_experts], NaN = invalid / not scored
    invalid: int = 0


def score_by_answering(
    plan: TrainingPlan, pool: Sequence[int], answer: AnswerFn, score: ScoreFn, reporter: StepReporter
) -> KShotScores:
    """Every expert answers K prompts per category; an invalid judgment stays NaN and is counted."""
    chosen = kshot_sample(plan.dataset, pool, plan.k, plan.seed)
    matrix = np.full((len(chosen), len(plan.experts)), np.nan)
    invalid, done, total = 0, 0, len(chosen) * len(plan.experts)
    for row, index in enumerate(chosen):
        item = plan.dataset[index]
        for col, expert in enumerate(plan.experts):
            value = score(item, answer(expert, item.text))
            done += 1
            invalid += value is None
            if value is not None:
                matrix[row, col] = value
            reporter.step("k-shot answers scored", done, total)
    return KShotScores([plan.dataset[i].text for i in chosen], [plan.dataset[i].category for i in chosen], matrix, invalid)


def read_precomputed(path: Path, experts: Sequence[str], k: int | None, seed: int) -> KShotScores:
    """JSONL lines {"prompt", "category", "expert", "score"}: scores measured elsewhere (another harness,
    a public leaderboard). K prompts per category are drawn from the file, seeded."""
    import json

    rows: dict[str, tuple[str, dict[str, float]]] = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
            entry = rows.setdefault(item["prompt"], (item["category"], {}))
            entry[1][item["expert"]] = float(item["score"])
        except (ValueError, KeyError, TypeError) as err:
            raise DataFileError(f"{path}:{number}: expected {{prompt, category, expert, score}}: {err}") from None
    items = [LabelledPrompt(text, category, "precomputed") for text, (category, _) in rows.items()]
    chosen = kshot_sample(items, range(len(items)), k, seed)
    matrix = np.array([[rows[items[i].text][1].get(e, np.nan) for e in experts] for i in chosen], dtype=float)
    return KShotScores([items[i].text for i in chosen], [items[i].category for i in chosen], matrix)


def train_router(
    plan: TrainingPlan, kshot: Callable[[Sequence[int]], KShotScores], progress: Progress = print
) -> Path:
    """`kshot` gets the training-split indices and returns the stage-2 evidence."""
    from router_training.classifiers import train_classifier
    from router_training.embedders import get_embedder
    from router_training.kshot import select_experts
    from router_training.splits import stratified_split
    from router_training.threshold import tune_threshold

    started = time.monotonic()
    labels = [p.category for p in plan.dataset]
    split = stratified_split(labels, seed=plan.seed)
    progress(f"data: {len(plan.dataset)} prompts, split {len(split.train)}/{len(split.calibration)}/{len(split.heldout)}")

    embedder = get_embedder(plan.embedder, **embedder_options(plan))
    vectors = embedder.encode([p.text for p in plan.dataset])
    progress(f"embedded with {plan.embedder} ({vectors.shape[1]} dims)")
    y = np.array(labels)
    model = train_classifier(plan.classifier, vectors[split.train], y[split.train], seed=plan.seed)
    cal_probs = model.predict_proba(vectors[split.calibration])
    threshold = tune_threshold(cal_probs, list(model.classes_), y[split.calibration], target_accuracy=plan.target_accuracy)
    metrics = heldout_metrics(model, vectors[split.heldout], y[split.heldout], threshold.threshold)
    progress(f"stage 1 ({plan.classifier}): held-out accuracy {metrics['accuracy']:.3f}, macro-F1 {metrics['macro_f1']:.3f}; "
             f"fallback threshold {threshold.threshold:.3f}")

    evidence = kshot(split.train)
    maps, selection = {}, {}
    general = plan.general_expert
    for mode, loss in MODE_LOSS.items():
        emap = select_experts(
            evidence.matrix, evidence.categories, plan.experts, k=None, seed=plan.seed,
            active_params=plan.active_params or None, max_loss=loss if plan.active_params else None, relative_loss=True,
        )
        general = general or emap.fallback
        guarded = guard_ties(emap, general) if mode == "quality" else []
        for category in model.classes_:
            emap.mapping.setdefault(str(category), general)
        maps[mode] = emap.mapping
        selection[mode] = {**emap.to_dict(), "kept_general_on_tie": guarded}
        if guarded:
            progress(f"{mode} map: {', '.join(guarded)} kept on {general}: the K-shot winner does not beat it significantly")
    artifact = RouterArtifact(
        version=version_stamp(),
        embedder=plan.embedder,
        classifier=plan.classifier,
        categories=[str(c) for c in model.classes_],
        threshold=float(threshold.threshold),
        general_expert=general,
        maps=maps,
        selection={"k": plan.k, "prompts_scored": len(evidence.prompts), "invalid_scores": evidence.invalid,
                   "experts": plan.experts, "maps": selection},
        metrics={**metrics, "threshold": asdict(threshold), "train_seconds": round(time.monotonic() - started, 1)},
        embedder_options=embedder_options(plan),
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )
    folder = artifact.save(plan.out / f"router-{artifact.version}", model)
    progress(f"router written to {folder}")
    return folder


def embedder_options(plan: TrainingPlan) -> dict[str, Any]:
    """Trained embedders (contrastive, moe) learn from the default dataset's training split; the seed
    picks that split, so the server must rebuild the embedder with the same one."""
    from router_training.embedders import get_embedder_class

    return {"seed": plan.seed} if get_embedder_class(plan.embedder).needs_training_data else {}


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
