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
    return processes_titled(root_pid, f"ServeReplica:coe:{deployment}")


def serve_controller(root_pid: int) -> psutil.Process:
    """The Ray Serve controller of this test session's server."""
    (controller,) = processes_titled(root_pid, "ServeController")
    return controller


def processes_titled(root_pid: int, fragment: str) -> list[psutil.Process]:
    """The processes under `root_pid` whose command line (a Ray worker's title) holds `fragment`."""
    found = []
    for proc in psutil.Process(root_pid).children(recursive=True):
        try:
            if fragment in " ".join(proc.cmdline()):
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found
