"""Per-question correctness of a cheap and an expensive model on MMLU (RouteLLM's public responses).

Why this exists: the AlpacaEval matrix (``router_training/datasets/alpacaeval2``) scores many models
with a noisy LLM judge. Router research also needs the classic two-model case with an exact score
and a real price gap: per question, was the cheap model right, was the expensive one right? Then a
router's accuracy at any share of expensive calls, and its cost, can be computed without running a
model. RouteLLM (lm-sys) published such a table for Mixtral-8x7B-Instruct vs GPT-4-1106-preview on
all 14,042 MMLU test questions (5-shot, greedy, one answer letter); it is vendored here with its
provenance, licences and checksum in ``router_training/datasets/mmlu_pair/README.md``.

Every row is kept, including RouteLLM's 5 "contaminated" prompts and 105 repeated prompt texts
(the README says which); filter them in the caller if an experiment needs to.
"""

from __future__ import annotations

import csv
import gzip
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DEFAULT_PATH = Path(__file__).resolve().parent / "datasets" / "mmlu_pair" / "correctness.csv.gz"
EXPERTS: tuple[str, str] = ("mixtral-8x7b-instruct", "gpt-4-1106-preview")  # cheap first

# Input price in $ per million tokens, from litellm 1.110.2's bundled map
# (model_prices_and_context_window_backup.json, read with LITELLM_LOCAL_MODEL_COST_MAP=True).
PRICES_PER_MTOK: dict[str, float] = {
    "mixtral-8x7b-instruct": 0.60,  # litellm key "together_ai/mistralai/Mixtral-8x7B-Instruct-v0.1"
    "gpt-4-1106-preview": 10.00,  # litellm key "gpt-4-1106-preview"
}


@dataclass(frozen=True)
class MMLUPair:
    prompts: list[str]
    subjects: np.ndarray  # [n] str, the MMLU subject (57 of them)
    experts: tuple[str, str]  # (cheap, expensive), the column order of ``scores``
    scores: np.ndarray  # [n, 2] float, 1.0 = the expert answered the question correctly, else 0.0
    prices_per_mtok: dict[str, float]


def load_mmlu_pair(path: Path = DEFAULT_PATH) -> MMLUPair:
    with gzip.open(Path(path), "rt", encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    if not rows:
        raise ValueError(f"{path} has no rows")
    scores = np.array([[float(r[e]) for e in EXPERTS] for r in rows])
    if not np.isin(scores, (0.0, 1.0)).all():
        raise ValueError(f"{path}: correctness must be 0 or 1")
    return MMLUPair(
        prompts=[r["prompt"] for r in rows],
        subjects=np.array([r["subject"] for r in rows], dtype=str),
        experts=EXPERTS,
        scores=scores,
        prices_per_mtok=dict(PRICES_PER_MTOK),
    )
