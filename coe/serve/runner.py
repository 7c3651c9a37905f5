"""Run a CoE application on an in-process local Ray: no cluster to start, no dashboard.

Stopping (Ctrl-C or SIGTERM) shuts Serve and the engines down cleanly so no engine process is left
behind holding memory; requests in flight get Serve's graceful-shutdown window to finish.
"""

from __future__ import annotations

import logging
import math
import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

from coe.config import CoEConfig
from coe.experts.engine_cores import keep_off_engine_cores
from coe.serve.app_builder import build_application, required_cpus
from coe.serve.direct_ingress import direct_ingress_env, free_local_port, uses_direct_ingress
from coe.serve.pool_builder import slot_engine
from coe.serve.serve_config import APP_ENV, logging_config

log = logging.getLogger(__name__)

APP_NAME = "coe"


LEAN_RAY_ENV = {
    "RAY_SERVE_CONTROL_LOOP_INTERVAL_S": "0.5",
    "RAY_enable_metrics_collection": "0",
}
"""Defaults for the local Ray that `coe serve` starts (an exported value wins). Why: idle, that Ray
burned 14% of a core where vLLM's own server burns 1.1% (bench/idle_cpu.py), and on a 2-core machine
every bit of it is taken from the engine. Serve's controller polls its state every 0.1 s (3.7% of a core
alone); every 0.5 s it reacts at most 0.4 s later to a change of replicas, against engine boots of
seconds. Ray's own metrics (exported for a Prometheus that `coe serve` does not run) are off; CoE's
`/metrics` is its own. Idle cost with both: 9.4% of a core; measured under load in the README
(Performance, "A leaner local Ray"). A cluster (`deploy/`) keeps Ray's defaults."""


NO_MEMORY_MONITOR_ENV = {"RAY_memory_monitor_refresh_ms": "0"}
"""Turns off Ray's memory monitor in the local Ray (an exported value wins). Why: it kills Ray workers
whenever the whole machine passes 95% of its memory, whoever holds that memory, and Serve restarts
them into the same pressure. A CoE replica holds what its engine allocated at boot; killing it frees
nothing that is growing, and the ingress it may pick is the one process every request needs. In CI
(2026-12-07) a second server and test engines took this 24 GiB machine to 92%, and one run's tests met
refused connections, as while an ingress restarts (README, Troubleshooting). With an exhausted machine
the kernel's OOM killer still acts, and it takes Ray's workers before the raylet (Ray gives them
`oom_score_adj` 1000). A cluster (`deploy/`) keeps Ray's defaults."""


def quiet_ray_env() -> None:
    """Ray and LiteLLM phone home by default; this machine (and many clusters) has no internet. Ray's
    background work is trimmed too (LEAN_RAY_ENV), and its memory monitor is off (NO_MEMORY_MONITOR_ENV).
    Set before `ray.init`: Ray's processes inherit it."""
    for name, value in {**APP_ENV, **LEAN_RAY_ENV, **NO_MEMORY_MONITOR_ENV}.items():
        os.environ.setdefault(name, value)


def engine_binds(config: CoEConfig) -> list[str | None]:
    """The `cpu_bind` of every engine this config starts: each dedicated expert's and each swap-pool
    slot's (pooled experts have no engine of their own)."""
    return [e.engine.cpu_bind for e in config.dedicated_engine_experts()] + [
        slot_engine(config, pool, index).cpu_bind for pool in config.pools for index in range(pool.slots)]


def start_local_ray(config: CoEConfig) -> str | None:
    """Starts Ray in this process; returns where CoE's own processes run, for the console, when
    `server.keep_off_engine_cores` decided it."""
    import ray

    placement = None
    if config.server.keep_off_engine_cores:  # before Ray starts: its processes inherit the cores
        placement = keep_off_engine_cores(engine_binds(config))
    cpus = max(os.cpu_count() or 1, math.ceil(required_cpus(config)))
    ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=True, configure_logging=False)
    return placement


def serve_forever(
    config: CoEConfig,
    checkpoints: dict[str, Path],
    announce: Callable[[str], None] = print,
) -> None:
    """Serves `config` until SIGINT or SIGTERM. `announce` is the console: where CoE's own processes
    run (when it kept them off the engines' cores), the URL once the application is ready, and the
    shutdown."""
    quiet_ray_env()
    import ray
    from ray import serve

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())

    host, port = config.server.host, config.server.port
    proxy_port = port
    if uses_direct_ingress(config):  # the ingress replica takes `port`; Serve's proxy another one
        os.environ.update(direct_ingress_env(port))
        proxy_port = free_local_port(host)
    placement = start_local_ray(config)
    if placement:
        announce(placement)
    try:
        serve.start(http_options={"host": host, "port": proxy_port})
        app = build_application(config, checkpoints)
        serve.run(app, name=APP_NAME, route_prefix="/", blocking=False, logging_config=logging_config(config))
        announce(f"http://{host}:{port}")
        while not stop.is_set():
            time.sleep(0.5)
    finally:
        announce("shutting down")
        try:
            serve.shutdown()
        finally:
            ray.shutdown()
