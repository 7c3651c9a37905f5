"""CoE against vLLM's own OpenAI server for the same engine, side by side in one run.

The baseline a user would run instead of CoE: `python -m vllm.entrypoints.openai.api_server` for the
prepared SmolLM2 checkpoint. The CoE arm is `coe serve` with that checkpoint as its one expert. Both
get the same engine settings (eager, bf16, the expert's max_model_len and max_num_seqs, one pinned
core through VLLM_CPU_OMP_THREADS_BIND, the same KV-cache size), the same HTTP client and the same
requests (greedy, `ignore_eos` so every answer is exactly max_tokens long: the same work on both
sides).

Cells: max_tokens {1, 32} x concurrent clients {1, 8, 16} x {non-streaming, streaming}. Each cell runs
as `--blocks` rounds (default: twice the arms, 4 for vLLM and CoE). All servers are up; in each round
each arm runs one block of the same requests while the others are paused whole (SIGSTOP of every
process under them, so they cost nothing: bench/paused_servers.py), the arms' order rotating by round.
This 2-core machine's speed drifts by 20-30% over minutes, and an arm measured minutes after the other
carried that drift in its ratio; interleaved blocks share it, and the blocks of one round give one
ratio, so the table's 95% interval says how far the ratio moved within the run. Per cell: p50/p99 of
the request latency over all blocks (time to first token too when streaming) and the throughput over
the blocks' summed time. `--blocks 0` runs the older design, arm after arm (`--rounds 2`: vLLM, CoE,
CoE, vLLM; the older runs used `--requests 48` per cell). `--coe-env KEY=VALUE`, `--coe-engine
KEY=VALUE` (an engine option, e.g. `nice=null`) and `--coe-server KEY=VALUE` (a `server` setting) add
an arm, CoE with those changes; `--replica-arm` one with every request through the expert replica: an
A/B of one setting against vLLM and plain CoE in the same run.

    make bench-vllm            # or: python bench/vllm_side_by_side.py --clients 1 8
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from collections.abc import Callable
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
from paused_servers import PausableServer

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
    block_rps: tuple[float, ...] = ()  # with --blocks: each block's throughput, in block order


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


def settings_variant(logs: Path, engine: dict[str, str], server: dict[str, str]) -> Path:
    """The bench coe.yaml with its expert's engine options and `server` settings changed (values read as
    YAML: `nice=null`, `direct_engines=false`), written beside it: an arm that differs from plain CoE
    in exactly those settings."""
    config = yaml.safe_load((logs / "coe.yaml").read_text())
    expert = config["experts"][0]
    expert["engine"].update({k: yaml.safe_load(v) for k, v in engine.items()})
    return config_variant(logs, "coe-variant.yaml", experts=[expert],
                          server={**config.get("server", {}), **{k: yaml.safe_load(v) for k, v in server.items()}})


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


@dataclass(frozen=True)
class Block:
    """The raw timings of one run of a cell's requests."""
    latencies_ms: list[float]
    firsts_ms: list[float]
    tokens: int
    elapsed_s: float


async def timed_block(client: httpx.AsyncClient, model: str, max_tokens: int, clients: int, stream: bool,
                      requests: int) -> Block:
    """`requests` requests from `clients` concurrent clients, after two untimed warm-up requests."""
    for q in QUESTIONS[:2]:
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
    return Block(latencies, firsts, tokens, time.perf_counter() - started)


def summarize(arm: str, max_tokens: int, clients: int, stream: bool, blocks: list[Block]) -> Cell:
    """One cell from its blocks: percentiles over every request, throughput over the blocks' summed
    time, and each block's own throughput (paired with the other arm's block run beside it)."""
    latencies = [ms for b in blocks for ms in b.latencies_ms]
    firsts = [ms for b in blocks for ms in b.firsts_ms]
    return Cell(arm, max_tokens, clients, stream, len(latencies), round(statistics.median(latencies), 1),
                round(percentile(latencies, 0.99), 1), round(statistics.median(firsts), 1) if firsts else None,
                round(len(latencies) / sum(b.elapsed_s for b in blocks), 4), sum(b.tokens for b in blocks),
                tuple(round(len(b.latencies_ms) / b.elapsed_s, 4) for b in blocks))


async def cell(client: httpx.AsyncClient, arm: str, model: str, max_tokens: int, clients: int, stream: bool,
               requests: int) -> Cell:
    return summarize(arm, max_tokens, clients, stream, [await timed_block(client, model, max_tokens, clients, stream, requests)])


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


def block_requests(args: argparse.Namespace, max_tokens: int, clients: int) -> int:
    """Requests per block: at least four rounds of the clients, and 4x as many in one-token cells (each
    request is 20-30x shorter there), so no block lasts much under a second."""
    return max(args.requests, 4 * clients) * (4 if max_tokens == 1 else 1)


async def run_interleaved(servers: dict[str, Any], pausable: dict[str, PausableServer], model: str,
                          args: argparse.Namespace) -> dict[str, list[Cell]]:
    """Every cell as `args.blocks` rounds; in each round every arm runs one block of the same requests
    while the other servers are paused (bench/paused_servers.py), the arms' order rotating by round
    (with two arms: vLLM CoE, CoE vLLM, ...). So a drift of the machine's speed hits every arm alike,
    and each arm's block has the other arms' blocks of the same round beside it in time: the ratio's
    interval comes from those pairs."""
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    clients_by_arm = {arm: httpx.AsyncClient(base_url=f"{s.url}/v1", timeout=300, limits=limits) for arm, s in servers.items()}
    arms = list(servers)
    cells: dict[str, list[Cell]] = {arm: [] for arm in arms}
    try:
        for max_tokens in args.max_tokens:
            for clients in args.clients:
                for stream in (False, True):
                    requests = block_requests(args, max_tokens, clients)
                    blocks: dict[str, list[Block]] = {arm: [] for arm in arms}
                    for round_ in range(args.blocks):
                        for arm in arms[round_ % len(arms):] + arms[:round_ % len(arms)]:
                            with pausable[arm].running():
                                blocks[arm].append(await timed_block(clients_by_arm[arm], model, max_tokens, clients,
                                                                     stream, requests))
                    for arm in arms:
                        cells[arm].append(summarize(arm, max_tokens, clients, stream, blocks[arm]))
                    line = ", ".join(f"{arm} p50 {cells[arm][-1].p50_ms:.1f} ms {cells[arm][-1].throughput_rps:.2f} req/s" for arm in arms)
                    print(f"  max_tokens {max_tokens}, {clients} clients, {'stream' if stream else 'whole'}, "
                          f"{args.blocks} x {requests} requests: {line}", flush=True)
    finally:
        for client in clients_by_arm.values():
            await client.aclose()
    return cells


# Two-sided 95% quantiles of Student's t by degrees of freedom; 1.96 beyond 30.
T95 = {1: 12.71, 2: 4.30, 3: 3.18, 4: 2.78, 5: 2.57, 6: 2.45, 7: 2.36, 8: 2.31, 9: 2.26, 10: 2.23, 11: 2.20,
       12: 2.18, 13: 2.16, 14: 2.14, 15: 2.13, 16: 2.12, 17: 2.11, 18: 2.10, 19: 2.09, 20: 2.09, 21: 2.08,
       22: 2.07, 23: 2.07, 24: 2.06, 25: 2.06, 26: 2.06, 27: 2.05, 28: 2.05, 29: 2.05, 30: 2.04}


def block_ratio_interval(vllm: Cell, coe: Cell) -> tuple[float, float, float] | None:
    """The geometric mean of CoE's throughput over vLLM's in the paired blocks and its 95% interval (a
    t-interval of the ratios' logarithms: ratios multiply); None with fewer than two blocks."""
    pairs = list(zip(coe.block_rps, vllm.block_rps))
    if len(pairs) < 2:
        return None
    logs = [math.log(c / v) for c, v in pairs]
    mean, half = statistics.mean(logs), T95.get(len(logs) - 1, 1.96) * statistics.stdev(logs) / math.sqrt(len(logs))
    return math.exp(mean), math.exp(mean - half), math.exp(mean + half)


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
             "| vLLM req/s | CoE req/s | CoE / vLLM | paired blocks: mean [95% interval] |",
             "|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for v, c in zip(vllm, coe):
        bounds = block_ratio_interval(v, c)
        interval = f"{bounds[0]:.3f}x [{bounds[1]:.3f}, {bounds[2]:.3f}]" if bounds else "-"
        ttft = (f"{v.ttft_p50_ms:.1f} | {c.ttft_p50_ms:.1f}" if v.ttft_p50_ms is not None and c.ttft_p50_ms is not None
                else "- | -")
        lines.append(f"| {v.max_tokens} | {v.clients} | {'yes' if v.stream else 'no'} | {v.p50_ms:.1f} | {c.p50_ms:.1f} "
                     f"| {c.p50_ms - v.p50_ms:+.1f} | {ttft} | {v.throughput_rps:.2f} | {c.throughput_rps:.2f} "
                     f"| {c.throughput_rps / v.throughput_rps:.3f}x | {interval} |")
    return "\n".join(lines)


ARM_TITLES = {"coe+replica": "through the expert replica (server.direct_engines: false)"}


def arm_factories(args: argparse.Namespace, options: Any, checkpoint: Path, logs: Path, extra_env: dict[str, str],
                  engine_overrides: dict[str, str], server_overrides: dict[str, str]) -> dict[str, Callable[[str], Any]]:
    """Each arm's server, not yet started, by arm name (`tag` names its log): vLLM's, plain CoE's and
    the A/B arms the flags ask for."""
    factories: dict[str, Callable[[str], Any]] = {}
    if "vllm" in args.arms:
        factories["vllm"] = lambda tag: VLLMServer(checkpoint, EXPERT, options, free_port(), logs / f"vllm{tag}.log")
    if "coe" in args.arms:
        factories["coe"] = lambda tag: CoEServer(logs / "coe.yaml", free_port(), logs / f"coe{tag}.log")
    if args.coe_env or args.coe_engine or args.coe_server:
        config = settings_variant(logs, engine_overrides, server_overrides)
        factories["coe+env"] = lambda tag: CoEServer(config, free_port(), logs / f"coe-env{tag}.log", env=extra_env)
    if args.replica_arm:
        factories["coe+replica"] = lambda tag: CoEServer(replica_config(logs), free_port(), logs / f"coe-replica{tag}.log")
    return factories


def interleaved(factories: dict[str, Callable[[str], Any]], args: argparse.Namespace) -> dict[str, list[Cell]]:
    """Boot every arm's server (each paused once healthy, so the next boots alone), then run the cells
    in blocks (run_interleaved). Every server is resumed before it is stopped: a paused process would
    hold its SIGTERM until then."""
    servers: dict[str, Any] = {}
    pausable: dict[str, PausableServer] = {}
    try:
        for arm, make in factories.items():
            print(f"booting the {arm} arm ...", flush=True)
            servers[arm] = make("").start()
            pausable[arm] = PausableServer(servers[arm].proc.pid)
            pausable[arm].pause()
        return asyncio.run(run_interleaved(servers, pausable, EXPERT, args))
    finally:
        for paused in pausable.values():  # every server thawed before any stop can be interrupted
            paused.resume()
        for arm, server in servers.items():
            try:
                server.stop()
            except Exception as err:  # noqa: BLE001 - the other servers must still be stopped
                print(f"stopping the {arm} arm failed: {err}", flush=True)


def arm_after_arm(factories: dict[str, Callable[[str], Any]], args: argparse.Namespace) -> tuple[dict[str, list[Cell]], dict]:
    """The older design (`--blocks 0`): each arm runs all its cells, then the next arm boots; with
    `--rounds 2` vLLM and CoE run as vLLM, CoE, CoE, vLLM and each cell is averaged over an arm's two
    runs. The A/B arms run once, last."""
    runs: dict[str, list[list[Cell]]] = {arm: [] for arm in factories}
    pair = [a for a in ("vllm", "coe") if a in factories]
    order = [arm for r in range(args.rounds) for arm in (pair if r % 2 == 0 else pair[::-1])]
    order += [a for a in factories if a not in pair]
    for n, arm in enumerate(order):
        print(f"{arm} arm ...", flush=True)
        server = factories[arm](f"-{n}").start()
        try:
            runs[arm].append(asyncio.run(run_arm(server.url, arm, EXPERT, args)))
        finally:
            server.stop()
    return {arm: mean_cells(r) for arm, r in runs.items()}, runs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--blocks", type=int, default=None,
                        help="rounds per cell, the arms interleaved with the idle ones paused; a multiple of the "
                             "number of arms, so each arm goes first equally often (default: twice the arms, 4 for "
                             "vLLM and CoE); 0: arm after arm, the older design")
    parser.add_argument("--requests", type=int, default=16,
                        help="requests per block and arm (at least 4 per client; one-token cells 4x); "
                             "with --blocks 0, per cell (after 2 warm-up requests)")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8, 16])
    parser.add_argument("--max-tokens", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--arms", nargs="+", choices=("vllm", "coe"), default=["vllm", "coe"],
                        help="one arm alone (an A/B of CoE settings); the ratios need both")
    parser.add_argument("--coe-env", nargs="+", default=[], metavar="KEY=VALUE",
                        help="also run an arm: CoE with these environment variables (e.g. Ray Serve knobs)")
    parser.add_argument("--coe-engine", nargs="+", default=[], metavar="KEY=VALUE",
                        help="also run an arm: CoE with these engine options (e.g. nice=15); with --coe-env, both")
    parser.add_argument("--coe-server", nargs="+", default=[], metavar="KEY=VALUE",
                        help="also run an arm: CoE with these `server` settings (e.g. direct_engines=false); "
                             "with --coe-env or --coe-engine, one arm with all of them")
    parser.add_argument("--rounds", type=int, choices=(1, 2), default=1,
                        help="with --blocks 0: 2 runs vLLM, CoE, CoE, vLLM, each arm's cells averaged over its two runs")
    parser.add_argument("--replica-arm", action="store_true",
                        help="also run CoE with server.direct_engines: false (every request through the expert replica)")
    parser.add_argument("--out", type=Path, default=paths.results_dir("bench") / "vllm_side_by_side.json")
    args = parser.parse_args()
    for sig in (signal.SIGTERM, signal.SIGHUP):  # as an exception, so the servers are thawed and stopped
        signal.signal(sig, lambda signum, _frame: sys.exit(128 + signum))
    extra_env = key_values(parser, args.coe_env)
    engine_overrides = key_values(parser, args.coe_engine, "--coe-engine")
    server_overrides = key_values(parser, args.coe_server, "--coe-server")
    arms = len(args.arms) + bool(args.coe_env or args.coe_engine or args.coe_server) + args.replica_arm
    if args.blocks is None:
        args.blocks = 2 * arms
    if args.blocks and (args.blocks < 2 or args.blocks % arms):
        parser.error(f"--blocks takes 0 or a multiple of the {arms} arms of at least 2, got {args.blocks}")
    if args.blocks and args.rounds != 1:
        parser.error("--rounds only goes with --blocks 0")
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    options, checkpoint, logs = same_engine_setup("coe-bench-vllm-")
    print(f"server logs in {logs}", flush=True)
    factories = arm_factories(args, options, checkpoint, logs, extra_env, engine_overrides, server_overrides)
    if args.blocks:
        cells, runs = interleaved(factories, args), {}
    else:
        cells, runs = arm_after_arm(factories, args)

    vllm = cells.get("vllm", [])
    others = {arm: c for arm, c in cells.items() if arm != "vllm"}
    for arm, arm_cells in others.items():  # the same work on both sides, or the ratio means nothing
        for v, c in zip(vllm, arm_cells):
            if v.completion_tokens != c.completion_tokens:
                print(f"WARNING: max_tokens {v.max_tokens}, {v.clients} clients: vLLM generated {v.completion_tokens} "
                      f"tokens, {arm} {c.completion_tokens}")
    print()
    variant = " ".join([*args.coe_env, *(f"engine.{item}" for item in args.coe_engine),
                        *(f"server.{item}" for item in args.coe_server)])
    for arm, arm_cells in others.items():
        if vllm and arm_cells:
            title = "" if arm == "coe" else f"\n{ARM_TITLES.get(arm, f'with {variant}')}:\n"
            print(title + markdown(vllm, arm_cells))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    intervals = {arm: [block_ratio_interval(v, c) for v, c in zip(vllm, arm_cells)] for arm, arm_cells in others.items()}
    args.out.write_text(json.dumps({"cells": {arm: [asdict(c) for c in arm_cells] for arm, arm_cells in cells.items()},
                                    "ratio_to_vllm_by_blocks": intervals, "variant": variant,
                                    "rounds": {arm: [[asdict(c) for c in run] for run in r] for arm, r in runs.items()},
                                    "settings": {**vars(args), "out": str(args.out), "engine": options.model_dump()}},
                                   indent=2) + "\n")
    print(f"\nwritten to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
