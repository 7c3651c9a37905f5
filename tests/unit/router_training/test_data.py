"""The JSONL loader's error messages and the default dataset built from installed packages."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from router_training.data import (
    CATEGORIES,
    DataFileError,
    LabelledPrompt,
    category_counts,
    default_dataset,
    load_jsonl,
    source_counts,
)


def _write(tmp_path: Path, lines: list[str]) -> Path:
    path = tmp_path / "prompts.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


GOOD = json.dumps({"prompt": "Sort a list in Python", "category": "coding"})


def test_load_jsonl_reads_prompts_and_messages(tmp_path: Path) -> None:
    messages = {
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "What is 2+2?"},
            {"role": "assistant", "content": "4"},
            {"role": "user", "content": [{"type": "text", "text": "And times 3?"}]},
        ],
        "category": "math",
    }
    items = load_jsonl(_write(tmp_path, [GOOD, "", json.dumps(messages)]))
    assert items[0] == LabelledPrompt("Sort a list in Python", "coding", "prompts.jsonl:1")
    # user turns only, newest first (what the server embeds); blank line 2 is skipped
    assert items[1] == LabelledPrompt("And times 3?\nWhat is 2+2?", "math", "prompts.jsonl:3")


@pytest.mark.parametrize(
    ("bad_line", "message"),
    [
        ('{"prompt": "x", "category": ', "bad JSON"),
        (json.dumps({"prompt": "x"}), "category"),
        (json.dumps({"prompt": "x", "category": "  "}), "category"),
        (json.dumps({"text": "x", "category": "coding"}), "neither 'prompt' nor 'messages'"),
        (json.dumps({"prompt": "   ", "category": "coding"}), "empty prompt"),
        (json.dumps({"messages": [{"role": "assistant", "content": "hi"}], "category": "c"}), "empty prompt"),
        (json.dumps({"messages": "hello", "category": "coding"}), "'messages' must be a list"),
        (json.dumps(["prompt", "category"]), "JSON object"),
    ],
)
def test_load_jsonl_errors_name_file_and_line(tmp_path: Path, bad_line: str, message: str) -> None:
    path = _write(tmp_path, [GOOD, GOOD, bad_line, GOOD])
    with pytest.raises(DataFileError) as caught:
        load_jsonl(path)
    assert f"{path}:3:" in str(caught.value)
    assert message in str(caught.value)


def test_load_jsonl_empty_file_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "empty.jsonl"
    path.write_text("\n\n")
    with pytest.raises(DataFileError, match="empty"):
        load_jsonl(path)


def test_default_dataset_is_balanced_with_expected_sources() -> None:
    items = default_dataset()
    assert category_counts(items) == {c: 250 for c in sorted(CATEGORIES)}
    assert set(source_counts(items)) == {"alpaca_eval", "arena_hard", "human_eval", "mt_bench", "writingbench"}
    by_category: dict[str, set[str]] = {}
    for item in items:
        assert item.text.strip()
        by_category.setdefault(item.category, set()).add(item.source.split("/")[0])
    assert by_category["coding"] == {"arena_hard", "human_eval", "mt_bench"}
    assert by_category["math"] == {"arena_hard", "mt_bench"}
    assert by_category["writing"] == {"arena_hard", "mt_bench", "writingbench"}
    assert by_category["general"] == {"alpaca_eval", "mt_bench"}
    assert len({item.text for item in items}) > 0.98 * len(items)  # no large duplicate blocks


def test_default_dataset_is_seeded() -> None:
    assert default_dataset(seed=1) == default_dataset(seed=1)
    assert default_dataset(seed=1) != default_dataset(seed=2)
    uncapped = category_counts(default_dataset(cap=None))
    assert uncapped["general"] > 800 and uncapped["math"] >= 250
