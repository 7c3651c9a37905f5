"""Pairwise preferences -> per-prompt scores, so `--scores` also takes Arena-style judgments.

A preference line says which of two experts' answers to one prompt was better
(``{"prompt", "category", "model_a", "model_b", "winner": "model_a" | "model_b" | "tie"}``, the
Chatbot Arena convention). Stage 2 learns from a per-prompt score for every expert, so the
comparisons are turned into Bradley-Terry strengths (P(a beats b) = sigmoid(s_a - s_b)), fitted in
three levels, each the prior of the next:

  global    every comparison in the file, prior N(0, 1/TAU_GLOBAL)
  category  the comparisons of one category, prior N(global, 1/TAU_CATEGORY)
  prompt    the comparisons of one prompt, prior N(category, 1/TAU_PROMPT)

A prompt with one comparison moves only the two experts it compared, and only part of the way; an
expert never compared on a prompt keeps its category's strength. The scores are in logit units: the
held-out report of a router trained on them is in those units too (a win-rate per prompt is what a
dense tournament gives; a single comparison mostly gives the category's ranking).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

TAU_GLOBAL = 0.1
TAU_CATEGORY = 1.0
TAU_PROMPT = 1.0
NEWTON_STEPS = 25
WINNERS = {"model_a": 1.0, "model_b": 0.0, "tie": 0.5, "tie (bothbad)": 0.5}


@dataclass(frozen=True)
class Comparison:
    prompt: str
    category: str
    a: str
    b: str
    outcome: float  # 1: a won, 0: b won, 0.5: tie


def parse_winner(value: object) -> float:
    """The Arena names, or the name of the winning side; anything else is a data error."""
    if value in WINNERS:
        return WINNERS[str(value)]
    raise ValueError(f"winner must be one of {', '.join(repr(w) for w in WINNERS)}, got {value!r}")


def fit_strengths(pairs: np.ndarray, outcomes: np.ndarray, prior: np.ndarray, tau: float) -> np.ndarray:
    """MAP Bradley-Terry strengths of len(prior) experts from comparisons ``pairs[k] = (a, b)``.

    Newton's method on the log posterior; the Gaussian prior makes it strictly concave, so it
    converges in a few steps and is defined even for an expert with no comparison (it stays at its
    prior)."""
    s = prior.astype(float).copy()
    if len(pairs) == 0:
        return s
    a, b = pairs[:, 0], pairs[:, 1]
    n = len(prior)
    for _ in range(NEWTON_STEPS):
        p = 1.0 / (1.0 + np.exp(-(s[a] - s[b])))
        residual = outcomes - p
        grad = -tau * (s - prior)
        np.add.at(grad, a, residual)
        np.add.at(grad, b, -residual)
        w = p * (1.0 - p)
        hess = np.diag(np.full(n, tau))
        np.add.at(hess, (a, a), w)
        np.add.at(hess, (b, b), w)
        np.add.at(hess, (a, b), -w)
        np.add.at(hess, (b, a), -w)
        step = np.linalg.solve(hess, grad)
        s += step
        if np.abs(step).max() < 1e-8:
            break
    return s


def preference_scores(comparisons: Sequence[Comparison], experts: Sequence[str]) -> tuple[list[tuple[str, str]], np.ndarray]:
    """One row per (prompt, category) in first-seen order, one column per expert: the prompt-level
    strengths. A comparison with an expert outside ``experts`` is dropped: the router cannot send
    there, and the file may hold more models than the arrangement serves."""
    index = {e: j for j, e in enumerate(experts)}
    kept = [c for c in comparisons if c.a in index and c.b in index and c.a != c.b]
    keys = list(dict.fromkeys((c.prompt, c.category) for c in kept))
    row_of = {key: i for i, key in enumerate(keys)}
    rows = np.array([row_of[(c.prompt, c.category)] for c in kept], dtype=int)
    pairs = np.array([(index[c.a], index[c.b]) for c in kept], dtype=int).reshape(-1, 2)
    outcomes = np.array([c.outcome for c in kept], dtype=float)
    categories = np.array([c.category for c in kept])

    n = len(experts)
    global_s = fit_strengths(pairs, outcomes, np.zeros(n), TAU_GLOBAL)
    category_s = {cat: fit_strengths(pairs[categories == cat], outcomes[categories == cat], global_s, TAU_CATEGORY)
                  for cat in dict.fromkeys(categories.tolist())}
    matrix = np.empty((len(keys), n))
    order = np.argsort(rows, kind="stable")
    bounds = np.searchsorted(rows[order], np.arange(len(keys) + 1))
    for i, (_, category) in enumerate(keys):
        mine = order[bounds[i]:bounds[i + 1]]
        matrix[i] = fit_strengths(pairs[mine], outcomes[mine], category_s[category], TAU_PROMPT)
    return keys, matrix


def comparison_table(comparisons: Sequence[Comparison], experts: Sequence[str],
                     row_of: dict[tuple[str, str], int]) -> np.ndarray:
    """(row, a, b, outcome) per comparison between two of `experts` on a prompt in `row_of`
    ((prompt, category) -> row): the raw judgments a router trained on them is checked against."""
    index = {e: j for j, e in enumerate(experts)}
    table = [(row_of[(c.prompt, c.category)], index[c.a], index[c.b], c.outcome) for c in comparisons
             if c.a in index and c.b in index and c.a != c.b and (c.prompt, c.category) in row_of]
    return np.array(table, dtype=float).reshape(-1, 4)
