"""Pairwise preferences as `--scores` input: the Bradley-Terry reduction and the file reader."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from router_training.data import DataFileError
from router_training.kshot_evidence import read_precomputed
from router_training.preferences import Comparison, fit_strengths, preference_scores


def test_dense_comparisons_recover_the_true_strengths() -> None:
    rng = np.random.default_rng(0)
    truth = np.array([-1.0, 0.0, 1.5])
    pairs = np.array([rng.choice(3, size=2, replace=False) for _ in range(3000)])
    wins = rng.random(len(pairs)) < 1 / (1 + np.exp(-(truth[pairs[:, 0]] - truth[pairs[:, 1]])))
    fitted = fit_strengths(pairs, wins.astype(float), np.zeros(3), tau=0.01)
    # Strengths are defined up to a shift: compare the differences.
    assert np.allclose(fitted - fitted.mean(), truth - truth.mean(), atol=0.15)


def test_a_prompt_moves_only_the_experts_it_compared() -> None:
    # In the category "a" beats "b" and "c" everywhere; on prompt p2, "c" beat "a" twice.
    comparisons = [Comparison(f"p{i}", "code", "a", other, 1.0) for i in range(20) for other in ("b", "c")]
    comparisons += [Comparison("p2", "code", "c", "a", 1.0)] * 2
    comparisons += [Comparison("solo", "code", "a", "c", 1.0), Comparison("solo2", "code", "a", "c", 0.0)]
    keys, matrix = preference_scores(comparisons, ["a", "b", "c"])
    rows = {prompt: matrix[i] for i, (prompt, _) in enumerate(keys)}
    assert rows["p1"][0] > rows["p1"][2] and rows["p2"][2] > rows["p1"][2]
    # "b" was never compared on "solo" or "solo2": it keeps its category strength on both.
    assert rows["solo"][1] == pytest.approx(rows["solo2"][1])
    assert rows["solo2"][2] > rows["solo"][2]


def test_comparisons_with_experts_outside_the_arrangement_are_dropped() -> None:
    keys, matrix = preference_scores([Comparison("p", "c", "a", "gpt-x", 1.0), Comparison("q", "c", "a", "b", 0.0)],
                                     ["a", "b"])
    assert [k[0] for k in keys] == ["q"] and matrix[0, 1] > matrix[0, 0]


def _write(path: Path, lines: list[object]) -> Path:
    path.write_text("\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines) + "\n")
    return path


def test_a_preference_file_becomes_a_score_matrix(tmp_path: Path) -> None:
    lines = [{"prompt": f"q{i}", "category": "math" if i % 2 else "code", "model_a": "x", "model_b": "y",
              "winner": "model_a" if i % 2 else "model_b"} for i in range(12)]
    lines.append({"prompt": "q0", "category": "code", "model_a": "x", "model_b": "y", "winner": "tie"})
    evidence = read_precomputed(_write(tmp_path / "prefs.jsonl", lines), ["x", "y"], k=None, seed=0)
    assert len(evidence.prompts) == 12 and np.isfinite(evidence.matrix).all()
    by_category = {c: evidence.matrix[[i for i, cat in enumerate(evidence.categories) if cat == c]] for c in ("math", "code")}
    assert (by_category["math"][:, 0] > by_category["math"][:, 1]).all()  # x wins math
    assert (by_category["code"][:, 1] > by_category["code"][:, 0]).all()  # y wins code
    # The raw judgments travel with the imputed scores, one row per kept comparison, on the row of its prompt.
    assert evidence.comparisons is not None and evidence.comparisons.shape == (13, 4)
    row_q0 = evidence.prompts.index("q0")
    assert sorted(evidence.comparisons[evidence.comparisons[:, 0] == row_q0][:, 3].tolist()) == [0.0, 0.5]


@pytest.mark.parametrize(("line", "message"), [
    ({"prompt": "q", "category": "c", "model_a": "x", "model_b": "y", "winner": "x"}, "winner must be one of"),
    ({"prompt": "q", "category": "c", "model_a": "x", "winner": "model_a"}, "model_a, model_b, winner"),
    ({"prompt": "q", "category": "c", "expert": "x", "score": 1}, "a score line in a file of preference lines"),
])
def test_a_bad_preference_line_names_file_and_line(tmp_path: Path, line: dict, message: str) -> None:
    good = {"prompt": "p", "category": "c", "model_a": "x", "model_b": "y", "winner": "model_a"}
    path = _write(tmp_path / "prefs.jsonl", [good, line])
    with pytest.raises(DataFileError, match=f"prefs.jsonl:2: .*{message}"):
        read_precomputed(path, ["x", "y"], k=None, seed=0)


def test_a_file_comparing_none_of_the_experts_is_an_error(tmp_path: Path) -> None:
    path = _write(tmp_path / "prefs.jsonl", [{"prompt": "p", "category": "c", "model_a": "u", "model_b": "v",
                                             "winner": "model_a"}])
    with pytest.raises(DataFileError, match="no comparison between two of the experts x, y"):
        read_precomputed(path, ["x", "y"], k=None, seed=0)
