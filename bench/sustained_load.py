"""Sustained load, one server at a time: does a server hold its throughput and tail over a minute?

    python bench/sustained_load.py        # or make bench-sustained: vLLM, CoE, CoE, vLLM; 40 s each; about 6 minutes
    python bench/sustained_load.py --arms coe --seconds 60

Why: `bench/vllm_side_by_side.py` interleaves the two servers in blocks of a few seconds, each after a
pause (SIGSTOP) of the other, which is what makes its ratios immune to this machine's drift. It does not
show what a server does under load that never lets up. Here each server (the same one-expert setup:
the prepared SmolLM2, eager bf16, core 0 pinned; bench/bench_servers.py) gets `--clients` clients
sending `--max-tokens`-token requests back to back for `--seconds` seconds, alone on the machine. Per
run: throughput, p50 / p99 / max latency, requests over 2x that run's p50, and how late the client's
own event loop woke from 5 ms sleeps (the client shares the 2 cores; a starved client delays requests
as much as a slow server, so it runs at a higher autogroup priority: `prioritize_client`). Arms run in
the order given, so the default order (ABBA) spreads the drift.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from bench_servers import EXPERT, VLLMServer, add_client_priority_argument, prioritize_client, same_engine_setup
from coe.serve.subprocess_server import CoEServer, free_port
from endpoint_overhead import QUESTIONS, percentile  # bench/ is on sys.path when run as a script
from side_by_side_cells import http_client, one_request
from vllm_side_by_side import key_values


async def drive(url: str, clients: int, max_tokens: int, seconds: float) -> tuple[list[float], list[float], float]:
    """(latencies in s, the client loop's lateness in s, elapsed s) of `seconds` of back-to-back requests."""
    latencies: list[float] = []
    lateness: list[float] = []
    async with http_client(url) as client:
        for q in QUESTIONS[:4]:  # warm-up, untimed
            await one_request(client, EXPERT, q, max_tokens, False)
        started = time.perf_counter()
        end = started + seconds

        async def worker(i: int) -> None:
            while time.perf_counter() < end:
                latencies.append((await one_request(client, EXPERT, QUESTIONS[i % len(QUESTIONS)], max_tokens, False))[0])
                i += clients

        async def watch_loop() -> None:
            while time.perf_counter() < end:
                t = time.perf_counter()
                await asyncio.sleep(0.005)
                lateness.append(time.perf_counter() - t - 0.005)

        await asyncio.gather(watch_loop(), *(worker(i) for i in range(clients)))
        return latencies, lateness, time.perf_counter() - started


def row(arm: str, latencies: list[float], lateness: list[float], elapsed: float) -> str:
    ms = sorted(x * 1000 for x in latencies)
    p50 = statistics.median(ms)
    late = sorted(x * 1000 for x in lateness)
    return (f"| {arm} | {len(ms)} | {len(ms) / elapsed:.1f} | {p50:.0f} | {percentile(ms, 0.99):.0f} | {ms[-1]:.0f} "
            f"| {sum(x > 2 * p50 for x in ms)} | {percentile(late, 0.99):.0f} / {late[-1]:.0f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--arms", nargs="+", choices=["coe", "vllm"], default=["vllm", "coe", "coe", "vllm"])
    parser.add_argument("--seconds", type=float, default=40.0)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--max-tokens", type=int, default=1)
    add_client_priority_argument(parser)
    parser.add_argument("--coe-env", nargs="+", default=[], metavar="KEY=VALUE",
                        help="environment for `coe serve` (and the Ray it starts)")
    args = parser.parse_args()
    env = key_values(parser, args.coe_env)
    print(prioritize_client(args.client_autogroup_nice))
    options, checkpoint, logs = same_engine_setup("coe-bench-sustained-")
    print(f"server logs in {logs}; {args.clients} clients, max_tokens {args.max_tokens}, {args.seconds:.0f} s per run")
    lines = ["| arm | requests | req/s | p50 ms | p99 ms | max ms | over 2x p50 | client loop late p99 / max ms |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for n, arm in enumerate(args.arms):
        if arm == "coe":
            server = CoEServer(logs / "coe.yaml", free_port(), logs / f"coe-{n}.log", env=env)
            server.start()
        else:
            server = VLLMServer(checkpoint, EXPERT, options, free_port(), logs / f"vllm-{n}.log").start()
        try:
            lines.append(row(arm, *asyncio.run(drive(server.url, args.clients, args.max_tokens, args.seconds))))
            print(lines[-1], flush=True)
        finally:
            server.stop()
    print("\n".join(lines))


if __name__ == "__main__":
    main()
