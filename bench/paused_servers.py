"""Pause a whole server (every process under it) while another is measured: interleaved A/B benches.

This 2-core machine's speed drifts by 20-30% over minutes, so two servers measured one after the
other (each for a few minutes) differ by the drift as much as by what they do. Measuring them in
alternating short blocks instead needs both booted at once, and then the idle one must cost nothing:
an idle Ray cluster alone takes 5-10% of a core (GCS, raylet, the Serve controller's polling). So
the idle server is frozen with SIGSTOP, every process of its tree (Ray's actors start their own
process groups, so signalling the server's group would miss the replicas and the engine), and thawed
with SIGCONT for its block. Ray's health checks tolerate it: the frozen cluster's clocks jump, but
no process of it runs to see a peer missing (a paused CoE kept serving after 40 s blocks).

The processes a pause stopped are recorded, and a resume continues exactly those: a process whose
parent died meanwhile (reparented out of the tree), or a tree whose root crashed, is still thawed.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager

import psutil


def process_tree(pid: int) -> list[psutil.Process]:
    """The process and its descendants (none if it is gone)."""
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


class PausableServer:
    """The process tree under one server's root pid, paused and resumed as a whole."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.stopped: dict[int, psutil.Process] = {}

    def pause(self) -> None:
        """SIGSTOP every process under the root; walk again until a walk finds nothing new, so a child
        forked between a walk and its parent's stop is caught too."""
        for _ in range(10):
            fresh = [p for p in process_tree(self.pid) if p.pid not in self.stopped]
            if not fresh:
                return
            for proc in fresh:
                try:
                    proc.send_signal(signal.SIGSTOP)
                    self.stopped[proc.pid] = proc
                except psutil.NoSuchProcess:
                    pass  # exited between the walk and the signal

    def resume(self) -> None:
        """SIGCONT every process the pauses stopped, whether or not it is still under the root."""
        for proc in self.stopped.values():
            try:
                proc.send_signal(signal.SIGCONT)  # psutil checks the pid was not reused
            except psutil.NoSuchProcess:
                pass
        self.stopped.clear()

    @contextmanager
    def running(self) -> Iterator[None]:
        """The server runs inside the block and is paused again after it, even on an error."""
        self.resume()
        try:
            yield
        finally:
            self.pause()
