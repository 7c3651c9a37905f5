"""Scores that already exist (judged offline, from a leaderboard, from an earlier run), read from a file.

Long format, one row per (prompt_id, expert): CSV with a header or JSONL objects. Keeping the same
``score()`` interface means selection code cannot tell a file from a live judge.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Sequence

import numpy as np

from evals.scorers.base import Scorer


class PrecomputedScorer(Scorer):
    """``score(prompt, response, reference)`` treats ``prompt`` as the prompt id and ignores the
    response: the response was scored when the file was made. ``expert`` says whose score to return
    (one scorer per expert, like the live scorers, which score whatever response they are given)."""

    name = "precomputed"

    def __init__(
        self,
        path: str | Path,
        expert: str | None = None,
        *,
        prompt_field: str = "prompt_id",
        expert_field: str = "expert",
        score_field: str = "score",
    ) -> None:
        super().__init__()
        self.path = Path(path)
        self.expert = expert
        self.table = read_scores(self.path, prompt_field, expert_field, score_field)

    def _score(self, prompt: str, response: str, reference: str | None) -> float | None:
        if self.expert is None:
            raise ValueError("PrecomputedScorer.score needs expert=...; use lookup() to name it per call")
        return self.lookup(prompt, self.expert)

    def lookup(self, prompt_id: str, expert: str) -> float | None:
        return self.table.get((str(prompt_id), str(expert)))

    def matrix(self, prompt_ids: Sequence[str], experts: Sequence[str]) -> np.ndarray:
        """The ``[n_prompts, n_experts]`` array ``select_experts`` takes; missing pairs are NaN."""
        out = np.full((len(prompt_ids), len(experts)), np.nan)
        for i, p in enumerate(prompt_ids):
            for j, e in enumerate(experts):
                v = self.table.get((str(p), str(e)))
                if v is not None:
                    out[i, j] = v
        return out


def read_scores(
    path: Path, prompt_field: str = "prompt_id", expert_field: str = "expert", score_field: str = "score"
) -> dict[tuple[str, str], float]:
    """Empty or non-numeric scores are skipped (not scored), and a pair given twice is an error:
    silently keeping one of two disagreeing scores would hide a bug in whatever wrote the file."""
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        with path.open(encoding="utf-8") as fh:
            records = [json.loads(line) for line in fh if line.strip()]
    else:
        with path.open(encoding="utf-8", newline="") as fh:
            records = list(csv.DictReader(fh))
    table: dict[tuple[str, str], float] = {}
    for n, rec in enumerate(records, 1):
        try:
            key = (str(rec[prompt_field]), str(rec[expert_field]))
        except KeyError as err:
            raise ValueError(f"{path}: record {n} lacks field {err}") from None
        value = _as_float(rec.get(score_field))
        if value is None:
            continue
        if key in table:
            raise ValueError(f"{path}: score for prompt {key[0]!r}, expert {key[1]!r} appears twice")
        table[key] = value
    return table


def _as_float(raw: object) -> float | None:
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    try:
        value = float(raw)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None
