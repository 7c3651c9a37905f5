"""Where one request's time goes, hop by hop: CoE's Server-Timing header against vLLM's own server.

    python bench/hop_profile.py                 # about 3 minutes on 2 cores
    python bench/hop_profile.py --requests 60 --max-tokens 1 32
    python bench/hop_profile.py --coe-env RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD=0   # a third arm
    python bench/hop_profile.py --proxy-arm     # also CoE behind Ray Serve's HTTP proxy (the old path)
    python bench/hop_profile.py --router-arm    # also model="coe" against the expert's own name
    python bench/hop_profile.py --replica-arm   # also CoE with server.direct_engines: false (via the replica)

The same setup as bench/vllm_side_by_side.py (the prepared SmolLM2 checkpoint, eager bf16, one pinned
core, greedy, `ignore_eos`): vLLM's OpenAI server first, then `coe serve` with that checkpoint as its
one expert, never together. Sequential non-streaming requests (one client: latency, not throughput).
For CoE every answer's Server-Timing header (coe/api/server_timing.py) splits the client's latency:

    outside the route  client latency - ingress: HTTP and middleware in the ingress replica (direct
                       ingress, the default); behind Serve's proxy also the hops proxy <-> ingress
    ingress            ingress - call: body read, parsing, failover bookkeeping, building the response
    path to the engine call - expert: the Ray Serve handle round trip to the expert replica and back
                       (`handle`), or with the ingress linked to the engine (server.direct_engines, the
                       default) its own frontend's wrapper (`linked`); the rest of `call` is the failover layer
    expert             tokenize + vLLM's AsyncLLM + detokenize, in the ingress when linked, else in the
                       expert replica

vLLM's server does the same `expert` work plus its own HTTP layer, so `vLLM server - expert` is what
its HTTP costs, the fair price of a front door. Medians over the requests; one run.

`--router-arm` answers "does model="coe" add more than the routing decision itself?": one more CoE
server with the default router (built:default, restricted to this one expert, so every decision lands
on it), requests alternating model=<expert> and model="coe" on the same questions, so drift hits
both. It reports the two latencies, their difference and the `route` timing (the decision).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from pathlib import Path

import httpx

from coe import paths
from coe.api import server_timing
from coe.serve.subprocess_server import CoEServer, free_port
from endpoint_overhead import QUESTIONS  # bench/ is on sys.path when run as a script
from bench_servers import EXPERT, VLLMServer, config_variant, proxy_config, replica_config, same_engine_setup
from vllm_side_by_side import key_values

WARMUP = 3


Timed = list[tuple[float, dict[str, float]]]


async def sequential(url: str, max_tokens: int, requests: int, models: tuple[str, ...] = (EXPERT,)) -> dict[str, Timed]:
    """(client ms, server timings) per request and model name, after a warm-up; with several models
    each question is asked under every name in turn, one request at a time."""
    out: dict[str, Timed] = {model: [] for model in models}
    async with httpx.AsyncClient(base_url=f"{url}/v1", timeout=300) as client:
        for i in range(WARMUP + requests):
            for model in models:
                body = {"model": model, "messages": [{"role": "user", "content": QUESTIONS[i % len(QUESTIONS)]}],
                        "temperature": 0, "max_tokens": max_tokens, "ignore_eos": True}
                started = time.perf_counter()
                resp = await client.post("/chat/completions", json=body)
                ms = (time.perf_counter() - started) * 1000
                resp.raise_for_status()
                if resp.json()["model"] != EXPERT:
                    raise SystemExit(f"model {model!r} was answered by {resp.json()['model']!r}, not {EXPERT!r}")
                if i >= WARMUP:
                    out[model].append((ms, server_timing.parse(resp.headers.get("server-timing", ""))))
    return out


def med(values: list[float]) -> float:
    return round(statistics.median(values), 2)


def path_ms(timings: dict[str, float]) -> float:
    """The call to the engine: through the expert replica (`handle`) or the ingress's own frontend on
    the replica's engine (`linked`, coe/serve/linked_engine.py)."""
    return timings["handle"] if "handle" in timings else timings["linked"]


def breakdown(vllm: Timed, coe: Timed) -> dict[str, float]:
    return {
        "vllm_server_ms": med([c for c, _ in vllm]),
        "coe_client_ms": med([c for c, _ in coe]),
        "outside_route_ms": med([c - t["ingress"] for c, t in coe]),
        "ingress_ms": med([t["ingress"] - t["call"] for _, t in coe]),
        "failover_layer_ms": med([t["call"] - path_ms(t) for _, t in coe]),
        "handle_hop_ms": med([path_ms(t) - t["expert"] for _, t in coe]),
        "linked_share": round(sum("linked" in t for _, t in coe) / len(coe), 3),
        "expert_ms": med([t["expert"] for _, t in coe]),
    }


def markdown(rows: dict[int, dict[str, float]]) -> str:
    names = [("vLLM server (client latency)", "vllm_server_ms"), ("CoE (client latency)", "coe_client_ms"),
             ("  outside the route (HTTP, middleware; with Serve's proxy its hops too)", "outside_route_ms"),
             ("  ingress (parse, build the response)", "ingress_ms"), ("  failover layer", "failover_layer_ms"),
             ("  path to the engine (handle: via the expert replica; linked: the ingress's own frontend)", "handle_hop_ms"),
             ("  expert (tokenize, AsyncLLM, detokenize)", "expert_ms"),
             ("  share of requests on the linked path", "linked_share")]
    tokens = sorted(rows)
    lines = ["| p50 ms | " + " | ".join(f"max_tokens {t}" for t in tokens) + " |", "|---|" + "---:|" * len(tokens)]
    lines += [f"| {label} | " + " | ".join(f"{rows[t][key]:.1f}" for t in tokens) + " |" for label, key in names]
    lines.append("| vLLM server - expert (its own HTTP layer) | "
                 + " | ".join(f"{rows[t]['vllm_server_ms'] - rows[t]['expert_ms']:.1f}" for t in tokens) + " |")
    return "\n".join(lines)


def routing_cost(by_model: dict[str, Timed]) -> dict[str, float]:
    """model="coe" against the expert's own name in one arm: what automatic routing adds, and how much
    of it is the decision (`route`); the rest would be routing overhead outside the decision."""
    named, routed = by_model[EXPERT], by_model["coe"]
    added = med([c for c, _ in routed]) - med([c for c, _ in named])
    decision = med([t["route"] for _, t in routed])
    return {"expert_name_ms": med([c for c, _ in named]), "coe_ms": med([c for c, _ in routed]),
            "added_ms": round(added, 2), "route_ms": decision, "added_minus_route_ms": round(added - decision, 2),
            "paired_diff_ms": med([r - n for (r, _), (n, _) in zip(routed, named)])}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--max-tokens", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--coe-first", action="store_true", help="run the CoE arm first (an order check)")
    parser.add_argument("--coe-env", nargs="+", default=[], metavar="KEY=VALUE",
                        help="also run CoE with these environment variables (a third arm, last)")
    parser.add_argument("--proxy-arm", action="store_true",
                        help="also run CoE behind Ray Serve's HTTP proxy (server.direct_ingress: false), last")
    parser.add_argument("--replica-arm", action="store_true",
                        help="also run CoE with server.direct_engines: false (every request through the expert replica), last")
    parser.add_argument("--router-arm", action="store_true",
                        help='also run CoE with the default router: model="coe" against the expert\'s name, last')
    parser.add_argument("--out", type=Path, default=paths.results_dir("bench") / "hop_profile.json")
    args = parser.parse_args()
    extra_env = key_values(parser, args.coe_env)
    options, checkpoint, logs = same_engine_setup("coe-bench-hops-")

    def arm(server, models: tuple[str, ...] = (EXPERT,)) -> dict[int, dict[str, Timed]]:
        try:
            return {t: asyncio.run(sequential(server.url, t, args.requests, models)) for t in args.max_tokens}
        finally:
            server.stop()

    arms = {}
    for name in (("coe", "vllm") if args.coe_first else ("vllm", "coe")):
        print(f"{name} arm (logs in {logs}) ...", flush=True)
        if name == "vllm":
            arms[name] = arm(VLLMServer(checkpoint, EXPERT, options, free_port(), logs / "vllm.log").start())
        else:
            arms[name] = arm(CoEServer(logs / "coe.yaml", free_port(), logs / "coe.log").start())
    if extra_env:
        print(f"coe arm with {' '.join(args.coe_env)} ...", flush=True)
        arms["coe+env"] = arm(CoEServer(logs / "coe.yaml", free_port(), logs / "coe-env.log", env=extra_env).start())
    if args.proxy_arm:
        print("coe arm behind Ray Serve's HTTP proxy ...", flush=True)
        arms["coe+proxy"] = arm(CoEServer(proxy_config(logs), free_port(), logs / "coe-proxy.log").start())
    if args.replica_arm:
        print("coe arm through the expert replica (server.direct_engines: false) ...", flush=True)
        arms["coe+replica"] = arm(CoEServer(replica_config(logs), free_port(), logs / "coe-replica.log").start())
    routing = {}
    if args.router_arm:
        print('coe arm with the default router (model="coe" and the expert\'s name, alternating) ...', flush=True)
        arms["coe+router"] = arm(CoEServer(config_variant(logs, "coe-router.yaml", router={"artifact": "built:default"}), free_port(), logs / "coe-router.log").start(),
                                 (EXPERT, "coe"))
        routing = {t: routing_cost(arms["coe+router"][t]) for t in args.max_tokens}
    vllm, coe = arms["vllm"], arms["coe"]
    rows = {t: breakdown(vllm[t][EXPERT], coe[t][EXPERT]) for t in args.max_tokens}
    print(markdown(rows))
    if extra_env:
        tuned = {t: breakdown(vllm[t][EXPERT], arms["coe+env"][t][EXPERT]) for t in args.max_tokens}
        print(f"\nwith {' '.join(args.coe_env)}:\n" + markdown(tuned))
    if args.proxy_arm:
        print("\nbehind Ray Serve's HTTP proxy (server.direct_ingress: false):\n"
              + markdown({t: breakdown(vllm[t][EXPERT], arms["coe+proxy"][t][EXPERT]) for t in args.max_tokens}))
    if args.replica_arm:
        print("\nthrough the expert replica (server.direct_engines: false):\n"
              + markdown({t: breakdown(vllm[t][EXPERT], arms["coe+replica"][t][EXPERT]) for t in args.max_tokens}))
    if routing:
        print('\nmodel="coe" against the expert\'s own name (same server, alternating requests), p50 ms:')
        for t, r in routing.items():
            print(f"  max_tokens {t}: {EXPERT} {r['expert_name_ms']:.1f}, coe {r['coe_ms']:.1f}, added "
                  f"{r['added_ms']:+.1f} (paired {r['paired_diff_ms']:+.1f}), of which the decision {r['route_ms']:.1f}, "
                  f"rest {r['added_minus_route_ms']:+.1f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"rows": rows, "routing": routing, "raw": arms, "requests": args.requests,
                                    "coe_env": extra_env}, indent=2) + "\n")
    print(f"\nwritten to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
