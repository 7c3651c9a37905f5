"""Builds the Ray Serve application for a CoE config: one Expert deployment per local expert, one
ingress. This is the entry point a Serve config's `import_path` names, and what `coe serve` runs.
"""

from __future__ import annotations

from pathlib import Path

from coe.config import CoEConfig, ExpertConfig, PromptFormat
from coe.experts.base import ExpertInfo
from coe.experts.vllm_backend import engine_env
from coe.models.resolve import resolve_checkpoint

INGRESS_CPUS = 0.25


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
        deployment = serve.deployment(
            ExpertDeployment,
            name=f"expert-{expert.id}",
            max_ongoing_requests=max(64, 4 * expert.engine.max_num_seqs),
            health_check_period_s=10,
            health_check_timeout_s=60,
            ray_actor_options={
                "num_cpus": expert.engine.num_cpus,
                "runtime_env": {"env_vars": engine_env(expert.engine)},
            },
        )
        handles[expert.id] = deployment.bind(expert, str(path))
    infos = [expert_info(e, checkpoints.get(e.id)) for e in config.experts]
    ingress = serve.deployment(
        serve.ingress()(Ingress),
        name="ingress",
        max_ongoing_requests=config.server.ingress_max_ongoing_requests,
        ray_actor_options={"num_cpus": INGRESS_CPUS},
    )
    return ingress.bind(config, infos, handles)


def required_cpus(config: CoEConfig) -> float:
    return INGRESS_CPUS + sum(e.engine.num_cpus for e in config.experts if e.remote is None)
