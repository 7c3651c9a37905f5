"""The one interface every scorer keeps, so selection code never branches on how quality was measured."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar


class Scorer(ABC):
    """Scores one expert response. ``None`` means "no valid score" (e.g. an unparseable judgment): it
    must become NaN in the score matrix, never a silent zero, or bad judging would look like a bad
    expert. ``n_scored``/``n_invalid`` let a report say how many of those there were."""

    name: ClassVar[str] = ""
    needs_reference: ClassVar[bool] = False

    def __init__(self) -> None:
        self.n_scored = 0
        self.n_invalid = 0

    def score(self, prompt: str, response: str, reference: str | None = None) -> float | None:
        if self.needs_reference and reference is None:
            raise ValueError(f"scorer {self.name!r} needs a reference")
        value = self._score(prompt, response, reference)
        if value is None:
            self.n_invalid += 1
        else:
            self.n_scored += 1
        return value

    @abstractmethod
    def _score(self, prompt: str, response: str, reference: str | None) -> float | None: ...
