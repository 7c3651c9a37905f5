"""CPU time of a server's whole process tree, per process and per role (engine, frontend, the rest).

Why: on 2 cores a server's throughput is whatever CPU its processes leave each other, and the ratio
between two servers does not say whose CPU went where. Read before and after a timed block, the
roles' CPU per request shows whether a slow block was the engine getting less, the frontend doing
more, or the processes around them (Ray's daemons, Serve's actors) taking it. Used by idle_cpu.py
(idle, per process) and side_by_side_cells.py (per block, per role).
"""

from __future__ import annotations

import psutil

from paused_servers import process_tree

ROLES = ("engine", "frontend", "rest")


def cpu_seconds(root: int) -> dict[int, tuple[str, float]]:
    """CPU time (user + system) of every process under `root`, by pid, with its title (its command line)."""
    out = {}
    for proc in process_tree(root):
        try:
            times = proc.cpu_times()
            out[proc.pid] = (" ".join(proc.cmdline()), times.user + times.system)
        except psutil.Error:  # ended between the listing and the read
            continue
    return out


def role_of(title: str) -> str:
    """engine: vLLM's engine-core and worker processes (they title themselves VLLM::...); frontend:
    what speaks HTTP and runs vLLM's client side (vLLM's API server, CoE's ingress replica); rest:
    everything else (`coe serve` itself, Ray's daemons, Serve's controller and proxy, the expert
    replica that owns the engine)."""
    if title.startswith("VLLM::"):
        return "engine"
    if "vllm.entrypoints.openai.api_server" in title or "ServeReplica:coe:ingress" in title:
        return "frontend"
    return "rest"


def cpu_by_role(before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]]) -> dict[str, float]:
    """Seconds of CPU each role used between two `cpu_seconds` readings (a process born in between
    counts from zero)."""
    used = dict.fromkeys(ROLES, 0.0)
    for pid, (title, seconds) in after.items():
        used[role_of(title)] += seconds - before.get(pid, (title, 0.0))[1]
    return used
