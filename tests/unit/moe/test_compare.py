"""The held-out table's paired comparison: counts and interval must follow the per-prompt scores."""

from __future__ import annotations

from coe.moe.compare import paired_vs_base, tables


def test_paired_difference_counts_wins_losses_and_brackets_the_mean():
    base = [0, 0, 1, 1, 0, 0, 0, 0, 0, 0]
    model = [1, 1, 1, 0, 1, 0, 0, 0, 0, 0]
    p = paired_vs_base(model, base)
    assert (p["wins"], p["losses"]) == (3, 1)
    assert abs(p["diff"] - 0.2) < 1e-9 and p["low"] <= 0.2 <= p["high"]
    same = paired_vs_base(base, base)
    assert same["low"] == same["high"] == 0.0


def test_tables_put_the_base_first_and_compare_every_other_model_with_it():
    rows = [{"model": m, "domain": "math", "score": s}
            for m, scores in (("base", [0, 0, 0, 0]), ("spec", [1, 1, 0, 1])) for s in scores]
    markdown, result = tables(rows)
    assert "| held-out word problems, exact answer (4) | 0.000 | 0.750 |" in markdown
    assert result["domains"]["math"]["vs_base"]["spec"]["wins"] == 3
