"""Swap counters of one slot, and their Prometheus text form.

Each slot counts in its own process; the ingress collects every slot's snapshot and renders them on
`GET /metrics`, so one scrape sees the whole deployment without a metrics agent.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field


@dataclass
class SwapMetrics:
    swaps: dict[str, int] = field(default_factory=lambda: defaultdict(int))  # "warm->hot": n
    swap_bytes: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    swap_seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    swap_failures: int = 0
    hits: int = 0  # request admitted without a swap
    misses: int = 0  # request had to wait for its expert to be swapped in
    promotions: int = 0  # cold -> warm (prefetch or after a cold load)

    def record_swap(self, pair: str, nbytes: int, seconds: float) -> None:
        self.swaps[pair] += 1
        self.swap_bytes[pair] += nbytes
        self.swap_seconds[pair] += seconds

    def snapshot(self) -> dict:
        return {
            "swaps": dict(self.swaps),
            "swap_bytes": dict(self.swap_bytes),
            "swap_seconds": dict(self.swap_seconds),
            "swap_failures": self.swap_failures,
            "hits": self.hits,
            "misses": self.misses,
            "promotions": self.promotions,
        }


def _labels(**labels: str) -> str:
    return "{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}"


def render_prometheus(snapshots: dict[str, dict]) -> str:
    """`snapshots` maps a slot name to `SwapMetrics.snapshot()`; returns the text exposition format."""
    lines = [
        "# HELP coe_swaps_total Weight swaps into engine slots, by source tier.",
        "# TYPE coe_swaps_total counter",
    ]
    series = [("coe_swap_bytes_total", "swap_bytes", "Bytes copied into engine slots, by source tier.", "counter"),
              ("coe_swap_seconds_total", "swap_seconds", "Seconds spent swapping, by source tier.", "counter")]
    for slot, snap in snapshots.items():
        for pair, n in snap["swaps"].items():
            src, dst = pair.split("->")
            lines.append(f"coe_swaps_total{_labels(slot=slot, source=src, target=dst)} {n}")
    for name, key, help_text, kind in series:
        lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
        for slot, snap in snapshots.items():
            for pair, value in snap[key].items():
                src, dst = pair.split("->")
                lines.append(f"{name}{_labels(slot=slot, source=src, target=dst)} {value}")
    for name, key, help_text in [
        ("coe_swap_failures_total", "swap_failures", "Swaps refused (checksum or layout mismatch)."),
        ("coe_slot_hits_total", "hits", "Requests whose expert was already hot."),
        ("coe_slot_misses_total", "misses", "Requests that waited for a swap."),
        ("coe_warm_promotions_total", "promotions", "Images promoted cold -> warm."),
    ]:
        lines += [f"# HELP {name} {help_text}", f"# TYPE {name} counter"]
        lines += [f"{name}{_labels(slot=slot)} {snap[key]}" for slot, snap in snapshots.items()]
    return "\n".join(lines) + "\n"
