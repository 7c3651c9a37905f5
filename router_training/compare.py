"""Compare stage-1 classifiers on one held-out split, baselines included.

The static embedder is only worth its latency win if it classifies nearly as well as MiniLM, and any
embedding classifier is only worth running if it beats a bag-of-words model; this table is where
that is decided. Every row uses the same seeded split: trained on ``train``, threshold tuned on
``calibration`` (see ``threshold.py``), scored on ``heldout``. Embedders that are themselves trained
(``contrastive``, ``moe``) get that same ``train`` part and nothing else, and are paired with
``logreg`` only: the question for them is whether the embedding helps, the classifier choice was
settled on the frozen embeddings, and every extra pairing costs cross-validated fits.

    python -m router_training.compare --out results/stage1.json
"""

from __future__ import annotations

import argparse
import json
import logging
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

DEFAULT_EMBEDDERS: tuple[str, ...] = ("minilm", "static", "static-tuned", "contrastive", "moe")
DEFAULT_CLASSIFIERS: tuple[str, ...] = ("logreg", "knn", "mlp")
DEFAULT_TRAINED_CLASSIFIERS: tuple[str, ...] = ("logreg",)


@dataclass(frozen=True)
class EmbedderCost:
    """What an embedder cost in this run; ``train_seconds`` is from when it was trained (cached
    models report their original training time) and 0 for embedders that are not trained."""

    embedder: str
    train_seconds: float
    trained_now: bool
    ms_per_prompt: float


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
    from sklearn.linear_model import LogisticRegressionCV
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
            # The embedding rows' C search (5-fold log-loss), over a grid for sparse features: the
            # dense grid's small Cs take over a minute to converge here and are never chosen.
            LogisticRegressionCV(
                Cs=(1.0, 10.0, 100.0), cv=5, scoring="neg_log_loss", l1_ratios=(0.0,),
                use_legacy_attributes=False, max_iter=3000, random_state=seed,
            ),
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
    trained_classifiers: Sequence[str] = DEFAULT_TRAINED_CLASSIFIERS,
    costs: list[EmbedderCost] | None = None,
    threads: int | None = None,
    frozen_vectors: dict[str, tuple[np.ndarray, float, float]] | None = None,
) -> list[ComparisonRow]:
    """Score the baselines and every embedder x classifier pair on one seeded split.

    Embedders whose class declares ``needs_training_data`` are trained (or loaded from cache) on
    the split's train part and paired with ``trained_classifiers`` instead of ``classifiers``.
    If ``costs`` is given, one :class:`EmbedderCost` per embedder is appended to it. ``threads``
    (torch threads for every embedder) is left to the embedders' default when ``None``.
    ``frozen_vectors`` (embedder name -> vectors, build s, s per prompt) keeps the encodings of
    embedders that are not trained between calls on the same dataset (``--split-seeds``).
    """
    from router_training.embedders import get_embedder, get_embedder_class

    texts = [item.text for item in dataset]
    labels = [item.category for item in dataset]
    split = stratified_split(labels, seed=seed)
    rows = _baselines(texts, labels, split, seed, target_accuracy)
    y = np.asarray(labels)
    for embedder_name in embedders:
        trained = get_embedder_class(embedder_name).needs_training_data
        kwargs: dict[str, Any] = (
            {"train_items": [dataset[i] for i in split.train], "seed": seed} if trained else {}
        )
        if threads is not None:
            kwargs["threads"] = threads
        if not trained and frozen_vectors is not None and embedder_name in frozen_vectors:
            X, build_seconds, per_prompt = frozen_vectors[embedder_name]
        else:
            started = time.perf_counter()
            embedder = get_embedder(embedder_name, **kwargs)
            build_seconds = time.perf_counter() - started
            started = time.perf_counter()
            X = embedder.encode(texts)
            per_prompt = (time.perf_counter() - started) / max(len(texts), 1)
            log(f"embedded {len(texts)} prompts with {embedder_name}: {per_prompt * 1000:.1f} ms/prompt (batched)")
            if not trained and frozen_vectors is not None:
                frozen_vectors[embedder_name] = (X, build_seconds, per_prompt)
        if trained:
            log(f"  {embedder_name}: trained in {embedder.train_seconds:.0f} s"
                f"{' (just now)' if embedder.trained_here else ' (earlier; loaded from cache)'};"
                f" building it took {build_seconds:.0f} s")
        if costs is not None:
            costs.append(
                EmbedderCost(
                    embedder=embedder_name,
                    train_seconds=embedder.train_seconds if trained else 0.0,
                    trained_now=embedder.trained_here if trained else False,
                    ms_per_prompt=round(per_prompt * 1000, 2),
                )
            )
        for classifier_name in trained_classifiers if trained else classifiers:
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


def splits_to_markdown(rows_by_seed: dict[int, Sequence[ComparisonRow]]) -> str:
    """Held-out accuracy of every method on each seeded split, with the mean: one 200-prompt split
    moves a method by several points, so a difference smaller than that needs several splits."""
    seeds = sorted(rows_by_seed)
    methods = [r.method for r in rows_by_seed[seeds[0]]]
    lines = [
        "| method | mean acc | " + " | ".join(f"split {s}" for s in seeds) + " |",
        "|---|---:|" + "---:|" * len(seeds),
    ]
    for method in methods:
        accs = [next(r.accuracy for r in rows_by_seed[s] if r.method == method) for s in seeds]
        lines.append(f"| {method} | {np.mean(accs):.1%} | " + " | ".join(f"{a:.1%}" for a in accs) + " |")
    return "\n".join(lines)


def costs_to_markdown(costs: Sequence[EmbedderCost]) -> str:
    """What each embedder costs: one-off training (trained ones only) and encoding per prompt."""
    lines = ["| embedder | training s | encode ms/prompt (batched) |", "|---|---:|---:|"]
    for c in costs:
        trained = "-"
        if c.train_seconds:
            trained = f"{c.train_seconds:.0f}" + ("" if c.trained_now else " (cached)")
        lines.append(f"| {c.embedder} | {trained} | {c.ms_per_prompt:.1f} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, help="write the rows and settings as JSON here")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--split-seeds", type=int, nargs="+",
        help="also score every method on these seeded train/calibration/held-out splits of the same dataset",
    )
    parser.add_argument("--cap", type=int, default=DEFAULT_CAP, help="prompts per category")
    parser.add_argument("--target-accuracy", type=float, default=DEFAULT_TARGET_ACCURACY)
    parser.add_argument("--embedders", nargs="+", default=list(DEFAULT_EMBEDDERS))
    parser.add_argument("--classifiers", nargs="+", default=list(DEFAULT_CLASSIFIERS))
    parser.add_argument(
        "--trained-classifiers", nargs="+", default=list(DEFAULT_TRAINED_CLASSIFIERS),
        help="classifiers paired with the trained embedders (contrastive, moe)",
    )
    parser.add_argument(
        "--threads", type=int, default=None,
        help="torch threads per embedder (default: theirs, 2); 1 is faster on cores shared with other jobs",
    )
    args = parser.parse_args(argv)
    # Training a trained embedder takes minutes; its progress is logged under router_training.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    package_logger = logging.getLogger("router_training")
    package_logger.addHandler(handler)
    package_logger.setLevel(logging.INFO)

    dataset = default_dataset(cap=args.cap, seed=args.seed)
    log = lambda message: print(message, file=sys.stderr)  # noqa: E731
    log(f"default dataset: {len(dataset)} prompts {category_counts(dataset)}")
    costs: list[EmbedderCost] = []
    frozen: dict[str, tuple[np.ndarray, float, float]] = {}
    rows = compare_stage1(
        dataset, args.seed, args.embedders, args.classifiers, args.target_accuracy, log=log,
        trained_classifiers=args.trained_classifiers, costs=costs, threads=args.threads, frozen_vectors=frozen,
    )
    print(to_markdown(rows, args.target_accuracy))
    print()
    print(costs_to_markdown(costs))
    by_seed: dict[int, list[ComparisonRow]] = {args.seed: rows}
    if args.split_seeds:
        for split_seed in [s for s in args.split_seeds if s != args.seed]:
            log(f"split seed {split_seed}")
            by_seed[split_seed] = compare_stage1(
                dataset, split_seed, args.embedders, args.classifiers, args.target_accuracy, log=log,
                trained_classifiers=args.trained_classifiers, threads=args.threads, frozen_vectors=frozen,
            )
        print()
        print(splits_to_markdown(by_seed))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "seed": args.seed,
            "cap": args.cap,
            "target_accuracy": args.target_accuracy,
            "categories": category_counts(dataset),
            "split": "stratified 60/20/20 (train/calibration/heldout)",
            "rows": [asdict(r) for r in rows],
            "embedders": [asdict(c) for c in costs],
            "split_seeds": {str(seed): [asdict(r) for r in seed_rows] for seed, seed_rows in by_seed.items()},
        }
        args.out.write_text(json.dumps(payload, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
