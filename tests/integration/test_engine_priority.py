"""Every engine of the service runs at `engine.nice` (0 by default), not at the nice 15 Ray gives its
workers: the engine-core and worker processes under this session's server are checked on the live
service (Gemma's dedicated engine and the two swap pools' slot engines)."""

from __future__ import annotations

import os

import psutil
import pytest

from tests.integration.conftest import GEMMA
from tests.integration.processes import replica_processes


@pytest.mark.skipif(os.geteuid() != 0, reason="lowering a nice value needs root (CI runs as root)")
def test_engine_processes_run_at_the_configured_nice_below_their_replica(coe_server):
    engines = [p for p in psutil.Process(coe_server.proc.pid).children(recursive=True) if p.name().startswith("VLLM::")]
    cores = [p for p in engines if p.name().startswith("VLLM::EngineCor")]  # comm holds 15 characters
    assert len(cores) >= 3, [p.name() for p in engines]  # Gemma's engine, the SmolLM2 pool's, the MoE pool's
    assert {p.pid: p.nice() for p in engines} == {p.pid: 0 for p in engines}
    gemma = replica_processes(coe_server.proc.pid, GEMMA)
    assert [p.nice() for p in gemma] == [15]  # Ray's worker niceness, which the engine would otherwise inherit
