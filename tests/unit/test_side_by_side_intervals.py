"""The side-by-side bench's paired-block statistics (bench/side_by_side_cells.py).

The README's issue-16 verdicts come from these functions: a wrong sign or a swapped pair would turn a
miss into a pass, so they are checked against numbers worked out by hand.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.fixture
def cells(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCH))
    import side_by_side_cells

    return side_by_side_cells


def a_cell(cells, arm: str, block_rps: tuple[float, ...], block_p50_ms: tuple[float, ...]):
    return cells.Cell(arm, 32, 8, False, 32 * len(block_rps), 0.0, 0.0, None, 1.0, 0, block_rps, block_p50_ms)


def test_p50_difference_is_coe_minus_vllm_with_a_t_interval(cells) -> None:
    vllm = a_cell(cells, "vllm", (1.0, 1.0, 1.0, 1.0), (1700.0, 1800.0, 1750.0, 1650.0))
    coe = a_cell(cells, "coe", (1.0, 1.0, 1.0, 1.0), (1710.0, 1830.0, 1750.0, 1670.0))
    mean, low, high = cells.block_p50_difference_interval(vllm, coe)
    # differences 10, 30, 0, 20: mean 15, sd sqrt(500/3), t(3 df) 3.18
    half = 3.18 * math.sqrt(500 / 3) / 2
    assert mean == pytest.approx(15.0)
    assert (low, high) == pytest.approx((15.0 - half, 15.0 + half))


def test_ratio_is_the_geometric_mean_of_coe_over_vllm(cells) -> None:
    vllm = a_cell(cells, "vllm", (10.0, 20.0), (0.0, 0.0))
    coe = a_cell(cells, "coe", (9.0, 18.0), (0.0, 0.0))
    mean, low, high = cells.block_ratio_interval(vllm, coe)
    assert mean == pytest.approx(0.9) and low == pytest.approx(0.9) and high == pytest.approx(0.9)


def test_one_block_gives_no_interval(cells) -> None:
    vllm, coe = a_cell(cells, "vllm", (10.0,), (100.0,)), a_cell(cells, "coe", (9.0,), (90.0,))
    assert cells.block_p50_difference_interval(vllm, coe) is None
    assert cells.verdict(None, 10.0, at_least=False) == "-"


@pytest.mark.parametrize(("bounds", "expected"), [
    ((2.0, -5.0, 9.0), "met"), ((25.0, 12.0, 40.0), "missed"), ((5.0, -30.0, 40.0), "unresolved"),
    ((10.0, 10.0, 10.0), "met"),
])
def test_p50_verdict(cells, bounds, expected) -> None:
    assert cells.verdict(bounds, 10.0, at_least=False) == expected


@pytest.mark.parametrize(("bounds", "expected"), [
    ((0.95, 0.91, 0.99), "met"), ((0.85, 0.80, 0.89), "missed"), ((0.92, 0.85, 0.99), "unresolved"),
])
def test_throughput_verdict(cells, bounds, expected) -> None:
    assert cells.verdict(bounds, 0.9, at_least=True) == expected


def test_summarize_keeps_each_blocks_own_p50(cells) -> None:
    blocks = [cells.Block([10.0, 20.0, 30.0], [], 3, 1.0), cells.Block([40.0, 50.0, 60.0, 70.0], [], 4, 2.0)]
    cell = cells.summarize("coe", 1, 1, False, blocks)
    assert cell.block_p50_ms == (20.0, 55.0)
    assert cell.block_rps == (3.0, 2.0)
    assert cell.p50_ms == 40.0
