"""Builds the Ray Serve application for a CoE config: one Expert deployment per local expert, one
ingress. This is the entry point a Serve config's `import_path` names, and what `coe serve` runs.
"""

from __future__ import annotations

import logging
from pathlib import Path

from coe.config import CoEConfig, ExpertConfig, PromptFormat
from coe.experts.base import ExpertInfo
from coe.models.resolve import resolve_local, without_missing_optional
from coe.serve.pool_builder import bind_pools
from coe.serve.serve_config import INGRESS_CPUS, expert_options, ingress_options

log = logging.getLogger(__name__)


def expert_info(expert: ExpertConfig, checkpoint: Path | None, config: CoEConfig | None = None) -> ExpertInfo:
    if expert.remote is not None:
        where = expert.remote.api_base or expert.remote.model
        return ExpertInfo(expert.id, "remote", expert.description, False, f"litellm:{expert.remote.model} @ {where}")
    if expert.adapter is not None:
        base = config.expert(expert.adapter.base) if config is not None else None
        return ExpertInfo(expert.id, "adapter", expert.description,
                          is_base_model=base is not None and base.prompt_format is PromptFormat.completion,
                          location=f"LoRA on {expert.adapter.base}: {checkpoint}")
    return ExpertInfo(
        expert.id,
        "local",
        expert.description,
        is_base_model=expert.prompt_format is PromptFormat.completion,
        location=str(checkpoint),
        moe_routing=_moe_routing(checkpoint),
    )


def _moe_routing(checkpoint: Path | None) -> str | None:
    from coe.moe.settings import moe_settings

    settings = moe_settings(checkpoint) if checkpoint is not None else None
    return settings.describe() if settings else None


def build_application(config: CoEConfig, checkpoints: dict[str, Path] | None = None):  # -> serve.Application
    """`checkpoints` maps local expert ids to prepared folders; missing ones are resolved here."""
    from ray import serve

    from coe.serve.expert_deployment import ExpertDeployment
    from coe.serve.ingress import Ingress

    checkpoints = dict(checkpoints or {})
    for expert in config.experts:
        if expert.remote is None:
            checkpoints.setdefault(expert.id, resolve_local(expert, config.model_cache_dir))
    handles = {}
    for expert in config.experts:
        if not expert.has_engine or config.pool_of(expert.id) is not None:
            continue  # remote, an adapter on its base's engine, or served by its pool's slots (coe/serve/pool_builder.py)
        adapters = {a.id: str(checkpoints[a.id]) for a in config.adapters_of(expert.id)}
        deployment = serve.deployment(ExpertDeployment, **expert_options(expert))  # replicas, autoscaling, resources
        handles[expert.id] = deployment.bind(expert, str(checkpoints[expert.id]), adapters, spare_frontends(config, expert))
    for expert in config.experts:
        if expert.adapter is not None:
            handles[expert.id] = handles[expert.adapter.base]
    infos = [expert_info(e, checkpoints.get(e.id), config) for e in config.experts]
    ingress = serve.deployment(serve.ingress()(Ingress), **ingress_options(config))
    return ingress.bind(config, infos, handles, bind_pools(config, checkpoints))


def linkable(config: CoEConfig, expert: ExpertConfig) -> bool:
    """Whether ingress replicas run their own frontend on this expert's engine: a dedicated engine with
    one replica (with several, the handle spreads the load; a link would pin it to one)."""
    return config.server.direct_engines and expert.has_engine and config.pool_of(expert.id) is None and expert.scaling is None


def spare_frontends(config: CoEConfig, expert: ExpertConfig) -> int:
    """Frontend slots an engine keeps for ingress replicas: each replica links once per engine, and a
    restarted replica needs a fresh slot (the engine cannot reuse one), so twice the replicas."""
    return 2 * config.cluster.ingress_replicas if linkable(config, expert) else 0


def app_from_args(args: dict):  # -> serve.Application
    """The Serve config's `import_path` (see deploy/): `args.config` is the coe.yaml, as a mapping."""
    from coe.config import parse_config

    if not isinstance(args, dict) or "config" not in args:
        raise ValueError("the Serve config's args must be {config: <coe.yaml mapping>}; run `coe deploy config`")
    config, skipped = without_missing_optional(parse_config(args["config"], "serve config args.config"))
    for reason in skipped.values():
        log.warning("skipping optional %s", reason)
    return build_application(config)


def required_cpus(config: CoEConfig) -> float:
    """Ray CPUs the app reserves: the ingress replicas, each dedicated expert, each pool's slots."""
    ingress = INGRESS_CPUS * config.cluster.ingress_replicas
    dedicated = sum(e.engine.num_cpus for e in config.dedicated_engine_experts())
    slots = sum(pool.slots * config.expert(pool.experts[0]).engine.num_cpus for pool in config.pools)
    return ingress + dedicated + slots
