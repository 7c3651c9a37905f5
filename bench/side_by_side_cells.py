"""Cells of a side-by-side bench: timed blocks of requests, interleaved across paused servers, and
the ratio's interval from paired blocks (used by vllm_side_by_side.py)."""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import statistics
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx

from endpoint_overhead import QUESTIONS, percentile  # bench/ is on sys.path when run as a script
from paused_servers import PausableServer
from process_cpu import ROLES, cpu_by_role, cpu_seconds


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
    block_p50_ms: tuple[float, ...] = ()  # with --blocks: each block's own p50, in block order
    cpu_ms_per_request: dict[str, float] = field(default_factory=dict)  # by role (process_cpu.py), over the blocks


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
    cpu_s: dict[str, float] = field(default_factory=dict)  # the server's CPU by role while the block ran


async def timed_block(client: httpx.AsyncClient, model: str, max_tokens: int, clients: int, stream: bool,
                      requests: int, server_pid: int | None = None) -> Block:
    """`requests` requests from `clients` concurrent clients, after two untimed warm-up requests; with
    `server_pid`, the CPU its process tree used meanwhile, by role."""
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

    cpu_before = cpu_seconds(server_pid) if server_pid is not None else {}
    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(clients)))
    elapsed = time.perf_counter() - started
    cpu = cpu_by_role(cpu_before, cpu_seconds(server_pid)) if server_pid is not None else {}
    return Block(latencies, firsts, tokens, elapsed, cpu)


def summarize(arm: str, max_tokens: int, clients: int, stream: bool, blocks: list[Block]) -> Cell:
    """One cell from its blocks: percentiles over every request, throughput over the blocks' summed
    time, and each block's own throughput and p50 (paired with the other arm's block run beside it)."""
    latencies = [ms for b in blocks for ms in b.latencies_ms]
    firsts = [ms for b in blocks for ms in b.firsts_ms]
    cpu = {role: round(1000 * sum(b.cpu_s[role] for b in blocks) / len(latencies), 2)
           for role in ROLES} if all(b.cpu_s for b in blocks) else {}
    return Cell(arm, max_tokens, clients, stream, len(latencies), round(statistics.median(latencies), 1),
                round(percentile(latencies, 0.99), 1), round(statistics.median(firsts), 1) if firsts else None,
                round(len(latencies) / sum(b.elapsed_s for b in blocks), 4), sum(b.tokens for b in blocks),
                tuple(round(len(b.latencies_ms) / b.elapsed_s, 4) for b in blocks),
                tuple(round(statistics.median(b.latencies_ms), 1) for b in blocks), cpu_ms_per_request=cpu)


async def cell(client: httpx.AsyncClient, arm: str, model: str, max_tokens: int, clients: int, stream: bool,
               requests: int) -> Cell:
    return summarize(arm, max_tokens, clients, stream, [await timed_block(client, model, max_tokens, clients, stream, requests)])


def cell_grid(args: argparse.Namespace) -> Iterator[tuple[int, int, bool]]:
    """(max_tokens, clients, stream) of every cell, in the order both designs run them."""
    for max_tokens in args.max_tokens:
        for clients in args.clients:
            for stream in (False, True):
                yield max_tokens, clients, stream


def http_client(url: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=f"{url}/v1", timeout=300,
                             limits=httpx.Limits(max_connections=64, max_keepalive_connections=64))


async def run_arm(url: str, arm: str, model: str, args: argparse.Namespace) -> list[Cell]:
    async with http_client(url) as client:
        cells = []
        for max_tokens, clients, stream in cell_grid(args):
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
    clients_by_arm = {arm: http_client(s.url) for arm, s in servers.items()}
    arms = list(servers)
    cells: dict[str, list[Cell]] = {arm: [] for arm in arms}
    try:
        for max_tokens, clients, stream in cell_grid(args):
            requests = block_requests(args, max_tokens, clients)
            blocks: dict[str, list[Block]] = {arm: [] for arm in arms}
            for round_ in range(args.blocks):
                for arm in arms[round_ % len(arms):] + arms[:round_ % len(arms)]:
                    with pausable[arm].running():
                        blocks[arm].append(await timed_block(clients_by_arm[arm], model, max_tokens, clients,
                                                             stream, requests, pausable[arm].pid))
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
    mean, low, high = t_interval([math.log(c / v) for c, v in pairs])
    return math.exp(mean), math.exp(low), math.exp(high)


def block_p50_difference_interval(vllm: Cell, coe: Cell) -> tuple[float, float, float] | None:
    """The mean of CoE's block p50 minus vLLM's in the paired blocks, in ms, and its 95% t-interval;
    None with fewer than two blocks. The pooled p50s' difference is one number whose noise the table
    would not show: at 32 tokens it swung between -156 and +167 ms from run to run on 1.4-2.1 s p50s,
    so whether a cell meets a +10 ms target needs the interval beside it."""
    pairs = list(zip(coe.block_p50_ms, vllm.block_p50_ms))
    if len(pairs) < 2:
        return None
    return t_interval([c - v for c, v in pairs])


def t_interval(values: list[float]) -> tuple[float, float, float]:
    """The mean of two or more values and its two-sided 95% Student's t interval."""
    mean = statistics.mean(values)
    half = T95.get(len(values) - 1, 1.96) * statistics.stdev(values) / math.sqrt(len(values))
    return mean, mean - half, mean + half


def verdict(bounds: tuple[float, float, float] | None, limit: float, at_least: bool) -> str:
    """Whether a paired interval puts CoE on the right side of an issue-16 target (`at_least`: the
    throughput ratio >= limit; otherwise the p50 difference <= limit): `met` (the whole interval on
    the right side), `missed` (wholly on the wrong side), `unresolved` (it spans the limit: this run
    cannot tell), `-` without blocks."""
    if bounds is None:
        return "-"
    _, low, high = bounds
    if at_least:
        return "met" if low >= limit else "missed" if high < limit else "unresolved"
    return "met" if high <= limit else "missed" if low > limit else "unresolved"


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
