"""What each server burns while it answers nothing: CPU per process, idle, CoE against vLLM's own server.

    python bench/idle_cpu.py                    # about 2 minutes on 2 cores
    python bench/idle_cpu.py --arms coe --coe-env RAY_SERVE_CONTROL_LOOP_INTERVAL_S=0.1

Why: on a 2-core machine the engine's throughput is whatever CPU the processes beside it leave. Under
load the engine spins on both cores, so background work there is hard to tell from per-request work;
idle it stands alone. Each server starts with the bench's one-expert setup (bench/bench_servers.py:
the prepared SmolLM2, eager bf16, core 0 pinned), settles for `--settle` seconds after it is ready,
then every process under it is read twice, `--seconds` apart (user + system time). One server at a
time; the table lists each process above 0.2% of a core and the total.
"""

from __future__ import annotations

import argparse
import time

from bench_servers import EXPERT, VLLMServer, same_engine_setup
from coe.serve.subprocess_server import CoEServer, free_port
from process_cpu import cpu_seconds
from vllm_side_by_side import key_values


def idle_share(root: int, settle_s: float, seconds: float) -> list[tuple[float, str]]:
    """Each process's share of one core over `seconds` of idling, largest first."""
    time.sleep(settle_s)
    before = cpu_seconds(root)
    time.sleep(seconds)
    after = cpu_seconds(root)
    shares = [((after[pid][1] - before[pid][1]) / seconds, after[pid][0]) for pid in after if pid in before]
    return sorted(shares, reverse=True)


def report(name: str, shares: list[tuple[float, str]]) -> None:
    print(f"\n{name}: {100 * sum(s for s, _ in shares):.1f}% of a core in all, idle")
    for share, title in shares:
        if share > 0.002:
            print(f"  {100 * share:5.1f}%  {title[:80]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--arms", nargs="+", choices=["coe", "vllm"], default=["coe", "vllm"])
    parser.add_argument("--coe-env", nargs="+", default=[], metavar="KEY=VALUE",
                        help="environment for `coe serve` (and the Ray it starts), e.g. Ray Serve knobs")
    parser.add_argument("--settle", type=float, default=20.0, help="seconds after ready before reading")
    parser.add_argument("--seconds", type=float, default=30.0, help="seconds between the two readings")
    args = parser.parse_args()
    env = key_values(parser, args.coe_env)
    options, checkpoint, logs = same_engine_setup("coe-bench-idle-")
    print(f"server logs in {logs}")
    for arm in args.arms:
        if arm == "coe":
            server = CoEServer(logs / "coe.yaml", free_port(), logs / "coe.log", env=env)
            server.start()
            name = "coe serve" + (f" with {' '.join(args.coe_env)}" if env else "")
        else:
            server = VLLMServer(checkpoint, EXPERT, options, free_port(), logs / "vllm.log").start()
            name = "vLLM's OpenAI server"
        try:
            report(name, idle_share(server.proc.pid, args.settle, args.seconds))
        finally:
            server.stop()


if __name__ == "__main__":
    main()
