"""CoE against vLLM's own OpenAI server for the same engine, side by side in one run.

The baseline a user would run instead of CoE: `python -m vllm.entrypoints.openai.api_server` for the
prepared SmolLM2 checkpoint. The CoE arm is `coe serve` with that checkpoint as its one expert. Both
get the same engine settings (eager, bf16, the expert's max_model_len and max_num_seqs, one pinned
core through VLLM_CPU_OMP_THREADS_BIND, the same KV-cache size), the same HTTP client and the same
requests (greedy, `ignore_eos` so every answer is exactly max_tokens long: the same work on both
sides). The arms run one after the other, never together, so they do not share the cores.
`--rounds 2` runs them vLLM, CoE, CoE, vLLM (each server booted afresh) and reports each arm's mean
over its rounds: on a machine whose speed drifts during a run, a drift that is linear in time then
hits both arms alike.

Cells: max_tokens {1, 32} x concurrent clients {1, 8, 16} x {non-streaming, streaming}. Per cell,
``--requests`` requests after a warm-up; p50/p99 of the request latency (time to first token too when
streaming) and the throughput of the whole cell. The ratios (CoE / vLLM) are what to read: absolute
numbers on a shared 2-core machine move between runs. `--coe-env KEY=VALUE` and `--coe-engine
KEY=VALUE` (an engine option, e.g. `nice=null`) add a third arm, CoE with that change, run last: an
A/B of one setting against vLLM and plain CoE in the same run.

    make bench-vllm            # or: python bench/vllm_side_by_side.py --requests 48
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from coe import paths
from coe.config import load_config
from coe.experts.vllm_backend import engine_env
from coe.models.resolve import resolve_checkpoint
from coe.serve.subprocess_server import CoEServer, free_port
from endpoint_overhead import QUESTIONS, percentile  # bench/ is on sys.path when run as a script

EXPERT = "smollm2-135m-instruct"
BOOT_TIMEOUT_S = 600


@dataclass(frozen=True)
class Cell:
    arm: str
    max_tokens: int
    clients: int
    stream: bool
    requests: int
    p50_ms: float
    p99_ms: float
    ttft_p50_ms: float | None
    throughput_rps: float
    completion_tokens: int


class VLLMServer:
    """vLLM's OpenAI server in its own process group, stopped by that group (never by name)."""

    def __init__(self, checkpoint: Path, served_name: str, options, port: int, log: Path) -> None:
        self.port, self.log = port, log
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


def key_values(parser: argparse.ArgumentParser, items: list[str], flag: str = "--coe-env") -> dict[str, str]:
    """KEY=VALUE items as a dict (a usage error otherwise)."""
    try:
        return dict(item.split("=", 1) for item in items)
    except ValueError:
        parser.error(f"{flag} takes KEY=VALUE items, got {items}")


def engine_variant(logs: Path, overrides: dict[str, str]) -> Path:
    """The bench coe.yaml with its expert's engine options changed (values read as YAML: `nice=15`,
    `nice=null`), written beside it: an arm that differs from plain CoE in exactly those options."""
    expert = yaml.safe_load((logs / "coe.yaml").read_text())["experts"][0]
    expert["engine"].update({k: yaml.safe_load(v) for k, v in overrides.items()})
    return config_variant(logs, "coe-engine-variant.yaml", experts=[expert])


def same_engine_setup(prefix: str) -> tuple[Any, Path, Path]:
    """The bench expert's engine options pinned to core 0, its checkpoint, and a fresh log folder holding
    a coe.yaml with that expert alone: what both arms of a side-by-side run share."""
    expert = load_config().expert(EXPERT)
    if expert is None:
        raise SystemExit(f"the default coe.yaml has no expert {EXPERT}")
    options = expert.engine.model_copy(update={"cpu_bind": "0"})
    logs = Path(tempfile.mkdtemp(prefix=prefix))
    config = {"experts": [{**expert.model_dump(mode="json", exclude_none=True), "engine": options.model_dump()}]}
    (logs / "coe.yaml").write_text(yaml.safe_dump(config))
    return options, resolve_checkpoint(expert), logs


def config_variant(logs: Path, name: str, **sections: Any) -> Path:
    """The bench coe.yaml with top-level sections replaced (`server`, `router`...), written beside it as
    `name`: an A/B arm that differs from plain CoE in exactly those settings."""
    config = yaml.safe_load((logs / "coe.yaml").read_text())
    config.update(sections)
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


async def one_request(client: httpx.AsyncClient, model: str, question: str, max_tokens: int,
                      stream: bool) -> tuple[float, float | None, int]:
    """(seconds, seconds to the first token or None, completion tokens) of one chat completion."""
    body = {"model": model, "messages": [{"role": "user", "content": question}], "temperature": 0,
            "max_tokens": max_tokens, "ignore_eos": True}
    started = time.perf_counter()
    if not stream:
        resp = await client.post("/chat/completions", json=body)
        resp.raise_for_status()
        return time.perf_counter() - started, None, resp.json()["usage"]["completion_tokens"]
    body |= {"stream": True, "stream_options": {"include_usage": True}}
    first, tokens = None, 0
    async with client.stream("POST", "/chat/completions", json=body) as resp:
        resp.raise_for_status()
        async for line in resp.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            event = json.loads(line[6:])
            if first is None and any(c["delta"].get("content") for c in event.get("choices", [])):
                first = time.perf_counter() - started
            if event.get("usage"):
                tokens = event["usage"]["completion_tokens"]
    return time.perf_counter() - started, first, tokens


async def cell(client: httpx.AsyncClient, arm: str, model: str, max_tokens: int, clients: int, stream: bool,
               requests: int) -> Cell:
    for q in QUESTIONS[:2]:  # warm-up, not recorded
        await one_request(client, model, q, max_tokens, stream)
    queue = list(range(requests))
    latencies: list[float] = []
    firsts: list[float] = []
    tokens = 0

    async def worker() -> None:
        nonlocal tokens
        while queue:
            i = queue.pop()
            seconds, first, produced = await one_request(client, model, QUESTIONS[i % len(QUESTIONS)], max_tokens, stream)
            latencies.append(seconds * 1000)
            if first is not None:
                firsts.append(first * 1000)
            tokens += produced

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(clients)))
    elapsed = time.perf_counter() - started
    return Cell(arm, max_tokens, clients, stream, requests, round(statistics.median(latencies), 1),
                round(percentile(latencies, 0.99), 1), round(statistics.median(firsts), 1) if firsts else None,
                round(requests / elapsed, 2), tokens)


async def run_arm(url: str, arm: str, model: str, args: argparse.Namespace) -> list[Cell]:
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(base_url=f"{url}/v1", timeout=300, limits=limits) as client:
        cells = []
        for max_tokens in args.max_tokens:
            for clients in args.clients:
                for stream in (False, True):
                    cells.append(await cell(client, arm, model, max_tokens, clients, stream, args.requests))
                    c = cells[-1]
                    print(f"  {arm}: max_tokens {max_tokens}, {clients} clients, {'stream' if stream else 'whole'}: "
                          f"p50 {c.p50_ms:.1f} ms, {c.throughput_rps:.2f} req/s", flush=True)
        return cells


def mean_cells(runs: list[list[Cell]]) -> list[Cell]:
    """Each cell's numbers averaged over an arm's runs (one run: itself)."""
    if len(runs) <= 1:
        return runs[0] if runs else []
    out = []
    for cells in zip(*runs):
        first = cells[0]
        mean = lambda field: round(statistics.mean(getattr(c, field) for c in cells), 2)  # noqa: E731
        ttft = [c.ttft_p50_ms for c in cells if c.ttft_p50_ms is not None]
        out.append(Cell(first.arm, first.max_tokens, first.clients, first.stream, sum(c.requests for c in cells),
                        mean("p50_ms"), mean("p99_ms"), round(statistics.mean(ttft), 1) if ttft else None,
                        mean("throughput_rps"), sum(c.completion_tokens for c in cells) // len(cells)))
    return out


def markdown(vllm: list[Cell], coe: list[Cell]) -> str:
    lines = ["| max_tokens | clients | stream | vLLM p50 ms | CoE p50 ms | +ms | vLLM TTFT p50 | CoE TTFT p50 "
             "| vLLM req/s | CoE req/s | CoE / vLLM |",
             "|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for v, c in zip(vllm, coe):
        ttft = (f"{v.ttft_p50_ms:.1f} | {c.ttft_p50_ms:.1f}" if v.ttft_p50_ms is not None and c.ttft_p50_ms is not None
                else "- | -")
        lines.append(f"| {v.max_tokens} | {v.clients} | {'yes' if v.stream else 'no'} | {v.p50_ms:.1f} | {c.p50_ms:.1f} "
                     f"| {c.p50_ms - v.p50_ms:+.1f} | {ttft} | {v.throughput_rps:.2f} | {c.throughput_rps:.2f} "
                     f"| {c.throughput_rps / v.throughput_rps:.2f}x |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=48, help="requests per cell (after 2 warm-up requests)")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8, 16])
    parser.add_argument("--max-tokens", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--arms", nargs="+", choices=("vllm", "coe"), default=["vllm", "coe"],
                        help="one arm alone (an A/B of CoE settings); the ratios need both")
    parser.add_argument("--coe-env", nargs="+", default=[], metavar="KEY=VALUE",
                        help="also run a third arm: CoE with these environment variables (e.g. Ray Serve knobs)")
    parser.add_argument("--coe-engine", nargs="+", default=[], metavar="KEY=VALUE",
                        help="also run a third arm: CoE with these engine options (e.g. nice=15); with --coe-env, both")
    parser.add_argument("--rounds", type=int, choices=(1, 2), default=1,
                        help="2: vLLM, CoE, CoE, vLLM, each arm's cells averaged over its two runs (drift cancels)")
    parser.add_argument("--replica-arm", action="store_true",
                        help="also run CoE with server.direct_engines: false (every request through the expert replica)")
    parser.add_argument("--out", type=Path, default=paths.results_dir("bench") / "vllm_side_by_side.json")
    args = parser.parse_args()
    extra_env = key_values(parser, args.coe_env)
    engine_overrides = key_values(parser, args.coe_engine, "--coe-engine")
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    options, checkpoint, logs = same_engine_setup("coe-bench-vllm-")

    runs: dict[str, list[list[Cell]]] = {"vllm": [], "coe": []}
    order = [arm for r in range(args.rounds) for arm in (("vllm", "coe") if r % 2 == 0 else ("coe", "vllm"))]
    for n, name in enumerate(a for a in order if a in args.arms):
        if name == "vllm":
            print(f"vLLM arm: vllm.entrypoints.openai.api_server for {checkpoint} (logs in {logs}) ...", flush=True)
            server: Any = VLLMServer(checkpoint, EXPERT, options, free_port(), logs / f"vllm-{n}.log").start()
        else:
            print(f"CoE arm: coe serve with that checkpoint as its one expert (logs in {logs}) ...", flush=True)
            server = CoEServer(logs / "coe.yaml", free_port(), logs / f"coe-{n}.log").start()
        try:
            runs[name].append(asyncio.run(run_arm(server.url, name, EXPERT, args)))
        finally:
            server.stop()
    vllm, coe = mean_cells(runs["vllm"]), mean_cells(runs["coe"])
    tuned: list[Cell] = []
    variant = " ".join([*args.coe_env, *(f"engine.{item}" for item in args.coe_engine)])
    if variant:
        print(f"CoE arm with {variant} ...", flush=True)
        config = engine_variant(logs, engine_overrides) if engine_overrides else logs / "coe.yaml"
        tuned_server = CoEServer(config, free_port(), logs / "coe-env.log", env=extra_env).start()
        try:
            tuned = asyncio.run(run_arm(tuned_server.url, "coe+env", EXPERT, args))
        finally:
            tuned_server.stop()

    replica: list[Cell] = []
    if args.replica_arm:
        print("CoE arm through the expert replica (server.direct_engines: false) ...", flush=True)
        replica_server = CoEServer(replica_config(logs), free_port(), logs / "coe-replica.log").start()
        try:
            replica = asyncio.run(run_arm(replica_server.url, "coe+replica", EXPERT, args))
        finally:
            replica_server.stop()

    for v, c in [*zip(vllm, coe), *zip(vllm, tuned), *zip(vllm, replica)]:  # the same work on both sides, or the ratio means nothing
        if v.completion_tokens != c.completion_tokens:
            print(f"WARNING: max_tokens {v.max_tokens}, {v.clients} clients: vLLM generated {v.completion_tokens} "
                  f"tokens, CoE {c.completion_tokens}")
    print()
    if vllm and coe:
        print(markdown(vllm, coe))
    if vllm and tuned:
        print(f"\nwith {variant}:\n" + markdown(vllm, tuned))
    if vllm and replica:
        print("\nthrough the expert replica (server.direct_engines: false):\n" + markdown(vllm, replica))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"vllm": [asdict(c) for c in vllm], "coe": [asdict(c) for c in coe],
                                    "rounds": {arm: [[asdict(c) for c in run] for run in r] for arm, r in runs.items()},
                                    "coe_env": [asdict(c) for c in tuned], "coe_replica": [asdict(c) for c in replica],
                                    "settings": {**vars(args), "out": str(args.out), "engine": options.model_dump()}},
                                   indent=2) + "\n")
    print(f"\nwritten to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
