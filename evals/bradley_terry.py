"""Bradley-Terry strengths from pairwise battles, win rates against the baseline, bootstrap intervals.

As Arena-Hard computes them: every judgment is a battle between a model and the baseline; a tie counts
half a win for each side, a strong verdict (``A>>B``) counts ``weight`` times (3 in Arena-Hard), and
the model's score is the win probability against the baseline implied by the fitted strengths. The
95% interval comes from refitting on prompts resampled with replacement (a prompt's battles stay
together, both orders included).

The fit is a weighted logistic regression with the baseline's strength fixed at 0. A tiny L2 penalty
keeps the strengths finite when a model loses (or wins) every battle, which tiny local models do
against o3-mini: the win rate is then close to 0 instead of a numerical failure.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

L2 = 1e-4


@dataclass(frozen=True)
class Battle:
    prompt: str  # the resampling unit
    model: str
    opponent: str
    outcome: float  # for ``model``: 1 win, 0.5 tie, 0 loss
    weight: float = 1.0


def fit_strengths(battles: Sequence[Battle], baseline: str) -> dict[str, float]:
    """Maximum-likelihood strengths (natural-log scale), the baseline pinned at 0."""
    from scipy.optimize import minimize

    players = sorted({b.model for b in battles} | {b.opponent for b in battles} - {baseline})
    index = {p: i for i, p in enumerate(players)}
    n = len(players)
    if n == 0:
        return {baseline: 0.0}
    rows = np.zeros((len(battles), n))
    for r, b in enumerate(battles):
        if b.model != baseline:
            rows[r, index[b.model]] += 1.0
        if b.opponent != baseline:
            rows[r, index[b.opponent]] -= 1.0
    wins = np.array([b.outcome * b.weight for b in battles])
    losses = np.array([(1.0 - b.outcome) * b.weight for b in battles])

    def nll(theta: np.ndarray) -> tuple[float, np.ndarray]:
        z = rows @ theta
        # -[w_win * log s(z) + w_loss * log s(-z)], stable form
        value = np.sum(wins * np.logaddexp(0.0, -z) + losses * np.logaddexp(0.0, z)) + L2 * theta @ theta
        p = 1.0 / (1.0 + np.exp(-z))
        grad = rows.T @ (-wins * (1.0 - p) + losses * p) + 2 * L2 * theta
        return float(value), grad

    # Start from each player's smoothed log-odds over the battles it played: exact for the harness's
    # battles (all against the baseline) up to the penalty, so the optimiser only polishes; from zero it
    # crawls along the flat likelihood of a model that lost (or won) every battle.
    as_model, as_opponent = rows > 0, rows < 0
    good = as_model.T @ wins + as_opponent.T @ losses
    bad = as_model.T @ losses + as_opponent.T @ wins
    start = np.log((good + 0.5) / (bad + 0.5))
    result = minimize(nll, start, jac=True, method="L-BFGS-B")
    return {baseline: 0.0, **{p: float(result.x[i]) for i, p in enumerate(players)}}


def win_rates(battles: Sequence[Battle], baseline: str) -> dict[str, float]:
    """Each model's predicted win probability against the baseline."""
    strengths = fit_strengths(battles, baseline)
    return {p: float(1.0 / (1.0 + np.exp(-s))) for p, s in strengths.items() if p != baseline}


def bootstrap_win_rates(
    battles: Sequence[Battle], baseline: str, rounds: int = 100, seed: int = 0
) -> dict[str, dict[str, float]]:
    """{model: {win_rate, ci_low, ci_high}}: the point fit and the 2.5/97.5% of refits on resampled prompts."""
    point = win_rates(battles, baseline)
    by_prompt: dict[str, list[Battle]] = {}
    for b in battles:
        by_prompt.setdefault(b.prompt, []).append(b)
    prompts = sorted(by_prompt)
    rng = np.random.default_rng(seed)
    samples: dict[str, list[float]] = {m: [] for m in point}
    for _ in range(rounds if prompts else 0):
        chosen = rng.integers(len(prompts), size=len(prompts))
        resampled = [b for i in chosen for b in by_prompt[prompts[i]]]
        rates = win_rates(resampled, baseline)
        for model in point:
            if model in rates:  # a model absent from the resample has no estimate in it
                samples[model].append(rates[model])
    out = {}
    for model, rate in point.items():
        lo, hi = np.percentile(samples[model], [2.5, 97.5]) if samples[model] else (np.nan, np.nan)
        out[model] = {"win_rate": rate, "ci_low": float(lo), "ci_high": float(hi)}
    return out
