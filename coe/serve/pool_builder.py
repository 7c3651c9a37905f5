"""Serve deployments for swap pools: one single-replica deployment per engine slot.

Pooled experts get no deployment of their own; the ingress reaches them through their pool's slots
(see coe/serve/pool_client.py). Images live next to the prepared models, so they survive restarts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from coe.config import CoEConfig, EngineOptions, SwapPoolConfig
from coe.models.cache import default_cache_dir


def slot_name(pool: SwapPoolConfig, index: int) -> str:
    return f"slot-{pool.id}-{index}"


def image_root(config: CoEConfig) -> Path:
    return Path(config.model_cache_dir or default_cache_dir()) / "slot-images"


def slot_engine(config: CoEConfig, pool: SwapPoolConfig, index: int) -> EngineOptions:
    """The engine options of a pool's slot: its first expert's, on the slot's own `cpu_binds` entry."""
    engine = config.expert(pool.experts[0]).engine
    if pool.cpu_binds is not None:
        engine = engine.model_copy(update={"cpu_bind": pool.cpu_binds[index]})
    return engine


def slot_options(config: CoEConfig, pool: SwapPoolConfig, index: int) -> dict[str, Any]:
    from coe.experts.vllm_backend import engine_env
    from coe.serve.serve_config import APP_ENV

    engine = slot_engine(config, pool, index)
    return {
        "name": slot_name(pool, index),
        "num_replicas": 1,  # a slot is one engine; more capacity is more slots
        "max_ongoing_requests": max(64, 4 * engine.max_num_seqs),
        "health_check_period_s": 10,
        "health_check_timeout_s": 60,
        "ray_actor_options": {
            "num_cpus": engine.num_cpus,
            "runtime_env": {"env_vars": {**APP_ENV, **engine_env(engine)}},
        },
    }


def bind_pools(config: CoEConfig, checkpoints: dict[str, Path]) -> dict[str, dict[str, Any]]:
    """pool id -> {slot name -> bound deployment}; `checkpoints` must hold every pooled expert."""
    from ray import serve

    from coe.serve.slot_deployment import SlotDeployment

    pools: dict[str, dict[str, Any]] = {}
    for pool in config.pools:
        experts = {e: config.expert(e) for e in pool.experts}
        paths = {e: str(checkpoints[e]) for e in pool.experts}
        pools[pool.id] = {}
        for index in range(pool.slots):
            options = slot_options(config, pool, index)
            cpu_bind = pool.cpu_binds[index] if pool.cpu_binds else None
            deployment = serve.deployment(SlotDeployment, **options)
            pools[pool.id][options["name"]] = deployment.bind(
                options["name"], pool, experts, paths, str(image_root(config)), cpu_bind
            )
    return pools
