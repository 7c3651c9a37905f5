"""Start a real `coe serve` in a subprocess on a free port and stop it by process group.

Used by the integration tests and the benchmarks (like vLLM's RemoteOpenAIServer): the service is the
real thing (Ray Serve + vLLM engines), started the way a user starts it, and polled until healthy.
Nothing here kills processes by name.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from coe.serve.direct_ingress import free_local_port


def free_port() -> int:
    return free_local_port("127.0.0.1")


# How a start fails when another process took its port first: Ray Serve's proxy; CoE's own check
# before booting; the direct-ingress replica (coe/serve/direct_ingress.py) when the port went later.
BIND_FAILED = ("Failed to bind to address", "cannot serve on", "server: port already in use")


class CoEServer:
    def __init__(self, config_path: Path, port: int, log_path: Path, boot_timeout_s: float = 600,
                 env: dict[str, str] | None = None) -> None:
        self.config_path = config_path
        self.extra_env = dict(env or {})  # on top of this process's environment (a bench's A/B of settings)
        self.port = port
        self.log_path = log_path
        self.boot_timeout_s = boot_timeout_s
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, attempts: int = 3, on_new_port: Callable[[int, int], None] | None = None) -> "CoEServer":
        """Boots and waits until healthy. `free_port()` only finds a port that was free a moment ago:
        Ray's proxy binds it seconds later, and another process (often one of Ray's own workers) can
        take it first. That start fails with "Failed to bind to address"; it is retried on a fresh
        port (`self.port` and `url` follow), any other failure is raised at once. `on_new_port(old,
        new)` runs before such a retry, for a config that names the server's own port."""
        env = {**os.environ, **self.extra_env, "PYTHONUNBUFFERED": "1"}
        for attempt in range(attempts):
            cmd = [sys.executable, "-m", "coe.cli.main", "serve", "--config", str(self.config_path), "--port", str(self.port)]
            self.proc = subprocess.Popen(
                cmd, stdout=self.log_path.open("wb"), stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
            try:
                self._wait_healthy()
                return self
            except RuntimeError:
                if attempt + 1 == attempts or not any(marker in self.log_tail(400) for marker in BIND_FAILED):
                    raise
                self._kill_group()  # Ray's daemons of the failed start
                old, self.port = self.port, free_port()
                if on_new_port is not None:
                    on_new_port(old, self.port)
        return self

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + self.boot_timeout_s
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"coe serve exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                if httpx.get(f"{self.url}/health", timeout=5).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(2)
        self.stop()
        raise TimeoutError(f"coe serve not healthy after {self.boot_timeout_s}s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 60) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        pgid = os.getpgid(self.proc.pid)
        self.proc.send_signal(signal.SIGINT)  # clean shutdown: Serve, engines, then Ray
        try:
            self.proc.wait(timeout=90)
        except subprocess.TimeoutExpired:
            pass
        # Ray's own daemons (gcs, raylet, workers) were started in this process group.
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def _kill_group(self) -> None:
        """The process group of a start that already exited (its leader is gone, its daemons may not be)."""
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # the leader's pid is the group id (start_new_session)
        except ProcessLookupError:
            pass
