"""The default router that `make router` builds (a dependency of `make serve` and `make test`) from the
per-prompt scores committed in router_training/datasets/local_experts/: deterministic, loads without
running code, routes to experts the default arrangement serves on this machine."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from coe import paths
from coe.config import load_config
from coe.routing.artifact import RouterArtifact
from coe.routing.knobs import parse_knob
from coe.routing.router import CategoryRouter

SCORES = Path(__file__).resolve().parents[2] / "router_training" / "datasets" / "local_experts" / "scores.jsonl"
BUILT = paths.routers_dir() / "default"


def coe(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "coe.cli.main", *args], capture_output=True, text=True, timeout=600)


def test_make_built_the_default_router_the_config_names() -> None:
    config = load_config()
    assert config.router is not None and config.router.path == BUILT
    artifact, _ = RouterArtifact.load(BUILT)
    assert artifact.version == "default" and artifact.created == ""  # no clock in a deterministic build
    assert set(artifact.general_ranking) == {e.id for e in config.experts}


def test_rebuilding_from_the_same_scores_gives_the_same_bytes(tmp_path: Path) -> None:
    proc = coe("train-router", "--scores", str(SCORES), "--k", "all", "--name", "default", "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-2000:]
    for name in ("router.json", "classifier.npz", "predictor.npz", "report/curve.json", "report/curve.md"):
        assert (tmp_path / "default" / name).read_bytes() == (BUILT / name).read_bytes(), name


def test_with_only_the_bundled_experts_every_category_goes_to_one_of_them() -> None:
    router = CategoryRouter.load(BUILT, served={"smollm2-135m-instruct", "gemma3-270m"})
    for ranking in router.artifact.rankings.values():
        assert {r[0] for r in ranking.values()} <= {"smollm2-135m-instruct", "gemma3-270m"}
    for model in ("coe", "coe:cheap", "coe:budget-0.2", "coe:0.9"):
        decision = router.decide([{"role": "user", "content": "Write a Python function that reverses a list."}],
                                 parse_knob(model))
        assert decision.expert in {"smollm2-135m-instruct", "gemma3-270m"}
        assert {e for e, _ in decision.predicted} == {"smollm2-135m-instruct", "gemma3-270m"}


def test_the_router_reports_its_held_out_curve() -> None:
    report = json.loads((BUILT / "report" / "curve.json").read_text())
    assert report["heldout_n"] > 0 and report["best_single"]["expert"] in report["experts"]
    low, high = report["router_quality"]["interval"]
    assert low <= report["router_quality"]["quality"] <= high
    assert (BUILT / "report" / "curve.md").read_text().startswith("## router default")


def test_route_a_file_of_prompts(tmp_path: Path) -> None:
    prompts = tmp_path / "prompts.jsonl"
    lines = [{"prompt": "Write a Python function that sorts a list."},
             {"messages": [{"role": "user", "content": "A shop has 3 boxes of 4 pens. How many pens?"}]},
             {"prompt": "Write a haiku about rain."}]
    prompts.write_text("".join(json.dumps(line) + "\n" for line in lines))
    out = tmp_path / "decisions.jsonl"
    proc = coe("route", "--input", str(prompts), "--output", str(out), "--model", "coe:0")
    assert proc.returncode == 0, proc.stderr[-2000:]
    decisions = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(decisions) == 3 and decisions[0]["category"] == "coding"
    from coe.models.resolve import without_missing_optional

    served = {e.id for e in without_missing_optional(load_config())[0].experts}
    for decision in decisions:  # the predicted score of every expert this machine serves, the chosen one first
        assert set(decision["predicted_scores"]) <= served and decision["expert"] == next(iter(decision["predicted_scores"]))
    assert all({"expert", "category", "confidence", "top_categories"} <= set(d) for d in decisions)
    served = {e.id for e in load_config().experts}
    assert all(d["expert"] in served for d in decisions)


@pytest.mark.parametrize("bad", ['{"prompt": 3}', "not json", '["a list"]'])
def test_a_bad_input_line_is_named_with_its_line_number(tmp_path: Path, bad: str) -> None:
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text('{"prompt": "fine"}\n' + bad + "\n")
    proc = coe("route", "--input", str(prompts), "--router", str(BUILT))
    assert proc.returncode == 2 and f"{prompts}:2:" in proc.stderr and "Traceback" not in proc.stderr


def test_trained_from_the_same_evidence_as_preferences_its_switches_are_checked_on_them(tmp_path: Path) -> None:
    """The local experts' scores turned into every pairwise judgment they imply: the artifact records
    that the switch rule was checked on calibration comparisons, not on the imputed scores."""
    by_prompt: dict[tuple[str, str], dict[str, float]] = {}
    for line in SCORES.read_text().splitlines():
        item = json.loads(line)
        by_prompt.setdefault((item["prompt"], item["category"]), {})[item["expert"]] = item["score"]
    lines = []
    for (prompt, category), scores in by_prompt.items():
        experts = sorted(scores)
        for i, a in enumerate(experts):
            for b in experts[i + 1:]:
                winner = "tie" if scores[a] == scores[b] else ("model_a" if scores[a] > scores[b] else "model_b")
                lines.append(json.dumps({"prompt": prompt, "category": category, "model_a": a, "model_b": b,
                                         "winner": winner}))
    prefs = tmp_path / "prefs.jsonl"
    prefs.write_text("\n".join(lines) + "\n")
    proc = coe("train-router", "--scores", str(prefs), "--k", "all", "--name", "prefs", "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-2000:]
    predictor = json.loads((tmp_path / "prefs" / "router.json").read_text())["predictor"]
    assert predictor["calibration_basis"] == "comparisons" and isinstance(predictor["calibration_n"], int)
    said = " ".join((proc.stdout + proc.stderr).split())
    assert "pairwise preferences" in said
    assert predictor["quality_switches"] == ("switching on predicted quality is off" not in said)


def test_scores_with_categories_of_their_own_train_stage_1_on_them(tmp_path: Path) -> None:
    """A user's scores labelled with categories the default labelled set does not have: stage 1
    learns those categories (from the predictor's rows), so the router predicts them."""
    renamed = {"coding": "python", "math": "arithmetic"}
    lines = []
    for line in SCORES.read_text().splitlines():
        item = json.loads(line)
        lines.append(json.dumps({**item, "category": renamed[item["category"]]}))
    scores = tmp_path / "scores.jsonl"
    scores.write_text("\n".join(lines) + "\n")
    proc = coe("train-router", "--scores", str(scores), "--k", "all", "--name", "own", "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "stage 1 learns the scores' 2 categories" in " ".join((proc.stdout + proc.stderr).split())
    artifact, _ = RouterArtifact.load(tmp_path / "own")
    assert sorted(artifact.categories) == ["arithmetic", "python"]
    router = CategoryRouter.load(tmp_path / "own")
    decision = router.decide([{"role": "user", "content": "def add(a, b):\n    \"\"\"Return the sum of a and b.\"\"\""}])
    assert decision.category == "python"
