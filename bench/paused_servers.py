"""Pause a whole server (every process under it) while another is measured: interleaved A/B benches.

This 2-core machine's speed drifts by 20-30% over minutes, so two servers measured one after the
other (each for a few minutes) differ by the drift as much as by what they do. Measuring them in
alternating short blocks instead needs both booted at once, and then the idle one must cost nothing:
an idle Ray cluster alone takes 5-10% of a core (GCS, raylet, the Serve controller's polling). So
the idle server is frozen with SIGSTOP, every process of its tree (Ray's actors start their own
process groups, so signalling the server's group would miss the replicas and the engine), and thawed
with SIGCONT for its block. Ray's health checks tolerate it: the frozen cluster's clocks jump, but
no process of it runs to see a peer missing (a paused CoE kept serving after 40 s blocks).
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager

import psutil


def process_tree(pid: int) -> list[psutil.Process]:
    """The process and its descendants, parents before children (psutil walks the tree that way)."""
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def _signal_tree(pid: int, sig: signal.Signals) -> None:
    for proc in process_tree(pid):
        try:
            proc.send_signal(sig)
        except psutil.NoSuchProcess:
            pass  # exited between the walk and the signal


def pause(pid: int) -> None:
    """SIGSTOP every process under `pid`, parents first, so none starts a child the walk missed."""
    _signal_tree(pid, signal.SIGSTOP)


def resume(pid: int) -> None:
    _signal_tree(pid, signal.SIGCONT)


@contextmanager
def running(pid: int) -> Iterator[None]:
    """The server under `pid` runs inside the block and is paused again after it, even on an error."""
    resume(pid)
    try:
        yield
    finally:
        pause(pid)
