"""A real redis-server on a free port, started and stopped by its owner (never by name): for tests and
benchmarks, like `coe.serve.subprocess_server` for the service."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

from coe.serve.subprocess_server import free_port


class RedisServer:
    def __init__(self, workdir: Path, port: int | None = None) -> None:
        self.workdir = workdir
        self.port = port or free_port()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def _cli(self, *args: str, timeout: float = 5) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["redis-cli", "-p", str(self.port), *args], capture_output=True, text=True, timeout=timeout, check=False)

    def start(self) -> RedisServer:
        if shutil.which("redis-server") is None:
            raise RuntimeError("redis-server is not installed (`make redis-server` installs it)")
        subprocess.run(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--daemonize", "yes", "--dir", str(self.workdir), "--pidfile", str(self.workdir / f"redis-{self.port}.pid"),
             "--logfile", str(self.workdir / f"redis-{self.port}.log")],
            check=True, timeout=10,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self._cli("ping").stdout.strip() == "PONG":
                return self
            time.sleep(0.02)
        raise RuntimeError(f"redis-server on port {self.port} did not answer PING")

    def stop(self) -> None:
        """`shutdown nosave`: the data is gone, as after a crash of a Redis without persistence."""
        self._cli("shutdown", "nosave")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and self._cli("ping").returncode == 0:
            time.sleep(0.02)

    def keys(self, pattern: str = "*") -> list[str]:
        return sorted(k for k in self._cli("--scan", "--pattern", pattern).stdout.split() if k)

    def command(self, *args: str) -> str:
        return self._cli(*args).stdout.strip()
