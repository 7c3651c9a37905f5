"""Stage 2's fit and calibration on data with a known answer: it must switch where a per-prompt
signal exists, and stay on the best single expert where the scores are noise."""

from __future__ import annotations

import numpy as np
import pytest

from router_training.curve_report import frontier, heldout_curve, markdown, random_at_spend
from coe.routing.predictor import choose, gated_margin
from router_training.score_predictor import GATE_QUANTILE, fit_ridge, fit_stage2, knob_lams, mean_picked

EXPERTS = ("generalist", "specialist", "tiny")


def _data(n: int, signal: bool, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """x[:, 0] > 0 marks prompts the specialist answers well (when `signal`); the generalist is the
    best single expert; tiny is cheap and a little worse than the generalist."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 6))
    special = x[:, 0] > 0 if signal else rng.random(n) > 0.5
    generalist = (rng.random(n) < 0.6).astype(float)
    specialist = (rng.random(n) < np.where(special, 0.9, 0.2)).astype(float) if signal else (rng.random(n) < 0.55).astype(float)
    tiny = (rng.random(n) < 0.5).astype(float)
    return x, np.column_stack([generalist, specialist, tiny])


def test_ridge_recovers_a_linear_score_and_skips_unscored_rows() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(200, 3))
    y = np.column_stack([x @ [1.0, -2.0, 0.5] + 3, x[:, 0]])
    y[:20, 1] = np.nan
    model = fit_ridge(x, y, alpha=1e-6, experts=("a", "b"))
    np.testing.assert_allclose(model.predict(x, np.zeros((200, 0)))[:, 0], y[:, 0], atol=1e-6)
    assert np.isfinite(model.weights).all()


def test_with_a_per_prompt_signal_the_router_beats_the_best_single_expert() -> None:
    x, s = _data(1500, signal=True, seed=0)
    stage2 = fit_stage2(x[:900], s[:900], x[900:1200], s[900:1200], np.ones(3), 0, EXPERTS)
    report = stage2.report(x[1200:], s[1200:])
    assert report["gain_over_best"]["interval"][0] > 0  # significantly better on unseen prompts
    assert report["headroom_share"] > 0.3


def test_a_rule_that_loses_on_the_calibration_rows_is_turned_off() -> None:
    """Fit rows where the specialist wins on x0 > 0, calibration rows where that signal is reversed
    (a new prompt source): the switch rule cross-validation kept must be dropped, and the router
    then stays on the best single expert at coe:quality."""
    x, s = _data(1200, signal=True, seed=4)
    x_cal, s_cal = _data(300, signal=True, seed=5)
    x_cal = x_cal.copy()
    x_cal[:, 0] = -x_cal[:, 0]
    kept = fit_stage2(x[:900], s[:900], x[900:], s[900:], np.ones(3), 0, EXPERTS)
    dropped = fit_stage2(x[:900], s[:900], x_cal, s_cal, np.ones(3), 0, EXPERTS)
    assert kept.choice.calibration_gain > 0 and kept.choice.margin < 1.0
    assert dropped.choice.calibration_gain < 0 and dropped.choice.margin > 100
    assert dropped.points[0]["quality"] == pytest.approx(mean_picked(s_cal, np.zeros(300, dtype=int)))


def _comparisons(s: np.ndarray, pairs_per_row: int, seed: int) -> np.ndarray:
    """(row, a, b, outcome) judged from the true scores: the higher score wins, equal scores tie."""
    rng = np.random.default_rng(seed)
    table = []
    for row in range(len(s)):
        for _ in range(pairs_per_row):
            a, b = rng.choice(s.shape[1], size=2, replace=False)
            table.append((row, a, b, 0.5 if s[row, a] == s[row, b] else float(s[row, a] > s[row, b])))
    return np.array(table, dtype=float)


def test_a_preference_trained_rule_is_checked_on_the_raw_comparisons() -> None:
    """With the calibration rows' comparisons, the check uses them, not the imputed scores: a rule
    whose switches win their comparisons stays; reversed judgments, or too few comparisons of the
    pick against the best single expert to tell, drop it."""
    x, s = _data(1200, signal=True, seed=4)
    dense = _comparisons(s[900:], pairs_per_row=3, seed=0)
    kept = fit_stage2(x[:900], s[:900], x[900:], s[900:], np.ones(3), 0, EXPERTS, cal_comparisons=dense)
    reversed_ = dense.copy()
    reversed_[:, 3] = 1.0 - reversed_[:, 3]
    lost = fit_stage2(x[:900], s[:900], x[900:], s[900:], np.ones(3), 0, EXPERTS, cal_comparisons=reversed_)
    sparse = fit_stage2(x[:900], s[:900], x[900:], s[900:], np.ones(3), 0, EXPERTS, cal_comparisons=dense[:20])
    assert kept.choice.calibration_basis == "comparisons" and kept.choice.calibration_n >= 10
    assert kept.choice.calibration_gain > 0 and kept.choice.margin < 1.0
    assert lost.choice.calibration_gain < 0 and lost.choice.margin > 100
    assert sparse.choice.calibration_n < 10 and sparse.choice.margin > 100


def test_quality_switches_are_gated_on_stage_one_confidence() -> None:
    """The gate is the calibration rows' GATE_QUANTILE of stage-1 confidence: held-out prompts below
    it stay on the best single expert, the rest switch as without the gate, and the calibrated
    operating points are those of the gated rule."""
    x, s = _data(1500, signal=True, seed=0)
    confidence = np.random.default_rng(7).random(1500)
    plain = fit_stage2(x[:900], s[:900], x[900:1200], s[900:1200], np.ones(3), 0, EXPERTS)
    gated = fit_stage2(x[:900], s[:900], x[900:1200], s[900:1200], np.ones(3), 0, EXPERTS,
                       confidence_cal=confidence[900:1200])
    assert gated.choice.min_confidence == pytest.approx(np.quantile(confidence[900:1200], GATE_QUANTILE))
    predicted = gated.predictor.predict(x[1200:], np.zeros((300, 0)))
    low = confidence[1200:] < gated.choice.min_confidence
    picks = choose(predicted, np.ones(3), 0.0, gated_margin(gated.choice.margin, confidence[1200:],
                                                            gated.choice.min_confidence), 0)
    unguarded = choose(predicted, np.ones(3), 0.0, gated.choice.margin, 0)
    assert low.any() and (unguarded[low] != 0).any()  # the gate has switches to stop
    assert (picks[low] == 0).all() and (picks[~low] == unguarded[~low]).all()
    report = gated.report(x[1200:], s[1200:], confidence=confidence[1200:])
    assert report["router_quality"]["switched"] == pytest.approx(float((picks != 0).mean()))
    assert gated.points != plain.points  # calibrated on the gated rule


def test_on_noise_it_stays_within_noise_of_the_best_single_expert() -> None:
    x, s = _data(1500, signal=False, seed=2)
    stage2 = fit_stage2(x[:900], s[:900], x[900:1200], s[900:1200], np.ones(3), 0, EXPERTS)
    report = stage2.report(x[1200:], s[1200:])
    low, high = report["gain_over_best"]["interval"]
    assert low <= 0 <= high or report["router_quality"]["switched"] < 0.05


def test_prices_trade_quality_for_spend_and_knobs_follow_the_calibration() -> None:
    x, s = _data(1500, signal=True, seed=3)
    costs = np.array([1.0, 1.0, 0.05])
    stage2 = fit_stage2(x[:900], s[:900], x[900:1200], s[900:1200], costs, 0, EXPERTS)
    spends = [p["spend"] for p in stage2.points]
    assert spends[0] > 0.9 and spends[-1] == pytest.approx(0.05)  # lam 0 spends, a huge lam sends all to tiny
    assert stage2.knobs["quality"] == 0.0 <= stage2.knobs["balanced"] <= stage2.knobs["cheap"]
    report = stage2.report(x[1200:], s[1200:])
    assert "| balanced" in markdown(report, "t") or "balanced" in markdown(report, "t")


def test_knob_floors_are_shares_of_the_gain_over_the_cheapest() -> None:
    points = [{"lam": 0.0, "spend": 1.0, "quality": 1.0}, {"lam": 1.0, "spend": 0.5, "quality": 0.98},
              {"lam": 2.0, "spend": 0.2, "quality": 0.92}, {"lam": 3.0, "spend": 0.0, "quality": 0.5}]
    assert knob_lams(points, cheapest_quality=0.5) == {"quality": 0.0, "balanced": 1.0, "cheap": 2.0}


def test_random_routing_mixes_the_two_frontier_experts_around_the_spend() -> None:
    costs, scores = np.array([0.1, 1.0, 0.5]), np.array([[0.2, 1.0, 0.1], [0.4, 0.8, 0.3]])
    assert frontier(costs, scores.mean(axis=0)) == [0, 1]  # expert 2 is dominated
    mixed = random_at_spend(0.55, costs, scores)
    np.testing.assert_allclose(mixed, 0.5 * scores[:, 0] + 0.5 * scores[:, 1])


def test_headroom_share_is_what_the_router_gains_over_what_the_oracle_gains() -> None:
    s = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.0, 0.0]])
    predicted = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 0.0]])  # right on both switchable rows
    report = heldout_curve(s, predicted, np.ones(2), ["a", "b"], best=0, margin=0.0, lams=[0.0], knob_lams={"quality": 0.0})
    assert report["headroom_share"] == 1.0 and report["router_quality"]["quality"] == 0.75
    assert mean_picked(s, np.zeros(4, dtype=int)) == 0.5
