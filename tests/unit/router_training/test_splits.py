"""The train / calibration / held-out split: exact per-label shares, disjoint, reproducible."""

from __future__ import annotations

import pytest

from router_training.splits import stratified_split

LABELS = ["a"] * 100 + ["b"] * 50 + ["c"] * 10 + ["d"] * 3


def test_split_is_stratified_disjoint_and_complete() -> None:
    split = stratified_split(LABELS, seed=0)
    parts = (split.train, split.calibration, split.heldout)
    assert sorted(i for part in parts for i in part) == list(range(len(LABELS)))
    for label, n in {"a": 100, "b": 50, "c": 10}.items():
        counts = [sum(LABELS[i] == label for i in part) for part in parts]
        assert counts == [round(n * 0.6), round(n * 0.2), n - round(n * 0.6) - round(n * 0.2)]
    assert [sum(LABELS[i] == "d" for i in part) for part in parts] == [1, 1, 1]


def test_split_is_deterministic_per_seed() -> None:
    assert stratified_split(LABELS, seed=3) == stratified_split(LABELS, seed=3)
    assert stratified_split(LABELS, seed=3).heldout != stratified_split(LABELS, seed=4).heldout


def test_split_does_not_depend_on_label_order_of_appearance() -> None:
    # the same items listed with labels first seen in another order must split the same way
    split = stratified_split(LABELS, seed=0)
    reordered = stratified_split(LABELS[100:] + LABELS[:100], seed=0)
    offset = {i: (i + 63) % len(LABELS) for i in range(len(LABELS))}  # position of item i there
    assert sorted(offset[i] for i in split.heldout) == reordered.heldout


@pytest.mark.parametrize("fractions", [(0.5, 0.5, 0.0), (0.6, 0.2, 0.1), (0.6, 0.2)])
def test_bad_fractions_are_rejected(fractions: tuple[float, ...]) -> None:
    with pytest.raises(ValueError, match="fractions"):
        stratified_split(LABELS, fractions=fractions)  # type: ignore[arg-type]
