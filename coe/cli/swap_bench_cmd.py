"""`coe swap-bench`: tier-to-hot swap costs against memcpy and disk reads, plus a trace replay."""

from __future__ import annotations

import asyncio
import json
import tempfile
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from coe import paths
from coe.cli.errors import UsageError, fail_cleanly

console = Console(stderr=True)


def swap_bench(
    repeats: Annotated[int, typer.Option(min=1, help="Swaps per measurement (the median is reported).")] = 5,
    trace_requests: Annotated[int, typer.Option(min=0, help="Requests in the replayed trace (0 skips it).")] = 120,
    experts: Annotated[int, typer.Option(min=2, help="Experts in the trace (SmolLM2 plus synthetic variants).")] = 6,
    rate: Annotated[float, typer.Option(help="Trace arrival rate, requests per second.")] = 3.0,
    slot_weights: Annotated[str, typer.Option(help="unpacked (memcpy-speed swaps) or repack (vLLM's packed CPU kernels).")] = "unpacked",
    warm_gib: Annotated[float, typer.Option(help="Warm-tier budget for the run.")] = 0.8,
    seed: Annotated[int, typer.Option(help="Seed of the trace.")] = 0,
    scale: Annotated[str, typer.Option(help="base (SmolLM2-135M) or 1b (a synthetic 1.1B checkpoint of its architecture, random weights: copy speed only).")] = "base",
    long_wait_ms: Annotated[int, typer.Option(min=0, help="Also replay with grouping at this max_wait (0: no such row).")] = 2000,
    gather_ms: Annotated[list[int] | None, typer.Option(help="Also replay with grouping and this gather_ms (repeatable; default 2000 and 4000: 4000 is the README row that meets 3x fewer swaps than FIFO).")] = None,
    out: Annotated[Path, typer.Option(help="Where the JSON results go.")] = paths.results_dir("bench") / "swap_bench.json",
) -> None:
    """Measure swaps on this machine (boots one engine; about 3-6 minutes on 2 cores)."""
    with fail_cleanly():
        if slot_weights not in {"unpacked", "repack"}:
            raise UsageError(f"--slot-weights must be unpacked or repack, not {slot_weights!r}")
        if scale not in {"base", "1b"}:
            raise UsageError(f"--scale must be base or 1b, not {scale!r}")
        if any(g < 0 for g in gather_ms or ()):
            raise UsageError("--gather-ms must be >= 0")
        from coe.swap.benchmark import run

        with tempfile.TemporaryDirectory(prefix="coe-swap-bench-") as work:
            results = asyncio.run(run(Path(work), repeats, trace_requests, experts, rate, slot_weights, warm_gib, seed,
                                      say=lambda m: console.print(m), long_wait_ms=long_wait_ms,
                                      scale=None if scale == "base" else scale,
                                      gather_ms=tuple(gather_ms if gather_ms is not None else (2000, 4000))))
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=2))
        console.print(f"results: {out}")
