"""The live service keeps Serve's per-request access lines in the ingress replica's log file and out of
`coe serve`'s console (`server.console_access_log: false`, the default; coe/serve/access_log.py)."""

from __future__ import annotations

import time
from pathlib import Path

import psutil

from tests.integration.conftest import SMOL

ACCESS_LINE = "POST /v1/chat/completions 200"


def ingress_log_files(root_pid: int) -> list[Path]:
    """The Serve log files the ingress replica under this session's server holds open."""
    files = []
    for proc in psutil.Process(root_pid).children(recursive=True):
        try:
            if "ServeReplica:coe:ingress" in " ".join(proc.cmdline()):
                files += [Path(f.path) for f in proc.open_files() if "/logs/serve/" in f.path]
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return files


def test_access_lines_reach_the_replica_log_file_not_the_console(coe_server, client) -> None:
    for _ in range(3):
        assert client.chat.completions.create(model=SMOL, messages=[{"role": "user", "content": "Hi"}], max_tokens=1)
    files = ingress_log_files(coe_server.proc.pid)
    assert files, "the ingress replica holds no Serve log file open"
    deadline = time.monotonic() + 30
    while not any(ACCESS_LINE in f.read_text(errors="replace") for f in files) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert any(ACCESS_LINE in f.read_text(errors="replace") for f in files), files
    time.sleep(3)  # Ray's log monitor forwards a replica's stderr to the console within about a second
    console = coe_server.log_path.read_text(errors="replace")
    assert "ServeReplica:coe:ingress" in console  # the replica's other lines do reach it
    assert ACCESS_LINE not in console
