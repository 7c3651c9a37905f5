"""The vendored RouteLLM MMLU correctness table is the documented file and loads as documented."""

from __future__ import annotations

import hashlib
import re

import numpy as np
import pytest

from router_training.mmlu_pair import DEFAULT_PATH, EXPERTS, MMLUPair, load_mmlu_pair

README = DEFAULT_PATH.parent / "README.md"


@pytest.fixture(scope="module")
def data() -> MMLUPair:
    return load_mmlu_pair()


def test_vendored_file_is_the_documented_file() -> None:
    documented = re.search(r"sha256 `([0-9a-f]{64})`\s+\(`tests/unit/test_mmlu_pair_data.py`", README.read_text())
    assert documented, "README names no sha256 for correctness.csv.gz"
    assert hashlib.sha256(DEFAULT_PATH.read_bytes()).hexdigest() == documented.group(1)


def test_loader_shape_subjects_and_scores(data: MMLUPair) -> None:
    n = len(data.prompts)
    assert n == 14042
    assert data.scores.shape == (n, 2) and data.subjects.shape == (n,)
    assert data.experts == EXPERTS == ("mixtral-8x7b-instruct", "gpt-4-1106-preview")
    assert len(set(data.subjects.tolist())) == 57
    assert set(np.unique(data.scores).tolist()) == {0.0, 1.0}
    assert set(data.prices_per_mtok) == set(data.experts)
    assert data.prices_per_mtok[data.experts[0]] < data.prices_per_mtok[data.experts[1]]  # cheap first


def test_accuracies_match_readme(data: MMLUPair) -> None:
    text = README.read_text()
    for j, expert in enumerate(data.experts):
        row = re.search(rf"^\| `{re.escape(expert)}` \|.*\| (0\.\d{{3}}) \|$", text, flags=re.MULTILINE)
        assert row, f"README has no accuracy row for {expert}"
        assert round(float(data.scores[:, j].mean()), 3) == float(row.group(1)), expert
