"""Where a warm -> hot swap's time goes outside the copy itself.

    python bench/swap_profile.py                # about 1 minute on 2 cores
    python bench/swap_profile.py --swaps 40

`coe swap-bench` reports a warm -> hot swap as a waiting request sees it (`EngineSlot._swap`) and, on a
row below, the copy alone as the engine process timed it. This splits the difference, on the same
engine as that bench (SmolLM2 and one synthetic variant, one eager slot engine, both images warm):

    slot around RPC    the slot's image load minus its `coe_load_image` RPC: tier lookup, image checks
                       and sidecar read before the RPC, building the result after it
    RPC beyond copy    the `coe_load_image` round trip into the engine minus the copy inside it
                       (frontend -> engine core -> worker and back, and the worker's own bookkeeping)
    after the load     the rest of the swap: the reply of the prefix-cache reset sent beside the load,
                       tier touch, metrics, log line

and times the pieces alone: a no-op RPC round trip, the prefix-cache reset (sent with the load), and
each host-side check. Medians; one run; numbers move from run to run by about a millisecond.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from tempfile import TemporaryDirectory

from coe.checksums import algorithm_of
from coe.swap import benchmark
from coe.swap.image import ImageMeta


def ms(values: list[float]) -> str:
    return f"{statistics.median(values) * 1000:.2f} ms"


async def timed(fn: Callable, n: int = 20) -> list[float]:
    times = []
    for _ in range(n):
        started = time.perf_counter()
        result = fn()
        if asyncio.iscoroutine(result):
            await result
        times.append(time.perf_counter() - started)
    return times


async def profile(swaps: int, work: Path) -> None:
    env = await benchmark._boot(2, "unpacked", 2, work, print)
    slot, (a, b) = env.slot, list(env.checkpoints)[:2]
    try:
        await benchmark._swap_seconds(slot, b)  # builds the variant's image
        await benchmark._swap_seconds(slot, a)
        for expert in (a, b):
            if slot.tiers.promote(expert) is None:
                raise SystemExit("the warm tier could not hold both images")
        for _ in range(3):  # the kept mappings are made and their pages mapped
            for expert in (b, a):
                await benchmark._swap_seconds(slot, expert)

        rpc_times, load_times = [], []
        rpc, load = slot._rpc, slot._load

        async def timed_rpc(method: str, *args):
            started = time.perf_counter()
            result = await rpc(method, *args)
            if method == "coe_load_image":
                rpc_times.append(time.perf_counter() - started)
            return result

        async def timed_load(expert: str):
            started = time.perf_counter()
            result = await load(expert)
            load_times.append(time.perf_counter() - started)
            return result

        slot._rpc, slot._load = timed_rpc, timed_load
        totals, copies = [], []
        try:
            for _ in range(swaps // 2):
                for expert in (b, a):
                    totals.append(await benchmark._swap_seconds(slot, expert, copies))
        finally:
            slot._rpc, slot._load = rpc, load

        print(f"\nwarm -> hot, {len(totals)} swaps of {slot.last_swap['bytes'] / 1e6:.0f} MB (medians):")
        print(f"  as a waiting request sees it  {ms(totals)}")
        print(f"  the copy in the engine        {ms(copies)}")
        print(f"  outside the copy              {ms([t - c for t, c in zip(totals, copies)])}")
        print(f"    slot around the RPC         {ms([lo - r for lo, r in zip(load_times, rpc_times)])}")
        print(f"    RPC beyond the copy         {ms([r - c for r, c in zip(rpc_times, copies)])}")
        print(f"    after the load              {ms([t - lo for t, lo in zip(totals, load_times)])}")

        warm = slot.tiers.paths.warm(a)
        algorithm = algorithm_of(ImageMeta.read(warm).checksum)
        bare_rpc, bare_copy = [], []
        for _ in range(swaps // 2):
            for expert in (b, a):
                started = time.perf_counter()
                result = await rpc("coe_load_image", str(slot.tiers.paths.warm(expert)), "mapped", algorithm)
                bare_rpc.append(time.perf_counter() - started)
                bare_copy.append(result["seconds"])
        print(f"  the load RPC alone (no reset beside it), beyond the copy: {ms([r - c for r, c in zip(bare_rpc, bare_copy)])}")
        await benchmark._swap_seconds(slot, a)  # the slot's own record matches the engine again

        print("\nthe pieces alone:")
        for name, fn in [
            ("no-op RPC round trip", lambda: rpc("coe_patch_mode")),
            ("prefix-cache reset", lambda: slot.backend.engine.reset_prefix_cache()),
            ("tier lookup", lambda: slot.tiers.tier(a)),
            ("image made from this checkpoint?", lambda: slot._image_current(a)),
            ("layout check (cached)", lambda: slot._check_fits(warm)),
            ("sidecar read", lambda: ImageMeta.read(warm)),
            ("tier touch (LRU clock)", lambda: slot.tiers.touch(a)),
        ]:
            print(f"  {name:34s} {ms(await timed(fn))}")
    finally:
        await slot.shutdown()
        shutil.rmtree(slot.pool.warm_dir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--swaps", type=int, default=30, help="timed warm -> hot swaps (alternating two experts)")
    args = parser.parse_args()
    with TemporaryDirectory(prefix="coe-swap-profile-") as work:
        asyncio.run(profile(args.swaps, Path(work)))


if __name__ == "__main__":
    main()
