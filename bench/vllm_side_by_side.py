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
the request latency over all blocks (time to first token too when streaming), the throughput over
the blocks' summed time, the paired blocks' ratio and p50 difference with their 95% intervals, and
whether those intervals meet issue 16's targets (>= 0.9x, <= +10 ms), miss them or cannot tell.
The client shares the 2 cores with the servers, so it runs at a higher autogroup priority
(`prioritize_client`: a client on another machine never waits for the server's CPU; runs before
2026-12-07 evening had none, `--client-autogroup-nice 0`). `--blocks 0` runs the older design, arm
after arm (`--rounds 2`: vLLM, CoE, CoE, vLLM; the older runs used `--requests 48` per cell).
`--coe-env KEY=VALUE`, `--coe-engine KEY=VALUE` (an engine option, e.g. `nice=null`) and
`--coe-server KEY=VALUE` (a `server` setting) add an arm, CoE with those changes; `--replica-arm` one
with every request through the expert replica: an A/B of one setting against vLLM and plain CoE in
the same run.

    make bench-vllm            # or: python bench/vllm_side_by_side.py --clients 1 8
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench_servers import (EXPERT, VLLMServer, add_client_priority_argument, prioritize_client, replica_config,
                           same_engine_setup, settings_variant)
from coe import paths
from coe.experts.engine_cores import parse_cpu_list
from coe.serve.subprocess_server import CoEServer, free_port
from paused_servers import PausableServer
from process_cpu import ROLES
from side_by_side_cells import (Cell, block_p50_difference_interval, block_ratio_interval, mean_cells, run_arm,
                                run_interleaved, verdict)

def key_values(parser: argparse.ArgumentParser, items: list[str], flag: str = "--coe-env") -> dict[str, str]:
    """KEY=VALUE items as a dict (a usage error otherwise)."""
    try:
        return dict(item.split("=", 1) for item in items)
    except ValueError:
        parser.error(f"{flag} takes KEY=VALUE items, got {items}")


# Issue 16's targets: CoE's throughput at least 0.9x vLLM's server's, its p50 at most 10 ms longer.
TARGET_RATIO, TARGET_P50_MS = 0.9, 10.0


def markdown(vllm: list[Cell], coe: list[Cell]) -> str:
    """One row per cell: both servers' pooled numbers, then the paired blocks' throughput ratio and p50
    difference with their 95% intervals, and what those intervals say about each target."""
    lines = ["| max_tokens | clients | stream | vLLM p50 ms | CoE p50 ms | +ms | vLLM TTFT p50 | CoE TTFT p50 "
             "| vLLM req/s | CoE req/s | CoE / vLLM | paired blocks: ratio [95%] | paired blocks: +ms [95%] "
             f"| >= {TARGET_RATIO}x | <= +{TARGET_P50_MS:.0f} ms |",
             "|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|"]
    verdicts: list[tuple[str, str]] = []
    for v, c in zip(vllm, coe):
        ratio, p50 = block_ratio_interval(v, c), block_p50_difference_interval(v, c)
        verdicts.append((verdict(ratio, TARGET_RATIO, at_least=True), verdict(p50, TARGET_P50_MS, at_least=False)))
        ratio_text = f"{ratio[0]:.3f}x [{ratio[1]:.3f}, {ratio[2]:.3f}]" if ratio else "-"
        p50_text = f"{p50[0]:+.1f} [{p50[1]:+.1f}, {p50[2]:+.1f}]" if p50 else "-"
        ttft = (f"{v.ttft_p50_ms:.1f} | {c.ttft_p50_ms:.1f}" if v.ttft_p50_ms is not None and c.ttft_p50_ms is not None
                else "- | -")
        lines.append(f"| {v.max_tokens} | {v.clients} | {'yes' if v.stream else 'no'} | {v.p50_ms:.1f} | {c.p50_ms:.1f} "
                     f"| {c.p50_ms - v.p50_ms:+.1f} | {ttft} | {v.throughput_rps:.2f} | {c.throughput_rps:.2f} "
                     f"| {c.throughput_rps / v.throughput_rps:.3f}x | {ratio_text} | {p50_text} "
                     f"| {verdicts[-1][0]} | {verdicts[-1][1]} |")
    both = Counter("met" if pair == ("met", "met") else "missed" if "missed" in pair else "unresolved" if "-" not in pair
                   else "-" for pair in verdicts)
    lines.append(f"\nBoth targets, by the paired intervals: met in {both['met']}, missed in {both['missed']}, "
                 f"unresolved in {both['unresolved']} of {len(verdicts)} cells.")
    return "\n".join(lines)


def cpu_markdown(cells: dict[str, list[Cell]]) -> str:
    """Each arm's CPU per request by role (bench/process_cpu.py: engine, frontend, the rest of its
    process tree), per cell: where each server's CPU went, beside the ratios above."""
    arms = [arm for arm, arm_cells in cells.items() if arm_cells and arm_cells[0].cpu_ms_per_request]
    if not arms:
        return ""
    lines = ["| max_tokens | clients | stream | " + " | ".join(f"{arm}: engine / frontend / rest" for arm in arms) + " |",
             "|---:|---:|---|" + "---:|" * len(arms)]
    for row in zip(*(cells[arm] for arm in arms)):
        first = row[0]
        lines.append(f"| {first.max_tokens} | {first.clients} | {'yes' if first.stream else 'no'} | " + " | ".join(
            " / ".join(f"{c.cpu_ms_per_request[role]:.1f}" for role in ROLES) for c in row) + " |")
    return "CPU ms per request, by role:\n" + "\n".join(lines)


ARM_TITLES = {"coe+replica": "through the expert replica (server.direct_engines: false)",
              "vllm+frontend": "vLLM's server with its API server off the engine's core"}


def arm_factories(args: argparse.Namespace, options: Any, checkpoint: Path, logs: Path, extra_env: dict[str, str],
                  engine_overrides: dict[str, str], server_overrides: dict[str, str]) -> dict[str, Callable[[str], Any]]:
    """Each arm's server, not yet started, by arm name (`tag` names its log): vLLM's, plain CoE's and
    the A/B arms the flags ask for."""
    factories: dict[str, Callable[[str], Any]] = {}
    if "vllm" in args.arms:
        factories["vllm"] = lambda tag: VLLMServer(checkpoint, EXPERT, options, free_port(), logs / f"vllm{tag}.log")
    if args.vllm_frontend_arm:
        cores = os.sched_getaffinity(0) - parse_cpu_list(options.cpu_bind)
        factories["vllm+frontend"] = lambda tag: VLLMServer(checkpoint, EXPERT, options, free_port(),
                                                            logs / f"vllm-frontend{tag}.log", frontend_cores=cores)
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
    parser.add_argument("--vllm-frontend-arm", action="store_true",
                        help="also run vLLM's server with its API server's threads moved off the engine's core once "
                             "it is up (the engine's processes keep every core), as `coe serve` keeps its own "
                             "processes there: the stronger baseline; CoE is compared with both")
    parser.add_argument("--replica-arm", action="store_true",
                        help="also run CoE with server.direct_engines: false (every request through the expert replica)")
    add_client_priority_argument(parser)
    parser.add_argument("--out", type=Path, default=paths.results_dir("bench") / "vllm_side_by_side.json")
    args = parser.parse_args()
    for sig in (signal.SIGTERM, signal.SIGHUP):  # as an exception, so the servers are thawed and stopped
        signal.signal(sig, lambda signum, _frame: sys.exit(128 + signum))
    extra_env = key_values(parser, args.coe_env)
    engine_overrides = key_values(parser, args.coe_engine, "--coe-engine")
    server_overrides = key_values(parser, args.coe_server, "--coe-server")
    arms = (len(args.arms) + bool(args.coe_env or args.coe_engine or args.coe_server) + args.replica_arm
            + args.vllm_frontend_arm)
    if args.blocks is None:
        args.blocks = 2 * arms
    if args.blocks and (args.blocks < 2 or args.blocks % arms):
        parser.error(f"--blocks takes 0 or a multiple of the {arms} arms of at least 2, got {args.blocks}")
    if args.blocks and args.rounds != 1:
        parser.error("--rounds only goes with --blocks 0")
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    print(prioritize_client(args.client_autogroup_nice), flush=True)
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
    stronger = cells.get("vllm+frontend", [])
    coe_arms = {arm: c for arm, c in others.items() if arm.startswith("coe")}
    for arm, arm_cells in coe_arms.items():
        if stronger and arm_cells:
            print(f"\n{arm} against {ARM_TITLES['vllm+frontend']} (the 'vLLM' columns):\n" + markdown(stronger, arm_cells))
    print("\n" + cpu_markdown(cells))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    intervals = {arm: [block_ratio_interval(v, c) for v, c in zip(vllm, arm_cells)] for arm, arm_cells in others.items()}
    p50_differences = {arm: [block_p50_difference_interval(v, c) for v, c in zip(vllm, arm_cells)]
                       for arm, arm_cells in others.items()}
    args.out.write_text(json.dumps({"cells": {arm: [asdict(c) for c in arm_cells] for arm, arm_cells in cells.items()},
                                    "ratio_to_vllm_by_blocks": intervals,
                                    "p50_minus_vllm_ms_by_blocks": p50_differences, "variant": variant,
                                    "against_vllm_frontend_off_engine_core": {
                                        arm: {"ratio": [block_ratio_interval(v, c) for v, c in zip(stronger, arm_cells)],
                                              "p50_minus_ms": [block_p50_difference_interval(v, c)
                                                               for v, c in zip(stronger, arm_cells)]}
                                        for arm, arm_cells in coe_arms.items()} if stronger else {},
                                    "rounds": {arm: [[asdict(c) for c in run] for run in r] for arm, r in runs.items()},
                                    "settings": {**vars(args), "out": str(args.out), "engine": options.model_dump()}},
                                   indent=2) + "\n")
    print(f"\nwritten to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
