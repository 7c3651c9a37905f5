"""Fitting stage 2's per-prompt score predictor and calibrating its knobs (served by coe.routing.predictor).

Three steps, each on data the next one does not see:
  fit         ridge regression of every expert's score on [embedding, category probabilities]; the
              ridge strength and the switch margin are chosen by cross-validation inside the
              training rows, maximising the lower bound (mean - 1 s.e.) of the out-of-fold gain
              over the best single expert (never switching scores exactly 0)
  calibrate   on the calibration rows: for a grid of cost prices `lam`, the spend and quality the
              served rule reaches; the knobs (balanced, cheap, budget-B) are points of that curve
  report      on the held-out rows (router_training.curve_report)

Why ridge: on the AlpacaEval matrix and the local experts, kNN regression and ridge were within noise
of each other in a leave-one-source-out probe on AlpacaEval, and ridge is two small arrays to ship, where kNN would ship every
training embedding and cost a matrix product against all of them per request.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from coe.routing.predictor import ScorePredictor, choose, gated_margin

ALPHAS = (0.1, 1.0, 10.0, 100.0, 1000.0)
# Switch margins in units of the scores' standard deviation; the last one means "never switch on
# predicted quality alone" (a price can still move cheap prompts).
MARGINS_SD = (0.0, 0.05, 0.1, 0.2, 0.35, 0.5, 1.0, 1e3)
N_FOLDS = 5
STANDARD_ERRORS = 1.0  # how far above noise an out-of-fold gain must be for a switch rule to be kept
# A router trained from pairwise preferences checks its switches on the calibration prompts'
# comparisons of the pick against the best single expert; with fewer of them, it does not switch.
MIN_DIRECT_COMPARISONS = 10
# Quality switches need stage 1 to recognise the prompt: a top-category probability at least this
# quantile of the calibration prompts' (so 20% of in-distribution prompts lose their switches). Picked
# among five novelty gates (this one at 20%, nearest-neighbour similarity at 5% / 20%, ridge leverage
# at 80% / 95%) in a probe on the MMLU splits, held-out domains included: the MMLU numbers are not an
# independent test of it, AlpacaEval's are.
GATE_QUANTILE = 0.2


def features(vectors: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
    return np.hstack([np.asarray(vectors, dtype=np.float64), np.asarray(probabilities, dtype=np.float64)])


def fit_ridge(x: np.ndarray, y: np.ndarray, alpha: float, experts: Sequence[str]) -> ScorePredictor:
    """One ridge per expert (unpenalised intercept), each on the rows where that expert has a score."""
    dim = x.shape[1]
    weights, bias = np.zeros((dim, y.shape[1])), np.zeros(y.shape[1])
    for j in range(y.shape[1]):
        rows = np.isfinite(y[:, j])
        if not rows.any():
            bias[j] = np.nan
            continue
        xj, yj = x[rows], y[rows, j]
        mean_x, mean_y = xj.mean(axis=0), yj.mean()
        xc = xj - mean_x
        # Dual form when rows < dims (the usual K-shot case): (X X^T + aI)^-1 y, then X^T times it.
        if len(xc) < dim:
            w = xc.T @ np.linalg.solve(xc @ xc.T + alpha * np.eye(len(xc)), yj - mean_y)
        else:
            w = np.linalg.solve(xc.T @ xc + alpha * np.eye(dim), xc.T @ (yj - mean_y))
        weights[:, j], bias[j] = w, mean_y - mean_x @ w
    return ScorePredictor(weights, bias, tuple(experts))


def mean_picked(scores: np.ndarray, picks: np.ndarray) -> float:
    """Mean true score of the picked experts over rows where every expert is scored."""
    full = np.isfinite(scores).all(axis=1)
    return float(scores[full][np.arange(full.sum()), picks[full]].mean()) if full.any() else float("nan")


@dataclass(frozen=True)
class PredictorChoice:
    alpha: float
    margin: float  # in score units
    cv_quality: float  # mean score of the rule's picks, out of fold
    cv_best_single: float  # the best single expert's mean on the same rows
    folds: int
    calibration_gain: float = float("nan")  # the rule's mean gain over the best single on the calibration rows
    calibration_basis: str = "scores"  # or "comparisons": pick vs best single, +1 won / 0 tie / -1 lost
    calibration_n: int = 0  # calibration rows (scores) or direct comparisons the check saw
    min_confidence: float = 0.0  # stage-1 confidence below which no switch is made for quality


def cv_folds(n: int, groups: Sequence[str] | None, seed: int) -> list[np.ndarray]:
    """Held-out index sets: seeded random folds, or, given `groups` with three or more labels, folds
    that hold out whole labels (a switch then has to pay on a category the predictor did not learn
    from). Training uses random folds: a category-level winner is real signal for categories stage 1
    knows, and holding categories out would forbid exactly that switch."""
    labels = sorted(set(groups)) if groups is not None else []
    if len(labels) >= 3:
        order = np.random.default_rng(seed).permutation(len(labels))
        fold_of = {labels[j]: i % min(N_FOLDS, len(labels)) for i, j in enumerate(order)}
        assigned = np.array([fold_of[g] for g in groups])
        return [np.flatnonzero(assigned == f) for f in range(min(N_FOLDS, len(labels)))]
    return [part for part in np.array_split(np.random.default_rng(seed).permutation(n), min(N_FOLDS, n)) if len(part)]


def lower_bound(gains: np.ndarray) -> float:
    """Mean gain over the best single expert minus one standard error: a rule is only preferred to
    "never switch" (gain exactly 0) when its out-of-fold gain is more than noise."""
    gains = gains[np.isfinite(gains)]
    if len(gains) < 2:
        return float("-inf")
    return float(gains.mean() - STANDARD_ERRORS * gains.std(ddof=1) / np.sqrt(len(gains)))


def select_predictor(x: np.ndarray, y: np.ndarray, best: int, experts: Sequence[str], seed: int,
                     groups: Sequence[str] | None = None) -> PredictorChoice:
    """Ridge strength by cross-validation on the training rows (the out-of-fold error of each expert's
    predicted score difference to the best single expert), then the margin maximising the lower bound
    of the out-of-fold gain over the best single expert; never switching (the largest margin) wins
    every tie."""
    n = len(x)
    sd = float(np.nanstd(y)) or 1.0
    never = MARGINS_SD[-1] * sd
    full = np.isfinite(y).all(axis=1)
    parts = cv_folds(n, groups, seed)
    if len(parts) < 2 or full.sum() < 2:
        return PredictorChoice(ALPHAS[-1], never, float("nan"), float("nan"), len(parts))
    rows = np.arange(n)
    # The ridge strength that best predicts each expert's score difference to the best single expert
    # (what the rule compares); then the margin on that strength's out-of-fold predictions.
    fitted: list[tuple[float, float, np.ndarray]] = []  # (error, alpha, out-of-fold predictions)
    for alpha in ALPHAS:
        oof = np.zeros_like(y, dtype=np.float64)
        for part in parts:
            mask = np.ones(n, bool)
            mask[part] = False
            model = fit_ridge(x[mask], y[mask], alpha, experts)
            oof[part] = np.nan_to_num(model.predict(x[part], np.zeros((len(part), 0))), nan=-np.inf)
        error = np.nanmean(((oof - oof[:, [best]]) - (y - y[:, [best]]))[full] ** 2)
        fitted.append((float(error) if np.isfinite(error) else np.inf, alpha, oof))
    _, alpha, oof = min(fitted, key=lambda f: (f[0], -f[1]))
    results: list[tuple[float, float, float]] = []  # (bound, margin in sd, quality)
    for m in MARGINS_SD:
        picks = choose(oof, np.zeros(y.shape[1]), 0.0, m * sd, best)
        gains = np.where(full, y[rows, picks] - y[:, best], np.nan)
        bound = 0.0 if m == MARGINS_SD[-1] else lower_bound(gains)
        results.append((bound, m, mean_picked(y, picks)))
    bound, m, quality = max(results, key=lambda r: (round(r[0], 12), r[1]))
    return PredictorChoice(alpha, m * sd, quality, mean_picked(y, np.full(n, best)), len(parts))


def comparison_gains(picks: np.ndarray, comparisons: np.ndarray, best: int) -> np.ndarray:
    """+1 (pick won), 0 (tie), -1 (pick lost) for each comparison between a prompt's pick and the best
    single expert, on prompts where the rule switched. `comparisons` rows are (row, a, b, outcome),
    outcome 1 when a won. The raw judgments, where imputed per-prompt scores would mostly repeat the
    category prior the predictor already learned from."""
    if len(comparisons) == 0:
        return np.zeros(0)
    row, a, b = (comparisons[:, k].astype(int) for k in range(3))
    outcome = comparisons[:, 3]
    pick = picks[row]
    direct = (pick != best) & (((a == pick) & (b == best)) | ((a == best) & (b == pick)))
    pick_won = np.where(a == pick, outcome, 1.0 - outcome)
    return 2.0 * pick_won[direct] - 1.0


def validated(choice: PredictorChoice, predicted_cal: np.ndarray, s_cal: np.ndarray, best: int,
              sd: float, comparisons: np.ndarray | None = None, confidence: np.ndarray | None = None) -> PredictorChoice:
    """The switch rule checked once on rows neither the ridge nor the margin saw: where its switches
    lose to the best single expert on the calibration rows (mean gain below 0), it is dropped for
    "never switch on predicted quality". Cross-validation picks the best of several margins on the
    same rows, so its winner is optimistic; this second look catches the rules that won by chance.

    Given the calibration rows' pairwise `comparisons`, the check uses them instead of the scores
    imputed from them: the switched prompts' comparisons of pick against best single must be at least
    MIN_DIRECT_COMPARISONS and won more often than lost, else the rule is dropped (a switch the data
    cannot check is not made). `confidence`: the rows' stage-1 confidence, for the gate."""
    margin = gated_margin(choice.margin, confidence, choice.min_confidence)
    picks = choose(predicted_cal, np.zeros(predicted_cal.shape[1]), 0.0, margin, best)
    never = MARGINS_SD[-1] * sd
    if comparisons is not None:
        gains = comparison_gains(picks, comparisons, best)
        gain = float(gains.mean()) if len(gains) else float("nan")
        checked = replace(choice, calibration_gain=gain, calibration_basis="comparisons", calibration_n=len(gains))
        if choice.margin < never and (len(gains) < MIN_DIRECT_COMPARISONS or gain <= 0):
            return replace(checked, margin=never)
        return checked
    full = np.isfinite(s_cal).all(axis=1)
    gain = mean_picked(s_cal, picks) - mean_picked(s_cal, np.full(len(s_cal), best)) if full.any() else float("nan")
    checked = replace(choice, calibration_gain=float(gain), calibration_n=int(full.sum()))
    if choice.margin < never and np.isfinite(gain) and gain < 0:
        return replace(checked, margin=never)
    return checked


def lam_grid(scores: np.ndarray) -> list[float]:
    """Prices from 0 to far past the score range: the last points send everything to the cheapest."""
    spread = float(np.nanmax(scores) - np.nanmin(scores)) if np.isfinite(scores).any() else 1.0
    return [0.0] + [float(v) for v in (spread or 1.0) * np.geomspace(1e-3, 1e3, 61)]


def operating_points(predicted: np.ndarray, scores: np.ndarray, costs: np.ndarray, margin: float | np.ndarray, best: int,
                     lams: Sequence[float]) -> list[dict[str, float]]:
    """Spend (mean relative cost of the picks) and quality of the served rule at each price."""
    points = []
    for lam in lams:
        picks = choose(predicted, costs, lam, margin, best)
        points.append({"lam": float(lam), "spend": float(costs[picks].mean()), "quality": mean_picked(scores, picks)})
    return points


def knob_lams(points: list[dict[str, float]], cheapest_quality: float) -> dict[str, float]:
    """quality: lam 0; balanced / cheap: the highest price that keeps 95% / 80% of coe:quality's gain
    over sending everything to the cheapest expert (scale-free, so scores may be in any range)."""
    top = points[0]["quality"]
    lams = {"quality": 0.0}
    for mode, keep in (("balanced", 0.95), ("cheap", 0.80)):
        floor = cheapest_quality + keep * (top - cheapest_quality)
        kept = [p["lam"] for p in points if np.isfinite(p["quality"]) and p["quality"] >= floor - 1e-12]
        lams[mode] = max(kept) if kept else 0.0
    return lams


@dataclass(frozen=True)
class Stage2:
    """A fitted, calibrated per-prompt stage 2: what the artifact stores and the reports evaluate."""

    predictor: ScorePredictor
    choice: PredictorChoice
    costs: np.ndarray  # relative, per expert
    best: int
    lams: list[float]
    points: list[dict[str, float]]  # calibrated operating points
    knobs: dict[str, float]  # mode -> lam

    def report(self, x: np.ndarray, scores: np.ndarray, seed: int = 0, confidence: np.ndarray | None = None) -> dict:
        from router_training.curve_report import heldout_curve

        predicted = self.predictor.predict(x, np.zeros((len(x), 0)))
        margin = gated_margin(self.choice.margin, confidence, self.choice.min_confidence)
        return heldout_curve(scores, predicted, self.costs, self.predictor.experts, self.best, margin,
                             self.lams, self.knobs, seed=seed)


def fit_stage2(x_fit: np.ndarray, s_fit: np.ndarray, x_cal: np.ndarray, s_cal: np.ndarray, costs: np.ndarray,
               best: int, experts: Sequence[str], seed: int = 0, groups: Sequence[str] | None = None,
               cal_comparisons: np.ndarray | None = None, confidence_cal: np.ndarray | None = None) -> Stage2:
    """Predictor (and its ridge strength and margin) from the fit rows, `groups` their categories;
    operating points and knob prices from the calibration rows. `cal_comparisons` (row in the
    calibration rows, a, b, outcome): the pairwise judgments the scores were imputed from, when they were.
    `confidence_cal`: the calibration rows' stage-1 top probability; given, quality switches are gated
    on it (GATE_QUANTILE) and the report must be given the held-out rows' confidence too."""
    choice = select_predictor(x_fit, s_fit, best, experts, seed, groups)
    predictor = fit_ridge(x_fit, s_fit, choice.alpha, experts)
    predicted_cal = predictor.predict(x_cal, np.zeros((len(x_cal), 0)))
    if confidence_cal is not None and len(confidence_cal):
        choice = replace(choice, min_confidence=float(np.quantile(confidence_cal, GATE_QUANTILE)))
    choice = validated(choice, predicted_cal, s_cal, best, float(np.nanstd(s_fit)) or 1.0, cal_comparisons, confidence_cal)
    lams = lam_grid(s_fit)
    margin = gated_margin(choice.margin, confidence_cal, choice.min_confidence)
    points = operating_points(predicted_cal, s_cal, costs, margin, best, lams)
    cheapest = int(np.argmin(costs)) if len(set(costs.tolist())) > 1 else best
    knobs = knob_lams(points, mean_picked(s_cal, np.full(len(s_cal), cheapest)))
    return Stage2(predictor, choice, costs, best, lams, points, knobs)
