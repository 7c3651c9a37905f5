"""The Ray Serve options of every CoE deployment, and the Serve config file built from a coe.yaml.

One function decides each deployment's replicas, resources and autoscaling; `coe serve` (through
`app_builder`) and `coe deploy config` (the YAML that `serve deploy` and KubeRay's RayService read)
both use it, so a laptop and a cluster run the same application with the same settings.
"""

from __future__ import annotations

from typing import Any

from coe.config import CoEConfig, ExpertConfig, ScalingOptions

APP_NAME = "coe"
IMPORT_PATH = "coe.serve.app_builder:app_from_args"
INGRESS_NAME = "ingress"
INGRESS_CPUS = 0.25
APP_ENV = {"LITELLM_LOCAL_MODEL_COST_MAP": "True", "RAY_USAGE_STATS_ENABLED": "0"}
"""Set in every replica: no price-map download at LiteLLM import, no Ray usage reporting."""
INGRESS_MAIN_LOOP_ENV = {
    "RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD": "0",
    "RAY_SERVE_RUN_ROUTER_IN_SEPARATE_LOOP": "0",
}
"""Set in the ingress replica only (`server.ingress_on_main_loop`). By default Ray Serve runs user code on a
second thread's event loop and its handle router on a third: a request crosses threads on the way in and
again with every piece on the way out. The ingress does no long blocking work on its loop (routing decisions and
engine attaches run in worker threads; coe/routing/service.py, coe/serve/linked_engine.py), so it gives nothing
up by running on Serve's loop. Expert and slot replicas keep the separate thread: an engine's boot blocks
the loop it runs on for seconds (coe/experts/vllm_backend.py: start), and on Serve's loop that would
stall the health checks and every other call to the replica. Measured in the
README (Performance, "The ingress on Ray Serve's own event loop")."""


def expert_deployment_name(expert_id: str) -> str:
    return f"expert-{expert_id}"


def autoscaling_config(scaling: ScalingOptions) -> dict[str, Any]:
    """Serve scales on ongoing requests (queued + running) per replica: the queue depth."""
    config: dict[str, Any] = {
        "min_replicas": scaling.min_replicas,
        "initial_replicas": scaling.min_replicas if scaling.initial_replicas is None else scaling.initial_replicas,
        "max_replicas": scaling.max_replicas,
        "target_ongoing_requests": scaling.target_ongoing_requests,
        "upscale_delay_s": scaling.upscale_delay_s,
        "downscale_delay_s": scaling.downscale_delay_s,
    }
    if scaling.downscale_to_zero_delay_s is not None:
        config["downscale_to_zero_delay_s"] = scaling.downscale_to_zero_delay_s
    return config


def expert_options(expert: ExpertConfig) -> dict[str, Any]:
    from coe.experts.vllm_backend import engine_env

    options: dict[str, Any] = {
        "name": expert_deployment_name(expert.id),
        "max_ongoing_requests": max(64, 4 * expert.engine.max_num_seqs),
        "health_check_period_s": 10,
        "health_check_timeout_s": 60,
        "ray_actor_options": {
            "num_cpus": expert.engine.num_cpus,
            "runtime_env": {"env_vars": engine_env(expert.engine)},
        },
    }
    if expert.scaling is None:
        options["num_replicas"] = 1
    else:
        options["autoscaling_config"] = autoscaling_config(expert.scaling)
    return options


def ingress_options(config: CoEConfig) -> dict[str, Any]:
    options: dict[str, Any] = {
        "name": INGRESS_NAME,
        "num_replicas": config.cluster.ingress_replicas,
        # Twice the app's own admission limit (coe.api.admission): the excess gets a 503 from the app at
        # once instead of waiting in Serve's proxy queue.
        "max_ongoing_requests": 2 * config.server.ingress_max_ongoing_requests,
        "ray_actor_options": {"num_cpus": INGRESS_CPUS},
    }
    if config.server.ingress_on_main_loop:
        options["ray_actor_options"]["runtime_env"] = {"env_vars": dict(INGRESS_MAIN_LOOP_ENV)}
    if config.cluster.ingress_max_replicas_per_node is not None:
        options["max_replicas_per_node"] = config.cluster.ingress_max_replicas_per_node
    return options


def logging_config(config: CoEConfig) -> dict[str, Any]:
    """Ray Serve's logging for every deployment of the app. `server.access_log: false` drops the line per
    request (ingress, and expert replicas on the replica path) as vLLM's `--disable-uvicorn-access-log` does."""
    return {"enable_access_log": config.server.access_log}


def build_serve_config(config: CoEConfig, coe_yaml: dict[str, Any]) -> dict[str, Any]:
    """The Serve config (`serve deploy` / RayService `serveConfigV2`) for `coe_yaml`, already validated
    as `config`. The coe.yaml travels inside as the application's args; every deployment's options are
    written out explicitly so the file says what runs, and an operator can edit them in one place."""
    from coe.serve.pool_builder import slot_options

    deployments = [ingress_options(config)]
    deployments += [expert_options(e) for e in config.dedicated_engine_experts()]
    deployments += [slot_options(config, pool, i) for pool in config.pools for i in range(pool.slots)]
    return {
        "proxy_location": config.cluster.proxy_location,
        "http_options": {"host": config.cluster.http_host, "port": config.cluster.http_port},
        "applications": [
            {
                "name": APP_NAME,
                "route_prefix": "/",
                "import_path": IMPORT_PATH,
                "runtime_env": {"env_vars": dict(APP_ENV)},
                "args": {"config": coe_yaml},
                "logging_config": logging_config(config),
                "deployments": deployments,
            }
        ],
    }


def validate_serve_config(data: dict[str, Any]) -> None:
    """Checks a Serve config against Ray Serve's own schema (what `serve deploy` and KubeRay submit to)."""
    from ray.serve.schema import ServeDeploySchema

    ServeDeploySchema.model_validate(data)
