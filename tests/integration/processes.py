"""Finding this test session's own Ray Serve processes by walking its server's process tree (never by
name across the machine, where other Ray clusters may run)."""

from __future__ import annotations

import psutil

from coe.serve.serve_config import expert_deployment_name


def replica_processes(root_pid: int, expert: str) -> list[psutil.Process]:
    """The Ray Serve replica processes of `expert` under this test session's server."""
    return deployment_processes(root_pid, expert_deployment_name(expert))


def deployment_processes(root_pid: int, deployment: str) -> list[psutil.Process]:
    """The Ray Serve replica processes of the CoE app's `deployment` under this test session's server."""
    wanted = f"ServeReplica:coe:{deployment}"
    found = []
    for proc in psutil.Process(root_pid).children(recursive=True):
        try:
            if wanted in " ".join(proc.cmdline()):
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found
