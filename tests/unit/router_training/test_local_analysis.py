from __future__ import annotations

import re

import numpy as np

from router_training import local_analysis as la


def test_math_problems_carry_their_exact_answer() -> None:
    for item in la.math_problems(20, seed=1):
        a, b, c = map(int, re.findall(r"\d+", item.text)[:3])
        assert item.reference == str(a + b * c) and item.check == "exact-match"
    assert la.math_problems(5, seed=1) == la.math_problems(5, seed=1)


def test_local_items_cover_four_categories_with_real_checks() -> None:
    items = la.local_items(4)
    assert [i.category for i in items] == ["coding"] * 4 + ["math"] * 4 + ["writing"] * 4 + ["general"] * 4
    assert all(i.problem and "def " in i.problem["prompt"] for i in items if i.check == "unit-tests")


def test_complementary_experts_make_the_map_capture_the_headroom() -> None:
    # Expert 0 always right on coding, expert 1 always right on math: the map should reach the oracle.
    cats = ["coding"] * 10 + ["math"] * 10
    matrix = np.array([[1.0, 0.0]] * 10 + [[0.0, 1.0]] * 10)
    summary = la.evaluate(matrix, cats, ["a", "b"], k_list=(3, None), seeds=5)
    assert summary["oracle"]["mean"] == 1.0 and summary["best single"]["mean"] == 0.5
    assert summary["k-shot map K=all"]["mean"] == 1.0 and summary["k-shot map K=all"]["headroom"] == 1.0
    assert summary["random"]["mean"] == 0.5


def test_identical_experts_keep_the_best_single() -> None:
    rng = np.random.default_rng(0)
    scores = rng.random((20, 1))
    matrix = np.hstack([scores, scores])
    summary = la.evaluate(matrix, ["x"] * 10 + ["y"] * 10, ["a", "b"], k_list=(None,), seeds=3)
    assert summary["k-shot map K=all"]["mean"] == summary["best single"]["mean"]


def test_an_invalid_judgment_is_dropped_not_scored_zero() -> None:
    # Expert b wins every prompt it has a valid score for; its invalid judgments (NaN) must not count
    # as 0 (which would hand the prompts to a), they leave those prompts out for every arrangement.
    cats = ["general"] * 12
    matrix = np.array([[0.5, 0.9]] * 8 + [[0.5, np.nan]] * 4)
    summary = la.evaluate(matrix, cats, ["a", "b"], k_list=(None,), seeds=3)
    assert summary["best single"]["mean"] == summary["oracle"]["mean"] == 0.9
    assert summary["k-shot map K=all"]["mean"] == 0.9
