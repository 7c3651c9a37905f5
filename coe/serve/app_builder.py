"""Builds the Ray Serve application for a CoE config: one Expert deployment per local expert, one
ingress. This is the entry point a Serve config's `import_path` names, and what `coe serve` runs.
"""

from __future__ import annotations

from pathlib import Path

from coe.config import CoEConfig, ExpertConfig, PromptFormat
from coe.experts.base import ExpertInfo
from coe.models.resolve import resolve_checkpoint
from coe.serve.pool_builder import bind_pools
from coe.serve.serve_config import INGRESS_CPUS, expert_options, ingress_options


def expert_info(expert: ExpertConfig, checkpoint: Path | None) -> ExpertInfo:
    if expert.remote is not None:
        where = expert.remote.api_base or expert.remote.model
        return ExpertInfo(expert.id, "remote", expert.description, False, f"litellm:{expert.remote.model} @ {where}")
    return ExpertInfo(
        expert.id,
        "local",
        expert.description,
        is_base_model=expert.prompt_format is PromptFormat.completion,
        location=str(checkpoint),
    )


def build_application(config: CoEConfig, checkpoints: dict[str, Path] | None = None):  # -> serve.Application
    """`checkpoints` maps local expert ids to prepared folders; missing ones are resolved here."""
    from ray import serve

    from coe.serve.expert_deployment import ExpertDeployment
    from coe.serve.ingress import Ingress

    checkpoints = dict(checkpoints or {})
    handles = {}
    for expert in config.experts:
        if expert.remote is not None:
            continue
        path = checkpoints.setdefault(expert.id, resolve_checkpoint(expert, config.model_cache_dir))
        if config.pool_of(expert.id) is not None:
            continue  # served by its pool's engine slots (coe/serve/pool_builder.py)
        deployment = serve.deployment(ExpertDeployment, **expert_options(expert))  # replicas, autoscaling, resources
        handles[expert.id] = deployment.bind(expert, str(path))
    infos = [expert_info(e, checkpoints.get(e.id)) for e in config.experts]
    ingress = serve.deployment(serve.ingress()(Ingress), **ingress_options(config))
    return ingress.bind(config, infos, handles, bind_pools(config, checkpoints))


def app_from_args(args: dict):  # -> serve.Application
    """The Serve config's `import_path` (see deploy/): `args.config` is the coe.yaml, as a mapping."""
    from coe.config import parse_config

    if not isinstance(args, dict) or "config" not in args:
        raise ValueError("the Serve config's args must be {config: <coe.yaml mapping>}; run `coe deploy config`")
    return build_application(parse_config(args["config"], "serve config args.config"))


def required_cpus(config: CoEConfig) -> float:
    ingress = INGRESS_CPUS * config.cluster.ingress_replicas
    return ingress + sum(e.engine.num_cpus for e in config.experts if e.remote is None)
