"""Per-run statistics beside the scores: routing (which expert served which category), mean active
parameters, latency and tokens per answer. Computed from the cached answer records only, so a resumed
run reports the same numbers as an uninterrupted one."""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path
from typing import Any, Iterable

import numpy as np


def expert_params(config_path: Path | None) -> dict[str, float]:
    """Parameter counts of the local experts of a coe.yaml (the bundled one by default), read from their
    prepared checkpoints. Remote experts have none: their answers count as unknown, not as zero."""
    from router_training.train_router_cli import local_active_params

    try:
        return local_active_params(config_path)
    except Exception:  # noqa: BLE001 - missing caches or a config that does not load: parameters unknown
        return {}


def _summary(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"mean": None, "p50": None, "p95": None}
    arr = np.asarray(values, dtype=float)
    return {"mean": float(arr.mean()), "p50": float(np.percentile(arr, 50)), "p95": float(np.percentile(arr, 95))}


def answer_stats(answers: Iterable[dict[str, Any]], params: dict[str, float]) -> dict[str, Any]:
    """``answers``: records with category, expert, latency_s, token counts, error."""
    answers = list(answers)
    ok = [a for a in answers if not a.get("error")]
    by_category: dict[str, Counter] = defaultdict(Counter)
    for a in ok:
        by_category[a["category"]][a.get("expert") or "unknown"] += 1
    known = [params[a["expert"]] for a in ok if a.get("expert") in params]
    completion = [a["completion_tokens"] for a in ok if a.get("completion_tokens") is not None]
    prompt = [a["prompt_tokens"] for a in ok if a.get("prompt_tokens") is not None]
    latency = [a["latency_s"] for a in ok]
    tokens_per_s = [a["completion_tokens"] / a["latency_s"] for a in ok
                    if a.get("completion_tokens") and a.get("latency_s")]
    return {
        "answers": len(answers),
        "answer_errors": len(answers) - len(ok),
        "routing": {
            "by_category": {c: dict(sorted(v.items())) for c, v in sorted(by_category.items())},
            "experts": dict(sorted(Counter(a.get("expert") or "unknown" for a in ok).items())),
            "mean_active_params": float(np.mean(known)) if known else None,
            "params_known_share": (len(known) / len(ok)) if ok else None,
        },
        "latency_s": _summary(latency),
        "completion_tokens": _summary(completion),
        "prompt_tokens": _summary(prompt),
        "tokens_per_s": _summary(tokens_per_s),
    }


def cut_off_judgments(judgments: Any, manifest: dict[str, Any]) -> int | None:
    """Judgments that used the whole --judge-max-tokens budget: probably cut off before the verdict, which
    says the limit, not the judge, may have made them invalid. None when the run did not record it."""
    limit = (manifest.get("settings") or {}).get("judge_max_tokens")
    tokens = [r.get("judge_tokens") for r in judgments.records.values()]
    if limit is None or all(t is None for t in tokens):
        return None
    return sum(1 for t in tokens if t is not None and t >= limit)
