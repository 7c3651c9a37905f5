"""What can any router reach on the issue-14 targets? Ceilings measured with what no deployed router has.

    python bench/routing_ceiling.py               # about 2 minutes on 2 cores with the MiniLM embeddings cached
    python bench/routing_ceiling.py --only mmlu
    python bench/routing_ceiling.py --sentence-transformer DIR   # another embedder (a local sentence-transformers folder)

alpacaeval: how much of the oracle's headroom on a prompt source the router never saw. Issue 14 asks for >= 20% of the oracle's headroom on leave-one-source-out AlpacaEval 2.0 with some
five-model set. `make bench-curves` measures CoE's router there (about 0%). This bench measures
what is reachable at all, with two routers that are given what no deployed router has:

  source oracle   knows the held-out source's best expert and sends the whole source to it: the ceiling
                  of any router that picks one expert per source (a category map, at best).
  hindsight kNN   per prompt, the mean score of each expert over the k most similar training prompts
                  (MiniLM, cosine), switching from the best single expert where the predicted gain is
                  above a margin; k and the margin are picked per expert set on the held-out rows
                  themselves (so its number is optimistic by construction).

and one router that is not: the same kNN with k and the margin picked by an inner leave-one-source-out
on the four training sources (the best mean inner gain minus one standard error; never switch when
that is not above 0). For it the table counts the sets whose pooled 95% bootstrap interval is above 0
and below 0: "never below the best single expert" is the other half of the issue's target.

Every five-model subset of each window of ten consecutive ranks (ranks 1-40 by mean score over all
rows; 252 sets per window) is scored leave-one-source-out: the best single expert is chosen on the four
training sources, headroom is pooled over the five folds (797 prompts, each scored by a router that
did not see its source). Prints, per window, the mean and best over its sets. A set that reaches 20%
is found in hindsight; the last column asks whether it can be found honestly: per outer fold, the set
whose honest kNN had the best inner bound on the training sources is chosen (among the window's sets,
or among all of them on the last row) and scored on the held-out source.

mmlu: the spend (share of sending everything to GPT-4, Mixtral at 6% of its price) at which a ranking
of the held-out questions by predicted gain of GPT-4 over Mixtral reaches 95% of GPT-4's accuracy,
on the three random question-grouped splits of `make bench-curves`. Each predictor is fitted on the
split's training rows; some are given the true MMLU subject of every question (a router is not: its
stage 1 predicts it), and their best is picked in hindsight. The issue's target is 40%.

--sentence-transformer DIR embeds both datasets with that model instead of MiniLM (normalized, cached by
the folder's name and the texts' hash), to ask whether a stronger embedder carries more signal.
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import numpy as np

from coe.paths import cache_subdir

KS = (10, 30, 100)
MARGINS = (0.0, 0.02, 0.05, 0.1)
WINDOWS = (0, 5, 10, 15, 20, 30)


BOOTSTRAP = 300


def fold_rows(tags: np.ndarray, outside: str | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train, held) per source, leave one source out; rows of source `outside` are in neither."""
    keep = tags != outside
    return [(np.flatnonzero(keep & (tags != s)), np.flatnonzero(tags == s)) for s in sorted(set(tags)) if s != outside]


def neighbour_means(vectors: np.ndarray, scores: np.ndarray, folds: list[tuple[np.ndarray, np.ndarray]]) -> list[dict]:
    """Per fold and k: every held-out prompt's mean score of each of all 55 models over its k nearest
    training prompts (computed once; a set's columns are sliced out of it)."""
    out = []
    for train, held in folds:
        order = np.argsort(-(vectors[held] @ vectors[train].T), axis=1)
        out.append({k: scores[train][order[:, :k]].mean(axis=1) for k in KS})
    return out


def knn_picks(means: np.ndarray, best: int, margin: float) -> np.ndarray:
    gain = means - means[:, [best]]
    utility = np.where(gain > margin, gain, -np.inf)
    utility[:, best] = 0.0
    return utility.argmax(axis=1)


def honest_knn(s: np.ndarray, folds: list, knn: list[dict], inner: list[tuple[list, list[dict]]]) -> list[tuple[np.ndarray, np.ndarray, float]]:
    """Per outer fold: the held-out prompts' gains and headroom of the kNN router whose k and margin
    come from an inner leave-one-source-out on that fold's training sources only, and the inner bound
    it was chosen by (the best mean inner gain minus one standard error)."""
    out = []
    for (train, held), means, (inner_folds, inner_knn) in zip(folds, knn, inner):
        best = int(np.argmax(s[train].mean(axis=0)))
        bounds = {}
        for k in KS:
            for m in MARGINS:
                g = np.concatenate([s[h, knn_picks(im[k], int(np.argmax(s[t].mean(axis=0))), m)] - s[h, int(np.argmax(s[t].mean(axis=0)))]
                                    for (t, h), im in zip(inner_folds, inner_knn)])
                bounds[(k, m)] = g.mean() - g.std() / np.sqrt(len(g))
        (k, m), bound = max(bounds.items(), key=lambda kv: kv[1])
        chosen = knn_picks(means[k], best, m) if bound > 0 else np.full(len(held), best)
        out.append((s[held, chosen] - s[held, best], s[held].max(axis=1) - s[held, best], float(bound)))
    return out


def interval(gains: np.ndarray, headroom: np.ndarray, seed: int = 0) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    draws = [(gains[i].mean() / headroom[i].mean()) for i in (rng.integers(0, len(gains), len(gains)) for _ in range(BOOTSTRAP))]
    return float(np.percentile(draws, 2.5)), float(np.percentile(draws, 97.5))


def pooled_headroom(gains: list[np.ndarray], headroom: list[np.ndarray]) -> float:
    return float(np.concatenate(gains).mean() / np.concatenate(headroom).mean())


def score_set(cols: list[int], scores: np.ndarray, folds: list, knn: list[dict], inner: list) -> tuple[tuple[float, ...], list]:
    """(source oracle, hindsight kNN, honest kNN, its interval low, high) pooled headroom captured for
    one expert set, and the honest kNN's per-fold results (`honest_knn`)."""
    s = scores[:, cols]
    source_gain, headroom, knn_gain = [], [], {(k, m): [] for k in KS for m in MARGINS}
    for (train, held), means in zip(folds, knn):
        best = int(np.argmax(s[train].mean(axis=0)))
        headroom.append(s[held].max(axis=1) - s[held, best])
        source_best = int(np.argmax(s[held].mean(axis=0)))
        source_gain.append(s[held, source_best] - s[held, best])
        for k in KS:
            predicted = means[k][:, cols]
            for m in MARGINS:
                knn_gain[(k, m)].append(s[held, knn_picks(predicted, best, m)] - s[held, best])
    sliced = [[{k: v[:, cols] for k, v in means.items()} for means in part] for part in (knn, *(i for _, i in inner))]
    per_fold = honest_knn(s, folds, sliced[0], [(f, sliced[1 + j]) for j, (f, _) in enumerate(inner)])
    gains, room = (np.concatenate([f[i] for f in per_fold]) for i in (0, 1))
    return (pooled_headroom(source_gain, headroom), max(pooled_headroom(g, headroom) for g in knn_gain.values()),
            float(gains.mean() / room.mean()), *interval(gains, room)), per_fold


def nested_set_choice(per_set: list[list]) -> str:
    """Picks the expert set honestly too: per outer fold, the set whose honest kNN had the best inner
    bound on the four training sources; that set's router is then scored on the held-out source.
    Pooled headroom captured over the five folds (each fold may pick another set), with its interval."""
    picked = [per_set[int(np.argmax([folds[j][2] for folds in per_set]))][j] for j in range(len(per_set[0]))]
    gains, room = (np.concatenate([f[i] for f in picked]) for i in (0, 1))
    low, high = interval(gains, room)
    return f"{100 * gains.mean() / room.mean():+.1f}% [{100 * low:+.1f}, {100 * high:+.1f}]"


def spend_for_95(predicted_gain: np.ndarray, scores: np.ndarray, cheap_cost: float) -> float:
    """Send the questions with the highest predicted gain to the expensive expert (column 1) until the
    mean accuracy reaches 95% of sending it everything; the relative spend at that point."""
    order = np.argsort(-predicted_gain, kind="stable")
    n = len(scores)
    quality = (scores[:, 0].sum() + np.concatenate([[0.0], np.cumsum(scores[order, 1] - scores[order, 0])])) / n
    share = int(np.argmax(quality >= 0.95 * scores[:, 1].mean())) / n
    return share + (1 - share) * cheap_cost


def mmlu_predictors(x: np.ndarray, gain: np.ndarray, scores: np.ndarray, train: np.ndarray, held: np.ndarray,
                    subjects: np.ndarray) -> dict[str, np.ndarray]:
    """Predicted gain (GPT-4 minus Mixtral correctness) of each held-out question, per predictor."""
    from sklearn.linear_model import LogisticRegression, Ridge

    names = sorted(set(subjects))
    onehot = (subjects[:, None] == np.array(names)[None, :]).astype(np.float64)
    with_subject = np.hstack([x, onehot])
    out = {f"ridge a={a}": Ridge(alpha=a).fit(x[train], gain[train]).predict(x[held]) for a in (1, 10, 100)}
    similar = np.argpartition(-(x[held] @ x[train].T), 100, axis=1)[:, :100]
    out["kNN k=100"] = gain[train][similar].mean(axis=1)
    for a in (10, 100):
        out[f"ridge a={a} + true subject"] = Ridge(alpha=a).fit(with_subject[train], gain[train]).predict(with_subject[held])
    for c in (0.1, 1.0):
        right = [LogisticRegression(C=c, max_iter=3000).fit(with_subject[train], scores[train, j]).predict_proba(with_subject[held])[:, 1]
                 for j in (0, 1)]
        out[f"logistic C={c} per expert + true subject"] = right[1] - right[0]
    means = {s: gain[train][subjects[train] == s].mean() for s in names}
    out["true subject's mean gain"] = np.array([means[s] for s in subjects[held]])
    return out


def mmlu(model_dir: Path | None) -> None:
    from router_training import pref_analysis as pa
    from router_training.embedders import get_embedder
    from router_training.mmlu_pair import PRICES_PER_MTOK, load_mmlu_pair
    from router_training.pipeline import cached_embeddings
    from router_training.splits import stratified_split

    pair = load_mmlu_pair()
    cheap_cost = PRICES_PER_MTOK[pair.experts[0]] / PRICES_PER_MTOK[pair.experts[1]]
    x = (pa.embed_prompts(pair.prompts, cache_subdir("embeddings"), model_dir) if model_dir is not None
         else cached_embeddings(get_embedder("minilm"), list(pair.prompts), print)).astype(np.float64)
    subjects, scores = np.asarray(pair.subjects), pair.scores
    gain = scores[:, 1] - scores[:, 0]
    texts, first = np.unique(np.asarray(pair.prompts), return_index=True)  # grouped as in bench/routing_curves.py
    group = np.searchsorted(texts, np.asarray(pair.prompts))
    table: dict[str, list[float]] = {}
    rng = np.random.default_rng(0)
    for seed in range(3):
        held_groups = np.array(stratified_split(subjects[first].tolist(), seed=seed).heldout)
        held_mask = np.isin(group, held_groups)
        train, held = np.flatnonzero(~held_mask), np.flatnonzero(held_mask)
        s = scores[held]
        table.setdefault("random order", []).append(float(np.mean([spend_for_95(rng.random(len(held)), s, cheap_cost) for _ in range(20)])))
        table.setdefault("oracle", []).append(spend_for_95(gain[held], s, cheap_cost))
        for name, predicted in mmlu_predictors(x, gain, scores, train, held, subjects).items():
            table.setdefault(name, []).append(spend_for_95(predicted, s, cheap_cost))
    print("| ranking | spend for 95% of GPT-4, splits 0 / 1 / 2 |\n|---|---:|")
    for name, spends in table.items():
        print(f"| {name} | {' / '.join(f'{100 * v:.0f}%' for v in spends)} |")


def alpacaeval(model_dir: Path | None) -> None:
    from router_training import pref_analysis as pa

    m = pa.load_pref_matrix(pa.DEFAULT_CSV)
    vectors = pa.embed_prompts(m.instructions, cache_subdir("pref-embeddings"), model_dir).astype(np.float64)
    tags = np.asarray(m.datasets)
    folds = fold_rows(tags)
    knn = neighbour_means(vectors, m.scores, folds)
    inner = []
    for (_, held) in folds:
        inner_folds = fold_rows(tags, outside=tags[held[0]])
        inner.append((inner_folds, neighbour_means(vectors, m.scores, inner_folds)))
    rank = np.argsort(-m.scores.mean(axis=0), kind="stable")
    print("| ranks | sets | source oracle: mean / best | hindsight kNN: mean / best "
          "| honest kNN: mean / best | sets >= 20% | interval > 0 | interval < 0 | set chosen per fold on the training sources [95%] |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    every_set = []
    for lo in WINDOWS:
        results = [score_set(list(c), m.scores, folds, knn, inner) for c in itertools.combinations(rank[lo:lo + 10], 5)]
        every_set += [per_fold for _, per_fold in results]
        r = np.array([summary for summary, _ in results])
        pct = lambda col: f"{100 * r[:, col].mean():+.1f}% / {100 * r[:, col].max():+.1f}%"  # noqa: E731
        print(f"| {lo + 1}-{lo + 10} | {len(r)} | {pct(0)} | {pct(1)} | {pct(2)} | {int((r[:, 2] >= 0.2).sum())} "
              f"| {int((r[:, 3] > 0).sum())} | {int((r[:, 4] < 0).sum())} | {nested_set_choice([p for _, p in results])} |", flush=True)
    print(f"| every window | {len(every_set)} | | | | | | | {nested_set_choice(every_set)} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=("alpacaeval", "mmlu"))
    parser.add_argument("--sentence-transformer", type=Path, metavar="DIR",
                        help="embed with this local sentence-transformers model instead of MiniLM")
    args = parser.parse_args()
    if args.sentence_transformer is not None and not (args.sentence_transformer / "config.json").is_file():
        parser.error(f"--sentence-transformer {args.sentence_transformer}: not a sentence-transformers folder (no config.json)")
    if args.only in (None, "alpacaeval"):
        alpacaeval(args.sentence_transformer)
    if args.only in (None, "mmlu"):
        mmlu(args.sentence_transformer)


if __name__ == "__main__":
    main()
