"""bench/paused_servers.py on real process trees: a pause stops every process under the root (the
children that start their own session too, as Ray's actors do), a resume continues exactly those,
even one whose parent died meanwhile."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from paused_servers import PausableServer  # noqa: E402

# A root that starts two sleeping children, one in a session of its own, and then sleeps itself.
TREE = """
import subprocess, sys, time
child = [sys.executable, "-c", "import time; time.sleep(120)"]
subprocess.Popen(child)
subprocess.Popen(child, start_new_session=True)
print("ready", flush=True)
time.sleep(120)
"""


def wait_for(predicate, seconds: float = 10) -> bool:
    deadline = time.monotonic() + seconds
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.05)
    return predicate()


@pytest.fixture
def tree():
    root = subprocess.Popen([sys.executable, "-c", TREE], stdout=subprocess.PIPE, text=True, start_new_session=True)
    assert root.stdout.readline().strip() == "ready"
    procs = [psutil.Process(root.pid), *psutil.Process(root.pid).children(recursive=True)]
    assert len(procs) == 3
    yield root, procs
    for proc in procs:
        try:
            proc.resume()
            proc.kill()
        except psutil.NoSuchProcess:
            pass
    root.wait(timeout=10)


def stopped(proc: psutil.Process) -> bool:
    return proc.status() == psutil.STATUS_STOPPED


def test_pause_stops_every_process_and_resume_continues_them(tree) -> None:
    root, procs = tree
    server = PausableServer(root.pid)
    server.pause()
    assert wait_for(lambda: all(stopped(p) for p in procs))
    server.resume()
    assert wait_for(lambda: not any(stopped(p) for p in procs))


def test_running_block_pauses_again_after_an_error(tree) -> None:
    root, procs = tree
    server = PausableServer(root.pid)
    server.pause()
    with pytest.raises(RuntimeError):
        with server.running():
            assert wait_for(lambda: not any(stopped(p) for p in procs))
            raise RuntimeError("a failed block")
    assert wait_for(lambda: all(stopped(p) for p in procs))
    server.resume()


def test_a_child_whose_root_died_while_paused_is_still_resumed(tree) -> None:
    root, procs = tree
    server = PausableServer(root.pid)
    server.pause()
    procs[0].kill()  # the root dies; its children are reparented out of the tree
    root.wait(timeout=10)
    server.resume()
    assert wait_for(lambda: not any(stopped(p) for p in procs[1:]))
