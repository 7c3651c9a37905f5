"""Bradley-Terry against a baseline: with two players the MLE is the (weighted) win share, which pins
the fit down exactly; the bootstrap interval must contain the point estimate and shrink with data."""

import pytest

from evals.bradley_terry import Battle, bootstrap_win_rates, fit_strengths, win_rates


def battles(wins: int, ties: int, losses: int, model: str = "m") -> list[Battle]:
    out = [Battle(f"w{i}", model, "base", 1.0) for i in range(wins)]
    out += [Battle(f"t{i}", model, "base", 0.5) for i in range(ties)]
    out += [Battle(f"l{i}", model, "base", 0.0) for i in range(losses)]
    return out


@pytest.mark.parametrize("wins,ties,losses", [(3, 0, 1), (1, 2, 1), (2, 1, 7), (5, 5, 0)])
def test_two_player_win_rate_is_the_win_share(wins, ties, losses):
    share = (wins + 0.5 * ties) / (wins + ties + losses)
    assert win_rates(battles(wins, ties, losses), "base")["m"] == pytest.approx(share, abs=2e-3)


def test_strong_verdicts_count_by_weight():
    data = [Battle("a", "m", "base", 1.0, weight=3.0), Battle("b", "m", "base", 0.0)]
    assert win_rates(data, "base")["m"] == pytest.approx(0.75, abs=2e-3)


def test_orientation_does_not_matter():
    """A battle written from the baseline's side is the same evidence."""
    direct = [Battle("a", "m", "base", 1.0), Battle("b", "m", "base", 1.0), Battle("c", "m", "base", 0.0)]
    flipped = [Battle("a", "base", "m", 0.0), Battle("b", "base", "m", 0.0), Battle("c", "base", "m", 1.0)]
    assert win_rates(direct, "base")["m"] == pytest.approx(win_rates(flipped, "base")["m"], abs=1e-6)


def test_all_losses_stay_finite_and_near_zero():
    rate = win_rates(battles(0, 0, 20), "base")["m"]
    assert 0.0 <= rate < 0.01


def test_several_models_share_one_baseline():
    data = battles(3, 0, 1, "strong") + battles(1, 0, 3, "weak")
    rates = win_rates(data, "base")
    assert rates["strong"] == pytest.approx(0.75, abs=2e-3) and rates["weak"] == pytest.approx(0.25, abs=2e-3)
    assert fit_strengths(data, "base")["base"] == 0.0


def test_bootstrap_interval_brackets_the_estimate_and_narrows():
    small = bootstrap_win_rates(battles(6, 2, 4), "base", rounds=200, seed=1)["m"]
    large = bootstrap_win_rates(battles(60, 20, 40), "base", rounds=200, seed=1)["m"]
    for r in (small, large):
        assert r["ci_low"] <= r["win_rate"] <= r["ci_high"]
    assert (large["ci_high"] - large["ci_low"]) < (small["ci_high"] - small["ci_low"])
