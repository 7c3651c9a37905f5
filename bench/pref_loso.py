"""Leave-one-source-out probe on the AlpacaEval 2.0 matrix: can a per-prompt score predictor (kNN or
ridge over MiniLM embeddings) with a CV-tuned "leave the best single expert only if the predicted gain
beats a margin" rule capture the oracle's headroom on a prompt source it has never seen?

    python bench/pref_loso.py        # about 2 minutes on 2 cores (MiniLM embeddings are cached)

For each of the five source tags: train on the other four (expert set, best single expert, predictor
parameter and margin all chosen on them, the last two by 5-fold CV), test on the held-out source.
Prints the share of the oracle's headroom captured with a 95% bootstrap interval over test prompts,
the parameters chosen and how often the router left the best single expert. A probe for issue-level
research, not a training path: `coe train-router` does not use it.
"""

import numpy as np

from coe.paths import cache_subdir
from router_training import pref_analysis as pa


def knn_pred(xf, yf, xn, k):
    sims = xn @ xf.T
    idx = np.argsort(-sims, axis=1)[:, :k]
    w = np.take_along_axis(sims, idx, 1).clip(min=0) + 1e-6
    return (yf[idx] * w[..., None]).sum(1) / w.sum(1, keepdims=True)


def ridge_pred(xf, yf, xn, a):
    X = np.hstack([xf, np.ones((len(xf), 1))])
    Xn = np.hstack([xn, np.ones((len(xn), 1))])
    W = np.linalg.solve(X.T @ X + a * np.eye(X.shape[1]), X.T @ yf)
    return Xn @ W


def route(xtr, ytr, xte, kind, best, rng):
    # tune param and margin by 5-fold CV on train: choose expert = argmax pred if pred gain over best > margin
    params = [10, 20, 40, 80] if kind == "knn" else [1, 3, 10, 30]
    margins = [0.0, 0.02, 0.05, 0.1, 0.2, 1e9]
    folds = np.array_split(rng.permutation(len(xtr)), 5)
    score = {}
    for p in params:
        oof = np.zeros_like(ytr)
        for f in folds:
            mask = np.ones(len(xtr), bool)
            mask[f] = False
            oof[f] = (knn_pred if kind == "knn" else ridge_pred)(xtr[mask], ytr[mask], xtr[f], p)
        for mg in margins:
            pick = np.where(oof.max(1) - oof[:, best] > mg, oof.argmax(1), best)
            score[(p, mg)] = ytr[np.arange(len(ytr)), pick].mean()
    p, mg = max(score, key=score.get)
    pred = (knn_pred if kind == "knn" else ridge_pred)(xtr, ytr, xte, p)
    return np.where(pred.max(1) - pred[:, best] > mg, pred.argmax(1), best), (p, mg)


def main() -> None:
    m = pa.load_pref_matrix(pa.DEFAULT_CSV)
    emb = pa.embed_prompts(m.instructions, cache_subdir("pref-embeddings"))
    S, tags = m.scores, m.datasets
    rng = np.random.default_rng(0)
    for setname in ["strong", "complementary", "mid5"]:
        for kind in ["knn", "ridge"]:
            rows = []
            for held in sorted(set(tags)):
                tr, te = np.flatnonzero(tags != held), np.flatnonzero(tags == held)
                if setname == "mid5":
                    order = np.argsort(-S[tr].mean(0))
                    cols = list(order[10:15])
                else:
                    cols = pa.choose_expert_set(setname, S[tr])
                s = S[:, cols]
                best = int(np.argmax(s[tr].mean(0)))
                pick, prm = route(emb[tr], s[tr], emb[te], kind, best, rng)
                r = s[te, pick]
                b = s[te, best]
                o = s[te].max(1)
                boots = rng.integers(len(te), size=(1000, len(te)))
                share = (r.mean() - b.mean()) / (o.mean() - b.mean())
                bs = [(r[i].mean() - b[i].mean()) / (o[i].mean() - b[i].mean()) for i in boots]
                rows.append((held, share, np.percentile(bs, 2.5), np.percentile(bs, 97.5), prm, (pick != best).mean()))
            print(setname, kind, "mean share %.3f" % np.mean([x[1] for x in rows]))
            for x in rows:
                print("   %-13s %+.3f [%+.3f, %+.3f] %s moved %.2f" % x)


if __name__ == "__main__":
    main()
