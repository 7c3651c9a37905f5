"""Router variants compared by ``pref_analysis``: each takes train prompts with scores and returns, for
every test prompt, the index of the expert it would send that prompt to.

Every knob (cluster count, kNN neighbours, gate margin) is tuned by cross-validation inside the train
split; nothing here sees a test score, so the held-out numbers measure what a deployed router would get.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from router_training.kshot import select_experts

N_FOLDS = 5
CLUSTER_KS = (2, 3, 4, 6, 8, 12, 16)
KNN_KS = (5, 10, 20, 40, 80)
RIDGE_ALPHAS = tuple(float(a) for a in np.logspace(-2, 3, 11))


@dataclass
class Split:
    """One seed's data for one expert set: ``scores`` columns are the set's experts."""

    train: np.ndarray
    test: np.ndarray
    scores: np.ndarray
    emb: np.ndarray
    datasets: np.ndarray
    seed: int
    _cache: dict = field(default_factory=dict, repr=False)
    # Clusterings depend on the split's embeddings only: expert sets of one seed share them.
    emb_cache: dict = field(default_factory=dict, repr=False)

    @property
    def s_train(self) -> np.ndarray:
        return self.scores[self.train]

    def best_single(self) -> int:
        return int(np.argmax(self.s_train.mean(axis=0)))


@dataclass
class Routed:
    choices: np.ndarray  # expert index per test prompt
    info: dict = field(default_factory=dict)


def _folds(n: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    from sklearn.model_selection import KFold

    return list(KFold(N_FOLDS, shuffle=True, random_state=seed).split(np.arange(n)))


@dataclass
class KMeansFit:
    centers: np.ndarray
    labels_: np.ndarray

    def predict(self, x: np.ndarray) -> np.ndarray:
        return _nearest(x, self.centers)


def _nearest(x: np.ndarray, centers: np.ndarray) -> np.ndarray:
    return (np.sum(centers**2, axis=1)[None, :] - 2.0 * x @ centers.T).argmin(axis=1)


def _kmeans(x: np.ndarray, k: int, seed: int, n_init: int = 4, max_iter: int = 100) -> KMeansFit:
    """k-means++ then Lloyd, in numpy. sklearn's OpenMP Lloyd was 3 ms or 60 ms per fit on a shared
    2-core VM depending on the neighbours' load; two BLAS products per step do not care."""
    rng = np.random.default_rng([seed, k])
    x = np.asarray(x, dtype=np.float64)
    best: tuple[float, np.ndarray, np.ndarray] | None = None
    for _ in range(n_init):
        centers = [x[rng.integers(len(x))]]
        d2 = np.sum((x - centers[0]) ** 2, axis=1)
        for _ in range(1, k):
            centers.append(x[rng.choice(len(x), p=d2 / d2.sum())] if d2.sum() > 0 else x[rng.integers(len(x))])
            d2 = np.minimum(d2, np.sum((x - centers[-1]) ** 2, axis=1))
        c = np.asarray(centers)
        labels = _nearest(x, c)
        for _ in range(max_iter):
            for j in range(k):
                members = x[labels == j]
                if len(members):
                    c[j] = members.mean(axis=0)
            new = _nearest(x, c)
            if np.array_equal(new, labels):
                break
            labels = new
        inertia = float(np.sum((x - c[labels]) ** 2))
        if best is None or inertia < best[0]:
            best = (inertia, c.copy(), labels.copy())
    assert best is not None
    return KMeansFit(best[1], best[2])


def _map_means(s: np.ndarray, labels: np.ndarray) -> dict[int, int]:
    """K=all map without bootstrap: the fast path for inner cross-validation."""
    return {int(c): int(np.argmax(s[labels == c].mean(axis=0))) for c in np.unique(labels)}


def choose_n_clusters(sp: Split) -> tuple[int, dict[int, float]]:
    """k maximising the routed score on held-out folds of train (not silhouette: we care about routing)."""
    cv: dict[int, float] = {}
    emb_tr, s_tr = sp.emb[sp.train], sp.s_train
    for k in CLUSTER_KS:
        total = 0.0
        for f, (a, b) in enumerate(_folds(len(sp.train), sp.seed)):
            key = ("km", f, k)
            if key not in sp.emb_cache:
                km = _kmeans(emb_tr[a], k, sp.seed)
                sp.emb_cache[key] = (km.labels_, km.predict(emb_tr[b]))
            la, lb = sp.emb_cache[key]
            fb = int(np.argmax(s_tr[a].mean(axis=0)))
            m = _map_means(s_tr[a], la)
            total += s_tr[b][np.arange(len(b)), [m.get(int(c), fb) for c in lb]].sum()
        cv[k] = total / len(sp.train)
    return max(cv, key=lambda k: (cv[k], -k)), cv


def cluster_labels(sp: Split, k: int) -> tuple[np.ndarray, np.ndarray]:
    key = ("km-final", k)
    if key not in sp.emb_cache:
        km = _kmeans(sp.emb[sp.train], k, sp.seed)
        sp.emb_cache[key] = (km.labels_, km.predict(sp.emb[sp.test]))
    return sp.emb_cache[key]


def route_category(
    sp: Split, lab_train: np.ndarray, lab_test: np.ndarray, k_shot: int | None, tie_guard: bool = False
) -> Routed:
    """CoE stage 2 given categories. With ``tie_guard`` a category keeps the best single expert unless
    its winner beats that expert with a paired CI that excludes zero: the data must earn a deviation."""
    cats_tr = np.asarray([str(c) for c in lab_train])
    experts = [str(j) for j in range(sp.scores.shape[1])]
    emap = select_experts(sp.s_train, cats_tr, experts, k=k_shot, seed=sp.seed, n_boot=500)
    best = sp.best_single()
    mapping = dict(emap.mapping)
    ties = emap.ties()
    if tie_guard:
        for cat, e in list(mapping.items()):
            if int(e) != best and str(best) in ties.get(cat, []):
                mapping[cat] = str(best)
    choices = np.asarray([int(mapping.get(str(c), emap.fallback)) for c in lab_test])
    tie_rate = len(ties) / max(1, len(emap.mapping))
    return Routed(choices, {"tie_rate": tie_rate, "n_categories": len(emap.mapping)})


def _oof_and_test(sp: Split, make: Callable[[], object]) -> tuple[np.ndarray, np.ndarray]:
    """Out-of-fold predictions on train (for tuning) and a full-train fit's predictions on test."""
    x = sp.emb
    x_tr, s_tr = x[sp.train], sp.s_train
    oof = np.zeros_like(s_tr)
    for a, b in _folds(len(sp.train), sp.seed):
        oof[b] = make().fit(x_tr[a], s_tr[a]).predict(x_tr[b])
    return oof, make().fit(x_tr, s_tr).predict(x[sp.test])


def _ridge_preds(sp: Split) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.linear_model import RidgeCV

    if "ridge" not in sp._cache:
        sp._cache["ridge"] = _oof_and_test(sp, lambda: RidgeCV(alphas=RIDGE_ALPHAS))
    return sp._cache["ridge"]


def _knn_predict(x_fit: np.ndarray, y_fit: np.ndarray, x_new: np.ndarray, ks: tuple[int, ...]) -> dict[int, np.ndarray]:
    """Distance-weighted kNN for several k from one similarity matrix (embeddings are unit-norm, so
    cosine similarity ranks like Euclidean distance); sklearn would recompute distances per k."""
    sim = x_new @ x_fit.T
    k_max = min(max(ks), x_fit.shape[0])
    top = np.argpartition(-sim, k_max - 1, axis=1)[:, :k_max]
    order = np.take_along_axis(sim, top, axis=1).argsort(axis=1)[:, ::-1]
    top = np.take_along_axis(top, order, axis=1)
    dist = np.sqrt(np.maximum(2.0 - 2.0 * np.take_along_axis(sim, top, axis=1), 0.0))
    w_all = 1.0 / np.maximum(dist, 1e-6)
    out = {}
    for k in ks:
        w = w_all[:, :k]
        out[k] = np.einsum("nk,nke->ne", w, y_fit[top[:, :k]]) / w.sum(axis=1, keepdims=True)
    return out


def _knn_preds(sp: Split) -> tuple[np.ndarray, np.ndarray, int]:
    """kNN regression with k tuned on out-of-fold train predictions."""
    if "knn" not in sp._cache:
        x_tr, s_tr = sp.emb[sp.train], sp.s_train
        oof = {k: np.zeros_like(s_tr) for k in KNN_KS}
        for a, b in _folds(len(sp.train), sp.seed):
            for k, pred in _knn_predict(x_tr[a], s_tr[a], x_tr[b], KNN_KS).items():
                oof[k][b] = pred
        rows = np.arange(len(s_tr))
        best_k = max(KNN_KS, key=lambda k: (s_tr[rows, oof[k].argmax(axis=1)].mean(), -k))
        test = _knn_predict(x_tr, s_tr, sp.emb[sp.test], (best_k,))[best_k]
        sp._cache["knn"] = (oof[best_k], test, best_k)
    return sp._cache["knn"]


def route_regression(sp: Split, model: str) -> Routed:
    """Predict each expert's score from the prompt embedding; route to the highest prediction."""
    if model == "ridge":
        _, test = _ridge_preds(sp)
        return Routed(test.argmax(axis=1))
    _, test, k = _knn_preds(sp)
    return Routed(test.argmax(axis=1), {"knn_k": k})


def route_gated(sp: Split, model: str) -> Routed:
    """Leave the best single expert only when the predicted gain exceeds a margin tuned on out-of-fold
    train predictions. Regression errors are large relative to the real differences here; a margin
    turns "always trust the regressor" into "trust it where it is confident", and can fall back to
    the best single expert entirely (margin = inf) when confidence never pays."""
    oof, test = _ridge_preds(sp) if model == "ridge" else _knn_preds(sp)[:2]
    best = sp.best_single()
    s_tr = sp.s_train
    gap_oof = oof.max(axis=1) - oof[:, best]
    pos = gap_oof[gap_oof > 0]
    taus = [0.0, *np.quantile(pos, np.linspace(0, 0.95, 20)).tolist()] if pos.size else [0.0]
    taus.append(float("inf"))

    def routed(pred: np.ndarray, gap: np.ndarray, tau: float) -> np.ndarray:
        return np.where(gap > tau, pred.argmax(axis=1), best)

    vals = [s_tr[np.arange(len(s_tr)), routed(oof, gap_oof, t)].mean() for t in taus]
    top = max(vals)
    tau = max(t for t, v in zip(taus, vals) if v >= top - 1e-12)  # ties -> the more conservative
    gap_test = test.max(axis=1) - test[:, best]
    choices = routed(test, gap_test, tau)
    return Routed(choices, {"tau": tau, "share_rerouted": float(np.mean(choices != best))})
