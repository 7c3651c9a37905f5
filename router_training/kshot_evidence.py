"""The evidence stage 2 is chosen from: K prompts per category and each expert's score on them.

Either CoE measures it (the experts answer, a scorer grades: `pipeline.score_by_answering`) or the user
brings it as a file of scores or of pairwise preferences measured elsewhere (`read_precomputed`). Both
end as one `KShotScores`, so the rest of `coe train-router` never asks where the scores came from.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from router_training.data import DataFileError, LabelledPrompt
from router_training.splits import group_by_label


def kshot_sample(dataset: Sequence[LabelledPrompt], pool: Sequence[int], k: int | None, seed: int) -> list[int]:
    """K prompts per category from the training split, seeded; every category gets its own draw."""
    rng = random.Random(seed)
    pool = list(pool)
    by_category = group_by_label([dataset[i].category for i in pool])
    chosen: list[int] = []
    for category in sorted(by_category):
        items = [pool[j] for j in by_category[category]]
        chosen += items if k is None else rng.sample(items, min(k, len(items)))
    return chosen


@dataclass
class KShotScores:
    """The evidence stage 2 is chosen from: which prompts, their categories, each expert's scores."""

    prompts: list[str]
    categories: list[str]
    matrix: np.ndarray  # [n_prompts, n_experts], NaN = invalid / not scored
    invalid: int = 0
    unanswered: int = 0  # requests an expert could not answer (e.g. prompt past its context): left out
    comparisons: np.ndarray | None = None  # (row, a, b, outcome) when the scores were imputed from preferences


def read_precomputed(path: Path, experts: Sequence[str], k: int | None, seed: int) -> KShotScores:
    """JSONL lines {"prompt", "category", "expert", "score"}: scores measured elsewhere (another harness,
    a public leaderboard); or pairwise preferences {"prompt", "category", "model_a", "model_b",
    "winner"}, turned into per-prompt Bradley-Terry strengths (router_training.preferences). One file
    holds one kind. K prompts per category are drawn from the file, seeded."""
    rows, comparisons = _read_score_file(path, experts)
    texts = [text for text, _ in rows]
    repeated = len(texts) - len(set(texts))
    if repeated:
        print(f"  {path}: {repeated} prompt text(s) appear under more than one category; kept apart", flush=True)
    items = [LabelledPrompt(text, category, "precomputed") for text, category in rows]
    chosen = kshot_sample(items, range(len(items)), k, seed)
    keys = list(rows)
    matrix = np.array([[rows[keys[i]].get(e, np.nan) for e in experts] for i in chosen], dtype=float)
    table = None
    if comparisons is not None:
        from router_training.preferences import comparison_table

        table = comparison_table(comparisons, experts, {keys[i]: row for row, i in enumerate(chosen)})
    return KShotScores([items[i].text for i in chosen], [items[i].category for i in chosen], matrix, comparisons=table)


SCORE_FIELDS = "prompt, category, expert, score"
PREFERENCE_FIELDS = "prompt, category, model_a, model_b, winner"


def _read_score_file(path: Path, experts: Sequence[str]) -> tuple[dict[tuple[str, str], dict[str, float]], list | None]:
    """(prompt, category) -> expert -> score, and the comparisons when the file holds preferences.
    Keyed by both, so the same text labelled twice stays two rows (and is reported). A bad line, or a
    line of the other kind, names file and line."""
    import json

    from router_training.preferences import Comparison, parse_winner, preference_scores

    rows: dict[tuple[str, str], dict[str, float]] = {}
    comparisons: list[Comparison] = []
    kind: str | None = None
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        fields = PREFERENCE_FIELDS if kind == "preference" else SCORE_FIELDS
        try:
            item = json.loads(line)
            this = "preference" if isinstance(item, dict) and "model_a" in item else "score"
            fields = PREFERENCE_FIELDS if this == "preference" else SCORE_FIELDS
            if kind is not None and this != kind:
                raise DataFileError(f"{path}:{number}: a {this} line in a file of {kind} lines; one file holds one kind")
            kind = this
            key = (str(item["prompt"]), str(item["category"]))
            if this == "score":
                rows.setdefault(key, {})[str(item["expert"])] = float(item["score"])
            else:
                comparisons.append(Comparison(*key, str(item["model_a"]), str(item["model_b"]), parse_winner(item["winner"])))
        except DataFileError:
            raise
        except (ValueError, KeyError, TypeError, AttributeError) as err:
            raise DataFileError(f"{path}:{number}: expected a JSON object with {fields} ({err})") from None
    if kind == "preference":
        keys, matrix = preference_scores(comparisons, experts)
        if not keys:
            raise DataFileError(f"{path}: no comparison between two of the experts {', '.join(experts)}")
        print(f"  {path}: {len(comparisons)} pairwise preferences over {len(keys)} prompts -> Bradley-Terry "
              f"strengths per prompt (logit units)", flush=True)
        return {key: dict(zip(experts, matrix[i].tolist())) for i, key in enumerate(keys)}, comparisons
    return rows, None
