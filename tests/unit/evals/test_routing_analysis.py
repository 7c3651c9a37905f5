"""Offline routing analysis on constructed per-prompt scores whose answers are known by hand."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from evals.routing_analysis import (
    AnalysisInputError,
    ScoreMatrix,
    analyse,
    headroom_share,
    load_router_choices,
    load_scores,
    yardsticks,
)


def matrix() -> ScoreMatrix:
    # expert a is best on math, b on writing; a is the better single expert (mean 0.6 vs 0.45)
    scores = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.4, 0.8]])
    return ScoreMatrix(["p1", "p2", "p3", "p4"], ["math", "math", "writing", "writing"], ["a", "b"], scores)


def test_yardsticks_and_headroom():
    s = matrix().scores
    y = yardsticks(s, best=0)
    assert y == pytest.approx({"best single": 0.6, "oracle": 0.8, "random": 0.525})
    assert headroom_share(0.8, 0.6, 0.8) == pytest.approx(1.0)
    assert headroom_share(0.6, 0.6, 0.8) == 0.0
    assert headroom_share(0.5, 0.6, 0.8) == pytest.approx(-0.5)
    assert headroom_share(0.7, 0.7, 0.7) == 0.0  # no headroom: nothing claimed


def test_perfect_router_captures_all_headroom_and_a_bad_one_loses():
    m = matrix()
    perfect = analyse(m, {"p1": "a", "p2": "a", "p3": "b", "p4": "b"}, rounds=200)
    assert perfect["best_single"] == "a"
    assert perfect["arrangements"]["router"]["mean"] == pytest.approx(0.8)
    assert perfect["arrangements"]["router"]["headroom_share"] == pytest.approx(1.0)
    inverted = analyse(m, {"p1": "b", "p2": "b", "p3": "a", "p4": "a"}, rounds=200)
    assert inverted["arrangements"]["router"]["headroom_share"] == pytest.approx((0.25 - 0.6) / 0.2)
    r = inverted["arrangements"]["router"]
    assert r["ci95"][0] <= r["mean"] <= r["ci95"][1]
    assert perfect["per_category"]["writing"]["best"] == "b"


def test_choices_of_unknown_experts_are_counted_not_scored():
    report = analyse(matrix(), {"p1": "a", "p2": "remote-x", "p3": "b", "p4": "b"}, rounds=50)
    assert report["router"]["prompts_without_scorable_choice"] == 1
    assert report["prompts"] == 3  # all arrangements compared on the same prompts


def _run_folder(root: Path, expert: str, scores: dict[str, float | None]) -> Path:
    folder = root / expert
    folder.mkdir()
    (folder / "manifest.json").write_text(json.dumps({"arrangement": {"evaluated": expert}}))
    (folder / "per_prompt.jsonl").write_text("".join(
        json.dumps({"prompt_id": p, "category": "c", "score": s, "expert": expert}) + "\n" for p, s in scores.items()))
    return folder


def test_runs_are_joined_on_prompts_every_expert_scored(tmp_path):
    a = _run_folder(tmp_path, "a", {"p1": 8.0, "p2": None, "p3": 5.0})
    b = _run_folder(tmp_path, "b", {"p1": 6.0, "p2": 7.0, "p3": 9.0})
    m = load_scores([a, b], None)
    assert m.prompt_ids == ["p1", "p3"] and m.dropped == 1  # an invalid judgment is not a score
    assert load_router_choices(b) == {"p1": "b", "p2": "b", "p3": "b"}


def test_bad_inputs_are_clear_errors(tmp_path):
    a = _run_folder(tmp_path, "a", {"p1": 8.0})
    with pytest.raises(AnalysisInputError, match="at least two experts"):
        load_scores([a], None)
    bad = tmp_path / "scores.jsonl"
    bad.write_text('{"prompt_id": "p1", "expert": "a"}\n')
    with pytest.raises(AnalysisInputError, match="scores.jsonl:1"):
        load_scores([], bad)
    with pytest.raises(AnalysisInputError, match="not a finished harness run"):
        load_scores([tmp_path / "missing"], None)


def test_cli_on_a_scores_file(tmp_path):
    path = tmp_path / "scores.jsonl"
    m = matrix()
    path.write_text("".join(json.dumps({"prompt_id": p, "category": c, "expert": e, "score": float(m.scores[i, j])}) + "\n"
                            for i, (p, c) in enumerate(zip(m.prompt_ids, m.categories)) for j, e in enumerate(m.experts)))
    proc = subprocess.run([sys.executable, "-m", "coe.cli.main", "eval", "routing-analysis", "--scores", str(path),
                           "--out", str(tmp_path / "out")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "| oracle | 0.800" in proc.stdout and "| best single | 0.600" in proc.stdout
    assert json.loads((tmp_path / "out" / "report.json").read_text())["best_single"] == "a"
    bad = subprocess.run([sys.executable, "-m", "coe.cli.main", "eval", "routing-analysis", "--scores", str(path),
                          "--run", str(tmp_path / "nope")], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "error:" in bad.stderr and "Traceback" not in bad.stderr
