"""The servers a side-by-side bench compares: vLLM's own OpenAI server and `coe serve`'s configs.

Both run the bench expert with the same engine settings (`same_engine_setup`); the config variants
are CoE arms that differ from plain CoE in exactly the settings named (used by vllm_side_by_side.py
and hop_profile.py).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

from coe.config import load_config
from coe.experts.vllm_backend import engine_env
from coe.models.resolve import resolve_checkpoint

EXPERT = "smollm2-135m-instruct"
BOOT_TIMEOUT_S = 600


def move_threads(pid: int, cores: set[int]) -> None:
    """Every thread of one process onto `cores` (threads it starts later inherit their creator's);
    its child processes keep theirs. With vLLM's API server: its frontend off the engine's core, where
    `coe serve` keeps its own processes (`server.keep_off_engine_cores`), while the engine's processes,
    already started, keep every core, as under CoE."""
    for tid in os.listdir(f"/proc/{pid}/task"):
        os.sched_setaffinity(int(tid), cores)


class VLLMServer:
    """vLLM's OpenAI server in its own process group, stopped by that group (never by name)."""

    def __init__(self, checkpoint: Path, served_name: str, options, port: int, log: Path,
                 frontend_cores: set[int] | None = None) -> None:
        self.port, self.log, self.frontend_cores = port, log, frontend_cores
        self.cmd = [
            sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(checkpoint),
            "--served-model-name", served_name, "--host", "127.0.0.1", "--port", str(port),
            "--dtype", options.dtype, "--max-model-len", str(options.max_model_len),
            "--max-num-seqs", str(options.max_num_seqs), "--seed", str(options.seed),
            "--disable-log-stats", "--disable-uvicorn-access-log",
            *(["--enforce-eager"] if options.enforce_eager else []),
        ]
        self.env = {**os.environ, **engine_env(options), "PYTHONUNBUFFERED": "1"}
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "VLLMServer":
        self.proc = subprocess.Popen(self.cmd, stdout=self.log.open("wb"), stderr=subprocess.STDOUT,
                                     env=self.env, start_new_session=True)
        deadline = time.monotonic() + BOOT_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"vLLM's server exited with {self.proc.returncode}:\n{self.log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{self.url}/health", timeout=5).status_code == 200:
                    if self.frontend_cores:
                        move_threads(self.proc.pid, self.frontend_cores)
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(2)
        self.stop()
        raise TimeoutError(f"vLLM's server not healthy after {BOOT_TIMEOUT_S} s:\n{self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)


def settings_variant(logs: Path, engine: dict[str, str], server: dict[str, str]) -> Path:
    """The bench coe.yaml with its expert's engine options and `server` settings changed (values read as
    YAML: `nice=null`, `direct_engines=false`), written beside it: an arm that differs from plain CoE
    in exactly those settings."""
    config = yaml.safe_load((logs / "coe.yaml").read_text())
    expert = config["experts"][0]
    expert["engine"].update({k: yaml.safe_load(v) for k, v in engine.items()})
    return config_variant(logs, "coe-variant.yaml", experts=[expert],
                          server={k: yaml.safe_load(v) for k, v in server.items()})


def same_engine_setup(prefix: str) -> tuple[Any, Path, Path]:
    """The bench expert's engine options pinned to core 0, its checkpoint, and a fresh log folder holding
    a coe.yaml with that expert alone: what both arms of a side-by-side run share. CoE runs without its
    access log (`server.access_log: false`) as vLLM's server runs with `--disable-uvicorn-access-log`:
    neither writes a line per request (`--coe-server access_log=true` is the A/B)."""
    expert = load_config().expert(EXPERT)
    if expert is None:
        raise SystemExit(f"the default coe.yaml has no expert {EXPERT}")
    options = expert.engine.model_copy(update={"cpu_bind": "0"})
    logs = Path(tempfile.mkdtemp(prefix=prefix))
    config = {"server": {"access_log": False},
              "experts": [{**expert.model_dump(mode="json", exclude_none=True), "engine": options.model_dump()}]}
    (logs / "coe.yaml").write_text(yaml.safe_dump(config))
    return options, resolve_checkpoint(expert), logs


def config_variant(logs: Path, name: str, **sections: Any) -> Path:
    """The bench coe.yaml with top-level sections changed (`server`, `router`...; a mapping's keys are
    updated, anything else replaced), written beside it as `name`: an A/B arm that differs from plain
    CoE in exactly those settings."""
    config = yaml.safe_load((logs / "coe.yaml").read_text())
    for section, value in sections.items():
        old = config.get(section)
        config[section] = {**old, **value} if isinstance(old, dict) and isinstance(value, dict) else value
    path = logs / name
    path.write_text(yaml.safe_dump(config))
    return path


def proxy_config(logs: Path) -> Path:
    """Ray Serve's HTTP proxy in front of the ingress (`server.direct_ingress: false`, the path before
    coe/serve/direct_ingress.py): the A/B of that change."""
    return config_variant(logs, "coe-proxy.yaml", server={"direct_ingress": False})


def replica_config(logs: Path) -> Path:
    """Every request through the expert replica's Ray Serve handle (`server.direct_engines: false`, the
    path before coe/serve/linked_engine.py): the A/B of that change."""
    return config_variant(logs, "coe-replica.yaml", server={"direct_engines": False})


def prioritize_client(nice: int) -> str:
    """Puts this process's scheduler autogroup at `nice` (Linux, root or CAP_SYS_NICE); says what it did.

    Why: with autogroups on (`/proc/sys/kernel/sched_autogroup_enabled`, on here), CPU is shared
    between sessions, and a process's own nice value does not count against another session's. The
    client shares the 2 cores with the server under test; left at its session's default, its event
    loop woke up to 339-362 ms late under `coe serve` (77-113 ms under vLLM's server), and the
    requests it was late to send looked like 1.2-2.9 s server stalls (README, "Under load that never
    lets up"). A client on another machine
    never waits for the server's CPU, so this one should not either: both arms get the same client."""
    try:
        with open("/proc/self/autogroup", "w") as handle:
            handle.write(str(nice))
        with open("/proc/self/autogroup") as handle:
            return f"client autogroup: {handle.read().strip()}"
    except OSError as err:
        return f"client autogroup left as it is ({err.strerror}): the client may be starved of CPU"


def add_client_priority_argument(parser: argparse.ArgumentParser) -> None:
    """`--client-autogroup-nice`, the same flag and default in every bench whose client shares the cores."""
    parser.add_argument("--client-autogroup-nice", type=int, default=-10,
                        help="this process's autogroup nice (see prioritize_client); 0 leaves the client as any process")
