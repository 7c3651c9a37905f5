"""CoE's processes kept off the engines' cores (coe/experts/engine_cores.py).

Affinity is per thread on Linux, so each test that changes it runs in a thread of its own: the
restriction ends with that thread and the test process keeps its cores.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Callable
from typing import Any

import pytest

from coe.config import CoEConfig
from coe.experts.engine_cores import (ENGINE_CPUS_ENV, keep_off_engine_cores, parse_cpu_list, pinned_cores,
                                      started_on_engine_cpus)
from coe.serve.runner import engine_binds

CORES = sorted(os.sched_getaffinity(0))
needs_two_cores = pytest.mark.skipif(len(CORES) < 2, reason="needs two usable cores")


def in_own_thread(work: Callable[[], Any]) -> Any:
    out: dict[str, Any] = {}

    def run() -> None:
        try:
            out["value"] = work()
        except BaseException as err:  # noqa: BLE001 - handed back to the test
            out["error"] = err

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    if "error" in out:
        raise out["error"]
    return out["value"]


@pytest.fixture(autouse=True)
def no_recorded_cores(monkeypatch) -> None:
    """Absent during the test and removed after it, whatever the test's code set."""
    monkeypatch.setenv(ENGINE_CPUS_ENV, "")
    monkeypatch.delenv(ENGINE_CPUS_ENV)


def test_parse_cpu_list() -> None:
    assert parse_cpu_list("0") == {0}
    assert parse_cpu_list("0-3") == {0, 1, 2, 3}
    assert parse_cpu_list("0,2,4-5") == {0, 2, 4, 5}
    for spec in ("auto", "all", "0-1|2-3", "", "1-"):
        with pytest.raises(ValueError):
            parse_cpu_list(spec)


def test_binds_that_name_no_fixed_cores_pin_none() -> None:
    assert pinned_cores(["0", None, "auto", "2-3"]) == {0, 2, 3}


@needs_two_cores
def test_the_caller_and_what_it_starts_keep_off_the_engines_core(monkeypatch) -> None:
    engine, rest = CORES[0], set(CORES[1:])

    def keep_off_then_start_a_process() -> tuple[str, set[int], str]:
        said = keep_off_engine_cores([str(engine)])
        child = subprocess.run([sys.executable, "-c", "import os; print(sorted(os.sched_getaffinity(0)))"],
                               capture_output=True, text=True, check=True).stdout.strip()
        return said, os.sched_getaffinity(0), child

    said, mine, child = in_own_thread(keep_off_then_start_a_process)
    assert mine == rest and child == str(sorted(rest))
    assert f"off the engines' cores {engine}" in said
    assert os.environ[ENGINE_CPUS_ENV] == ",".join(map(str, CORES))
    assert os.sched_getaffinity(0) == set(CORES)  # the test's own thread kept its cores


@needs_two_cores
def test_an_engine_starts_with_every_core_coe_serve_had(monkeypatch) -> None:
    def kept_off_then_launch() -> tuple[str, set[int], set[int]]:
        keep_off_engine_cores([str(CORES[0])])
        started = threading.Event()
        waiter = threading.Thread(target=started.wait)  # as an engine client's output thread
        with started_on_engine_cpus():
            engine = subprocess.run([sys.executable, "-c", "import os; print(sorted(os.sched_getaffinity(0)))"],
                                    capture_output=True, text=True, check=True).stdout.strip()
            waiter.start()
        try:
            return engine, os.sched_getaffinity(0), os.sched_getaffinity(waiter.native_id)
        finally:
            started.set()
            waiter.join()

    engine, after, thread_started_meanwhile = in_own_thread(kept_off_then_launch)
    assert engine == str(CORES)
    assert after == thread_started_meanwhile == set(CORES[1:])  # back on CoE's cores


def test_nothing_changes_when_every_core_is_an_engines_or_none_is_pinned() -> None:
    every = ",".join(map(str, CORES))
    assert "every core" in in_own_thread(lambda: keep_off_engine_cores([every]))
    assert "no engine is pinned" in in_own_thread(lambda: keep_off_engine_cores([None, "auto"]))
    assert ENGINE_CPUS_ENV not in os.environ
    with started_on_engine_cpus():  # outside `coe serve`: no change
        assert os.sched_getaffinity(0) == set(CORES)


def test_engine_binds_are_the_local_engines_and_pool_slots() -> None:
    config = CoEConfig.model_validate({
        "experts": [
            {"id": "a", "weights": "bundled:smollm2-135m-instruct", "engine": {"cpu_bind": "0"}},
            {"id": "b", "weights": "bundled:smollm2-135m-instruct"},
            {"id": "r", "remote": {"model": "openai/gpt-4o-mini"}},
        ],
    })
    assert engine_binds(config) == ["0", None]
    assert config.server.keep_off_engine_cores is True
