"""Compare stage-1 classifiers on one held-out split, baselines included.

The static embedder is only worth its latency win if it classifies nearly as well as MiniLM, and any
embedding classifier is only worth running if it beats a bag-of-words model; this table is where
that is decided. Every row uses the same seeded split: trained on ``train``, threshold tuned on
``calibration`` (see ``threshold.py``), scored on ``heldout``.

    python -m router_training.compare --out results/stage1.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from router_training.classifiers import train_classifier
from router_training.data import DEFAULT_CAP, LabelledPrompt, category_counts, default_dataset
from router_training.splits import Split, stratified_split
from router_training.threshold import DEFAULT_TARGET_ACCURACY, acceptance, tune_threshold

DEFAULT_EMBEDDERS: tuple[str, ...] = ("minilm", "static")
DEFAULT_CLASSIFIERS: tuple[str, ...] = ("logreg", "knn", "mlp")


@dataclass(frozen=True)
class ComparisonRow:
    """One method's held-out scores; ``routed_*`` are at the calibration-tuned threshold."""

    method: str
    accuracy: float
    macro_f1: float
    threshold: float
    routed_fraction: float
    routed_accuracy: float
    fit_seconds: float


def _score(
    method: str,
    fit: Callable[[], Any],
    X_cal: Any,
    y_cal: list[str],
    X_test: Any,
    y_test: list[str],
    target_accuracy: float,
) -> ComparisonRow:
    from sklearn.metrics import accuracy_score, f1_score

    started = time.perf_counter()
    model = fit()
    fit_seconds = time.perf_counter() - started
    classes = [str(c) for c in model.classes_]
    tuned = tune_threshold(model.predict_proba(X_cal), classes, y_cal, target_accuracy)
    probs = model.predict_proba(X_test)
    predicted = np.asarray(classes)[probs.argmax(axis=1)]
    routed_fraction, routed_accuracy = acceptance(probs, classes, y_test, tuned.threshold)
    return ComparisonRow(
        method=method,
        accuracy=float(accuracy_score(y_test, predicted)),
        macro_f1=float(f1_score(y_test, predicted, average="macro")),
        threshold=tuned.threshold,
        routed_fraction=routed_fraction,
        routed_accuracy=routed_accuracy,
        fit_seconds=round(fit_seconds, 2),
    )


def _baselines(
    texts: list[str], labels: list[str], split: Split, seed: int, target: float
) -> list[ComparisonRow]:
    from sklearn.dummy import DummyClassifier
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    pick = lambda idx: ([texts[i] for i in idx], [labels[i] for i in idx])  # noqa: E731
    (t_tr, y_tr), (t_cal, y_cal), (t_te, y_te) = pick(split.train), pick(split.calibration), pick(split.heldout)
    # The majority baseline sees one dummy feature: it must not depend on the text at all.
    zeros = lambda n: np.zeros((n, 1))  # noqa: E731
    majority = _score(
        "majority class",
        lambda: DummyClassifier(strategy="most_frequent").fit(zeros(len(y_tr)), y_tr),
        zeros(len(y_cal)), y_cal, zeros(len(y_te)), y_te, target,
    )
    tfidf = _score(
        "tfidf + logreg",
        lambda: make_pipeline(
            TfidfVectorizer(sublinear_tf=True, ngram_range=(1, 2), min_df=2, max_features=50_000),
            LogisticRegression(C=10.0, max_iter=2000, random_state=seed),
        ).fit(t_tr, y_tr),
        t_cal, y_cal, t_te, y_te, target,
    )
    return [majority, tfidf]


def embed_dataset(
    texts: list[str], embedder_name: str, **kwargs: Any
) -> tuple[np.ndarray, float]:
    """Embed every text once; returns the matrix and the mean seconds per prompt (batched)."""
    from router_training.embedders import get_embedder

    embedder = get_embedder(embedder_name, **kwargs)
    started = time.perf_counter()
    X = embedder.encode(texts)
    return X, (time.perf_counter() - started) / max(len(texts), 1)


def compare_stage1(
    dataset: Sequence[LabelledPrompt],
    seed: int = 0,
    embedders: Sequence[str] = DEFAULT_EMBEDDERS,
    classifiers: Sequence[str] = DEFAULT_CLASSIFIERS,
    target_accuracy: float = DEFAULT_TARGET_ACCURACY,
    log: Callable[[str], None] = lambda message: None,
) -> list[ComparisonRow]:
    """Score the baselines and every embedder x classifier pair on one seeded split."""
    texts = [item.text for item in dataset]
    labels = [item.category for item in dataset]
    split = stratified_split(labels, seed=seed)
    rows = _baselines(texts, labels, split, seed, target_accuracy)
    y = np.asarray(labels)
    for embedder_name in embedders:
        X, per_prompt = embed_dataset(texts, embedder_name)
        log(f"embedded {len(texts)} prompts with {embedder_name}: {per_prompt * 1000:.1f} ms/prompt (batched)")
        for classifier_name in classifiers:
            rows.append(
                _score(
                    f"{embedder_name} + {classifier_name}",
                    lambda: train_classifier(classifier_name, X[split.train], y[split.train], seed),
                    X[split.calibration], list(y[split.calibration]),
                    X[split.heldout], list(y[split.heldout]),
                    target_accuracy,
                )
            )
    return rows


def to_markdown(rows: Sequence[ComparisonRow], target_accuracy: float = DEFAULT_TARGET_ACCURACY) -> str:
    """A table for READMEs and reports; percentages because that is how the numbers are discussed."""
    lines = [
        f"| method | held-out acc | macro-F1 | threshold (cal., target {target_accuracy:.0%}) "
        "| routed | acc. of routed | fit s |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r.method} | {r.accuracy:.1%} | {r.macro_f1:.3f} | {r.threshold:.3f} "
            f"| {r.routed_fraction:.1%} | {r.routed_accuracy:.1%} | {r.fit_seconds:.1f} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, help="write the rows and settings as JSON here")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cap", type=int, default=DEFAULT_CAP, help="prompts per category")
    parser.add_argument("--target-accuracy", type=float, default=DEFAULT_TARGET_ACCURACY)
    parser.add_argument("--embedders", nargs="+", default=list(DEFAULT_EMBEDDERS))
    parser.add_argument("--classifiers", nargs="+", default=list(DEFAULT_CLASSIFIERS))
    args = parser.parse_args(argv)

    dataset = default_dataset(cap=args.cap, seed=args.seed)
    log = lambda message: print(message, file=sys.stderr)  # noqa: E731
    log(f"default dataset: {len(dataset)} prompts {category_counts(dataset)}")
    rows = compare_stage1(
        dataset, args.seed, args.embedders, args.classifiers, args.target_accuracy, log=log
    )
    print(to_markdown(rows, args.target_accuracy))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "seed": args.seed,
            "cap": args.cap,
            "target_accuracy": args.target_accuracy,
            "categories": category_counts(dataset),
            "split": "stratified 60/20/20 (train/calibration/heldout)",
            "rows": [asdict(r) for r in rows],
        }
        args.out.write_text(json.dumps(payload, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
