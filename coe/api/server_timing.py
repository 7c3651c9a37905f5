"""The `Server-Timing` header: where a request's time went, hop by hop, on every successful answer.

Why: CoE sits between a client and an engine, and its cost is the difference between the two. A
client (or `bench/hop_profile.py`) that compares its own latency with these numbers sees what the
HTTP proxy, the ingress, the Ray Serve handle hop and the engine's backend each took, without a
profiler attached. The names (durations in ms, W3C Server-Timing syntax):

    ingress  the chat route in the ingress replica, body read to response built
    route    the routing decision (model="coe" only)
    call     the expert call seen by the ingress: failover chain, retries included
    handle   the Ray Serve handle round trip to the expert replica (local experts; for a swap pool
             it includes the slot's queue and any swap)
    linked   instead of `handle`, for a dedicated engine the ingress reaches through its own vLLM
             frontend (coe/serve/linked_engine.py): no replica hop, `expert` runs in the ingress
    expert   inside the expert's backend: tokenizing, the engine, detokenizing
    first    streaming only: the wait for the first piece (the rest is not known when headers go out)

What is not in it: the time outside the route, both ways (the HTTP proxy, the hops to the ingress and
back, the middleware), is the client's latency minus `ingress`. Error answers carry no timings.
"""

from __future__ import annotations

HEADER = "server-timing"


def header_value(timings: dict[str, float]) -> str:
    return ", ".join(f"{name};dur={ms:.2f}" for name, ms in timings.items())


def appended(existing: str | None, name: str, ms: float) -> str:
    entry = header_value({name: ms})
    return f"{existing}, {entry}" if existing else entry


def parse(value: str) -> dict[str, float]:
    """The header back into {name: ms} (what bench/hop_profile.py and the tests read)."""
    out = {}
    for part in value.split(","):
        name, _, ms = part.strip().partition(";dur=")
        if ms:
            out[name] = float(ms)
    return out
