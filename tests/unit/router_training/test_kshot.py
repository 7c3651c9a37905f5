from __future__ import annotations

import json

import numpy as np
import pytest

from router_training.kshot import ExpertMap, select_experts


def _synthetic(n_per_cat: int = 40, seed: int = 0) -> tuple[np.ndarray, list[str]]:
    """Category a: expert 2 is best by a wide margin; category b: expert 0 is."""
    rng = np.random.default_rng(seed)
    base = {"a": [0.5, 0.5, 0.9, 0.4], "b": [0.9, 0.5, 0.5, 0.4]}
    rows, cats = [], []
    for cat, means in base.items():
        rows.append(np.asarray(means) + rng.normal(0, 0.05, size=(n_per_cat, 4)))
        cats += [cat] * n_per_cat
    return np.vstack(rows), cats


EXPERTS = ["e0", "e1", "e2", "e3"]


def test_picks_the_known_best_expert_with_no_tie() -> None:
    scores, cats = _synthetic()
    emap = select_experts(scores, cats, EXPERTS, seed=1)
    assert emap.mapping == {"a": "e2", "b": "e0"}
    assert emap.ties() == {}
    chosen = {r.category: r for r in emap.rows if r.chosen}
    assert chosen["a"].ci_low < chosen["a"].mean < chosen["a"].ci_high
    assert chosen["a"].n == 40 and chosen["a"].tie_with == []
    assert emap.route("unknown") == emap.fallback
    # Overall means: e0 0.7, e2 0.7 are the top two; the fallback must be one of them, not e1/e3.
    assert emap.fallback in {"e0", "e2"}


def test_identical_experts_are_flagged_as_tie() -> None:
    scores, cats = _synthetic()
    scores = np.column_stack([scores, scores[:, 2]])  # e4 is a copy of e2
    emap = select_experts(scores, cats, [*EXPERTS, "e4"], seed=1)
    assert emap.mapping["a"] in {"e2", "e4"}
    other = "e4" if emap.mapping["a"] == "e2" else "e2"
    assert emap.ties()["a"] == [other]
    assert "b" not in emap.ties()


def test_runner_up_within_noise_is_a_tie() -> None:
    rng = np.random.default_rng(0)
    scores = rng.normal(0.7, 0.2, size=(20, 2))
    scores[:, 1] = scores[:, 0] + rng.normal(0.0, 0.2, size=20)
    emap = select_experts(scores, ["c"] * 20, ["x", "y"], seed=0)
    assert emap.ties()["c"]


def test_budget_mode_takes_the_smaller_expert_within_tolerance() -> None:
    cats = ["c"] * 50
    rng = np.random.default_rng(0)
    big = 0.80 + rng.normal(0, 0.01, 50)
    small = big - 0.02
    scores = np.column_stack([big, small])
    params = {"big": 70e9, "small": 7e9}
    quality = select_experts(scores, cats, ["big", "small"], active_params=params)
    assert quality.mapping["c"] == "big"
    loose = select_experts(scores, cats, ["big", "small"], active_params=params, max_loss=0.05)
    assert loose.mapping["c"] == "small" and loose.mean_active_params == pytest.approx(7e9)
    tight = select_experts(scores, cats, ["big", "small"], active_params=params, max_loss=0.01)
    assert tight.mapping["c"] == "big" and tight.mean_active_params == pytest.approx(70e9)
    rel = select_experts(scores, cats, ["big", "small"], active_params=params, max_loss=0.03, relative_loss=True)
    assert rel.mapping["c"] == "small"  # 0.02 / 0.80 = 2.5% < 3%
    with pytest.raises(ValueError, match="active_params"):
        select_experts(scores, cats, ["big", "small"], max_loss=0.05)


def test_mean_active_params_weights_categories_by_traffic() -> None:
    scores = np.array([[1.0, 0.0]] * 3 + [[0.0, 1.0]])
    emap = select_experts(scores, ["a", "a", "a", "b"], ["p", "q"], active_params=[10.0, 2.0], max_loss=0.0)
    assert emap.mean_active_params == pytest.approx((3 * 10 + 1 * 2) / 4)


def test_k_subsampling_is_seeded() -> None:
    rng = np.random.default_rng(3)
    scores = rng.uniform(size=(100, 3))  # every prompt different: the mean identifies the sample
    cats = ["c"] * 100

    def means(seed: int) -> list[float]:
        emap = select_experts(scores, cats, ["a", "b", "d"], k=5, seed=seed)
        assert all(r.n == 5 for r in emap.rows)
        return [r.mean for r in emap.rows]

    assert means(7) == means(7)
    assert means(7) != means(8)
    full = select_experts(scores, cats, ["a", "b", "d"], k=None)
    assert all(r.n == 100 for r in full.rows)


def test_single_shot_cannot_separate_anything() -> None:
    scores, cats = _synthetic()
    emap = select_experts(scores, cats, EXPERTS, k=1, seed=0)
    chosen = [r for r in emap.rows if r.chosen]
    assert all(np.isnan(r.ci_low) and len(r.tie_with) == 3 for r in chosen)


def test_unscored_prompts_and_experts_are_ignored() -> None:
    scores, cats = _synthetic()
    scores[:, 1] = np.nan  # e1 never scored
    scores[:5, :] = np.nan  # five unlabelled prompts
    emap = select_experts(scores, cats, EXPERTS)
    rows = {(r.category, r.expert): r for r in emap.rows}
    assert rows[("a", "e1")].n == 0 and not rows[("a", "e1")].chosen
    assert rows[("a", "e2")].n == 35
    assert emap.mapping == {"a": "e2", "b": "e0"}


def test_json_round_trip_keeps_nan_as_null() -> None:
    scores, cats = _synthetic()
    emap = select_experts(scores, cats, EXPERTS, k=1, active_params=[1, 2, 3, 4])
    text = json.dumps(emap.to_dict(), allow_nan=False)  # strict JSON: NaN would raise here
    back = ExpertMap.from_dict(json.loads(text))
    assert back.mapping == emap.mapping and back.fallback == emap.fallback and back.k == 1
    assert len(back.rows) == len(emap.rows) and np.isnan(back.rows[0].ci_low)
    assert back.ties() == emap.ties()


def test_shape_errors_are_explicit() -> None:
    with pytest.raises(ValueError, match="n_experts"):
        select_experts(np.zeros((3, 2)), ["a"] * 3, ["x"])
    with pytest.raises(ValueError, match="k must be"):
        select_experts(np.zeros((3, 1)), ["a"] * 3, ["x"], k=0)
