"""Resume: a `coe eval` run killed midway (SIGKILL, no clean-up) and restarted ends with the same results
as an uninterrupted run, and regenerates nothing it had cached.

Greedy decoding with one request in flight (--parallel 1) makes answers reproducible: with several in
flight, vLLM-CPU's batched bf16 kernels can change greedy tokens (measured: 12 of 16 answers equal
between two runs at --parallel 2), which would test the engine, not the resume.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.integration.test_eval_mt_bench import env, eval_cmd

pytestmark = pytest.mark.integration
ARGS = ("--model", "coe", "--limit", "3", "--parallel", "1", "--max-tokens", "32", "--judge-max-tokens", "32")


def _records(path: Path, key: tuple[str, ...]) -> dict:
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    return {tuple(r[k] for k in key): r for r in rows}


def _comparable(results: dict) -> dict:
    keep = ("questions", "score", "score_turn1", "score_turn2", "per_category", "judgments", "answers", "answer_errors")
    return {k: results[k] for k in keep} | {"routing": results["routing"]}


def test_killed_run_resumes_to_the_uninterrupted_result(base_url: str, tmp_path: Path) -> None:
    straight = subprocess.run(eval_cmd("mt-bench", base_url, tmp_path, *ARGS, "--name", "straight"),
                              capture_output=True, text=True, timeout=600, env=env())
    assert straight.returncode == 0, straight.stderr[-3000:]

    cmd = eval_cmd("mt-bench", base_url, tmp_path, *ARGS, "--name", "killed")
    answers = tmp_path / "mt-bench" / "killed" / "answers.jsonl"
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env(), start_new_session=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        if answers.is_file() and len(answers.read_text().splitlines()) >= 2:
            break
        time.sleep(0.1)
    assert proc.poll() is None, "the run finished before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL
    before = answers.read_bytes()
    assert 2 <= len(before.splitlines()) < 6 and not (answers.parent / "results.json").exists()

    resumed = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env())
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    after = answers.read_bytes()
    complete_lines = before[: before.rfind(b"\n") + 1]
    assert after.startswith(complete_lines)  # cached answers kept as they were, nothing regenerated
    assert len(after.splitlines()) == 6  # each (question, turn) once

    folder_a, folder_b = tmp_path / "mt-bench" / "straight", answers.parent
    for name, key, field in (("answers.jsonl", ("question_id", "turn"), "text"),
                             ("judgments.jsonl", ("question_id", "turn"), "judgment")):
        a, b = _records(folder_a / name, key), _records(folder_b / name, key)
        assert a.keys() == b.keys()
        assert {k: v[field] for k, v in a.items()} == {k: v[field] for k, v in b.items()}
    res_a = json.loads((folder_a / "results.json").read_text())
    res_b = json.loads((folder_b / "results.json").read_text())
    assert _comparable(res_a) == _comparable(res_b)
    assert (folder_a / "per_prompt.jsonl").read_text() == (folder_b / "per_prompt.jsonl").read_text()
    assert json.loads((folder_b / "manifest.json").read_text())["resumed"]  # the manifest records the resume
