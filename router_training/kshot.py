"""Stage 2 of CoE's router: the category -> expert map, chosen by K-shot selection.

The CoE paper labels only K prompts per category and keeps, for each category, the expert that scores
best on them. With K small the winner is often noise, so every choice here carries a paired bootstrap
interval and an explicit TIE flag: a caller (and a report) can see when a category's choice is not
backed by the data. An optional parameter budget trades a bounded quality loss for smaller experts,
which is the paper's quality/size trade-off.
"""

from __future__ import annotations

import warnings
import zlib
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

__all__ = ["ExpertMap", "ReportRow", "select_experts"]


@dataclass(frozen=True)
class ReportRow:
    """One candidate expert's evidence in one category (kept for every candidate, not only the winner,
    so a reviewer can see how close the race was)."""

    category: str
    expert: str
    mean: float
    ci_low: float
    ci_high: float
    n: int
    chosen: bool
    tie_with: list[str] = field(default_factory=list)
    active_params: float | None = None


@dataclass
class ExpertMap:
    """The routing table plus the evidence behind it; JSON round-trips so a trained map can ship in
    config and still explain itself."""

    mapping: dict[str, str]
    fallback: str
    rows: list[ReportRow]
    k: int | None = None
    seed: int = 0
    n_boot: int = 1000
    max_loss: float | None = None
    relative_loss: bool = False
    mean_active_params: float | None = None

    def route(self, category: str) -> str:
        """Unknown categories go to the fallback rather than failing: a classifier may emit a label
        that had no selection data."""
        return self.mapping.get(category, self.fallback)

    def ties(self) -> dict[str, list[str]]:
        """Categories whose choice the data cannot separate from other experts."""
        return {r.category: list(r.tie_with) for r in self.rows if r.chosen and r.tie_with}

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["rows"] = [_row_to_json(r) for r in self.rows]
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ExpertMap":
        fields = dict(data)
        fields["rows"] = [ReportRow(**_row_from_json(r)) for r in fields.get("rows", [])]
        fields["mapping"] = dict(fields["mapping"])
        return cls(**fields)


def _row_to_json(row: ReportRow) -> dict[str, Any]:
    # NaN is not valid JSON; None keeps the file loadable by strict parsers.
    out = asdict(row)
    for key in ("mean", "ci_low", "ci_high"):
        if out[key] is not None and not np.isfinite(out[key]):
            out[key] = None
    return out


def _row_from_json(data: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(data)
    for key in ("mean", "ci_low", "ci_high"):
        if out.get(key) is None:
            out[key] = float("nan")
    out["tie_with"] = list(out.get("tie_with") or [])
    return out


def _category_rng(seed: int, category: str) -> np.random.Generator:
    # Per-category streams keyed by a stable hash: adding a category does not reshuffle the others.
    return np.random.default_rng([seed, zlib.crc32(category.encode("utf-8"))])


def _nanmean(a: np.ndarray, axis: int) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=RuntimeWarning)
        return np.nanmean(a, axis=axis)


def _nanpercentile(a: np.ndarray, q: float) -> np.ndarray:
    with warnings.catch_warnings():  # an expert never scored in this category: NaN is the answer
        warnings.simplefilter("ignore", category=RuntimeWarning)
        return np.nanpercentile(a, q, axis=0)


def _eligible(means: np.ndarray, best: float, max_loss: float | None, relative: bool) -> np.ndarray:
    ok = np.isfinite(means)
    if max_loss is None:
        return ok & (means >= best)
    floor = best - abs(best) * max_loss if relative else best - max_loss
    return ok & (means >= floor - 1e-12)


def select_experts(
    scores: np.ndarray,
    categories: Sequence[str],
    expert_ids: Sequence[str],
    *,
    k: int | None = None,
    seed: int = 0,
    n_boot: int = 1000,
    alpha: float = 0.05,
    active_params: Mapping[str, float] | Sequence[float] | None = None,
    max_loss: float | None = None,
    relative_loss: bool = False,
) -> ExpertMap:
    """Build the category -> expert map from per-prompt scores.

    ``scores`` is ``[n_prompts, n_experts]`` with NaN for "not scored"; a prompt with no score at all is
    unlabelled and never sampled. ``k=None`` uses every labelled prompt of a category. With
    ``max_loss`` set (and ``active_params`` given) each category takes the expert with the fewest active
    parameters whose mean is within ``max_loss`` of the category's best (a fraction of it when
    ``relative_loss``). Bootstrap resamples are shared across experts, so intervals on differences are
    paired: experts that fail on the same prompts are compared on equal terms.
    """
    scores = np.asarray(scores, dtype=float)
    experts = list(expert_ids)
    if scores.ndim != 2 or scores.shape != (len(categories), len(experts)):
        raise ValueError(
            f"scores must be [n_prompts={len(categories)}, n_experts={len(experts)}], got {scores.shape}"
        )
    if k is not None and k < 1:
        raise ValueError(f"k must be >= 1 or None, got {k}")
    if max_loss is not None and active_params is None:
        raise ValueError("max_loss needs active_params: the budget trades quality for parameters")
    params = _params_vector(active_params, experts)

    cats = np.asarray([str(c) for c in categories])
    labelled = ~np.all(np.isnan(scores), axis=1)
    if not labelled.any():
        raise ValueError("no labelled prompts: every score is NaN")
    overall = _nanmean(scores[labelled], axis=0)
    fallback = experts[int(np.nanargmax(overall))]

    mapping: dict[str, str] = {}
    rows: list[ReportRow] = []
    weights: dict[str, int] = {}
    for category in sorted(set(cats.tolist())):
        idx = np.flatnonzero((cats == category) & labelled)
        if idx.size == 0:
            continue
        rng = _category_rng(seed, category)
        if k is not None and idx.size > k:
            idx = np.sort(rng.choice(idx, size=k, replace=False))
        chosen, cat_rows = _select_one(
            scores[idx], category, experts, params, rng, n_boot, alpha, max_loss, relative_loss
        )
        if chosen is None:
            continue
        mapping[category] = chosen
        rows.extend(cat_rows)
        weights[category] = int(np.sum((cats == category) & labelled))

    mean_params = None
    if params is not None and mapping:
        # Weighted by each category's share of labelled prompts: that is the traffic mix the map sees.
        total = sum(weights.values())
        mean_params = float(
            sum(params[experts.index(e)] * weights[c] for c, e in mapping.items()) / total
        )
    return ExpertMap(
        mapping=mapping,
        fallback=fallback,
        rows=rows,
        k=k,
        seed=seed,
        n_boot=n_boot,
        max_loss=max_loss,
        relative_loss=relative_loss,
        mean_active_params=mean_params,
    )


def _params_vector(
    active_params: Mapping[str, float] | Sequence[float] | None, experts: list[str]
) -> np.ndarray | None:
    if active_params is None:
        return None
    if isinstance(active_params, Mapping):
        missing = [e for e in experts if e not in active_params]
        if missing:
            raise ValueError(f"active_params lacks experts: {missing}")
        return np.asarray([float(active_params[e]) for e in experts])
    vec = np.asarray(list(active_params), dtype=float)
    if vec.shape != (len(experts),):
        raise ValueError(f"active_params has {vec.size} values for {len(experts)} experts")
    return vec


def _select_one(
    s: np.ndarray,
    category: str,
    experts: list[str],
    params: np.ndarray | None,
    rng: np.random.Generator,
    n_boot: int,
    alpha: float,
    max_loss: float | None,
    relative: bool,
) -> tuple[str | None, list[ReportRow]]:
    n_scored = np.sum(~np.isnan(s), axis=0)
    means = _nanmean(s, axis=0)
    if not np.isfinite(means).any():
        return None, []
    best = float(np.nanmax(means))
    cand = np.flatnonzero(_eligible(means, best, max_loss, relative))
    if params is not None and max_loss is not None:
        # Fewest parameters first; among equals, the better mean; then config order for determinism.
        order = sorted(cand, key=lambda j: (params[j], -means[j], j))
    else:
        order = sorted(cand, key=lambda j: (-means[j], params[j] if params is not None else 0.0, j))
    c = int(order[0])

    n = s.shape[0]
    lo_q, hi_q = 100 * alpha / 2, 100 * (1 - alpha / 2)
    if n >= 2:
        boot_idx = rng.integers(0, n, size=(n_boot, n))
        boot_means = _nanmean(s[boot_idx], axis=1)  # [n_boot, n_experts], same resamples for all
        ci_low = _nanpercentile(boot_means, lo_q)
        ci_high = _nanpercentile(boot_means, hi_q)
        diffs = _nanmean((s[:, [c]] - s)[boot_idx], axis=1)  # paired: only prompts both experts saw
        d_low = _nanpercentile(diffs, lo_q)
        d_high = _nanpercentile(diffs, hi_q)
        tied = [(d_low[j] <= 0.0 <= d_high[j]) for j in range(len(experts))]
    else:
        # One prompt cannot separate anything: say so instead of reporting a zero-width interval.
        ci_low = np.full(len(experts), np.nan)
        ci_high = np.full(len(experts), np.nan)
        tied = [True] * len(experts)

    tie_names = [experts[j] for j in range(len(experts)) if j != c and np.isfinite(means[j]) and tied[j]]
    rows = []
    for j, name in enumerate(experts):
        if j == c:
            tie_with = tie_names
        else:
            tie_with = [experts[c]] if name in tie_names else []
        rows.append(
            ReportRow(
                category=category,
                expert=name,
                mean=float(means[j]),
                ci_low=float(ci_low[j]),
                ci_high=float(ci_high[j]),
                n=int(n_scored[j]),
                chosen=j == c,
                tie_with=tie_with,
                active_params=None if params is None else float(params[j]),
            )
        )
    return experts[c], rows
