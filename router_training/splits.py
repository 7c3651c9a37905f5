"""Seeded, stratified train / calibration / held-out split.

Three parts, not two: the fallback threshold is tuned on the calibration part, so the held-out part
measures the whole stage-1 decision (classifier + threshold) on prompts neither has seen. The split
is exact per category (not sklearn's approximate stratification) so small categories keep their
share in every part; it works on indices so callers can slice cached embedding matrices with it.
"""

from __future__ import annotations

import random
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Sequence, TypeVar

L = TypeVar("L", bound=Hashable)

DEFAULT_FRACTIONS: tuple[float, float, float] = (0.6, 0.2, 0.2)


def group_by_label(labels: Sequence[L]) -> dict[L, list[int]]:
    """Indices of each label, in dataset order."""
    groups: dict[L, list[int]] = {}
    for index, label in enumerate(labels):
        groups.setdefault(label, []).append(index)
    return groups


def shuffled_groups(labels: Sequence[L], rng: random.Random) -> list[tuple[L, list[int]]]:
    """Each label's indices shuffled by ``rng``, labels in sorted order so dict order never changes
    the draws: every stratified procedure here (splits, hold-outs, batches) uses these shuffles."""
    groups = group_by_label(labels)
    ordered = []
    for label in sorted(groups):
        indices = groups[label]
        rng.shuffle(indices)
        ordered.append((label, indices))
    return ordered


@dataclass(frozen=True)
class Split:
    """Sorted index lists into the dataset the split was made from."""

    train: list[int]
    calibration: list[int]
    heldout: list[int]


def stratified_split(
    labels: Sequence[str],
    seed: int = 0,
    fractions: tuple[float, float, float] = DEFAULT_FRACTIONS,
) -> Split:
    """Split indices per label with one seeded shuffle each; same inputs give the same split.

    Rounding is done on cumulative cut points so each label's three parts add up to its count and
    every label with at least three examples lands in all three parts.
    """
    if len(fractions) != 3 or any(f <= 0 for f in fractions) or abs(sum(fractions) - 1) > 1e-9:
        raise ValueError(f"fractions must be three positive numbers summing to 1, got {fractions}")
    train: list[int] = []
    calibration: list[int] = []
    heldout: list[int] = []
    for _label, indices in shuffled_groups(labels, random.Random(seed)):
        n = len(indices)
        cut1 = round(n * fractions[0])
        cut2 = round(n * (fractions[0] + fractions[1]))
        if n >= 3:  # keep every part non-empty for small labels
            cut1 = min(max(cut1, 1), n - 2)
            cut2 = min(max(cut2, cut1 + 1), n - 1)
        train += indices[:cut1]
        calibration += indices[cut1:cut2]
        heldout += indices[cut2:]
    return Split(sorted(train), sorted(calibration), sorted(heldout))
