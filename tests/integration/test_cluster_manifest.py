"""deploy/ is consistent: the Serve config is what `coe deploy config` makes of deploy/coe.yaml, Ray
Serve's own schema accepts it, and the KubeRay manifests parse, embed that same Serve config, and have
the fields KubeRay requires.

No Kubernetes cluster is available here and the RayService CRD's OpenAPI schema ships in no package
this project can install (it lives in KubeRay's Go module), so the manifest is checked structurally
against the CRD's required fields, not validated by a Kubernetes API server. Fast: no Ray, no engine.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import yaml

from coe.cli.deploy_cmd import embed_in_rayservice, serve_config_for
from coe.config import parse_config
from coe.serve.serve_config import validate_serve_config

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
DNS_1123 = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def load_all(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def rayservice() -> dict:
    (doc,) = load_all(DEPLOY / "kuberay" / "rayservice.yaml")
    return doc


def test_serve_config_is_generated_from_deploy_coe_yaml_and_valid() -> None:
    checked_in = yaml.safe_load((DEPLOY / "serve_config.yaml").read_text())
    assert checked_in == serve_config_for(DEPLOY / "coe.yaml"), "regenerate: coe deploy config (see deploy/README.md)"
    validate_serve_config(checked_in)  # Ray Serve's ServeDeploySchema, what `serve deploy` submits
    app = checked_in["applications"][0]
    parse_config(app["args"]["config"])
    deployments = {d["name"]: d for d in app["deployments"]}
    assert deployments["ingress"]["num_replicas"] == 2 and deployments["ingress"]["max_replicas_per_node"] == 1
    for name in ("expert-smollm2-135m-instruct", "expert-gemma3-270m"):  # every expert's scaling is explicit
        scaling = deployments[name]["autoscaling_config"]
        assert {"min_replicas", "max_replicas", "target_ongoing_requests", "initial_replicas"} <= set(scaling)
        assert deployments[name]["ray_actor_options"]["num_cpus"] > 0
    assert deployments["expert-gemma3-270m"]["autoscaling_config"]["min_replicas"] == 0  # cold: scale to zero


def test_rayservice_embeds_exactly_the_deployed_serve_config() -> None:
    service = rayservice()
    embedded = yaml.safe_load(service["spec"]["serveConfigV2"])
    assert embedded == yaml.safe_load((DEPLOY / "serve_config.yaml").read_text())
    assert embed_in_rayservice((DEPLOY / "kuberay" / "rayservice.yaml").read_text(), embedded) == \
        (DEPLOY / "kuberay" / "rayservice.yaml").read_text(), "regenerating changes nothing"


def _check_pod_template(template: dict, where: str, claims: set[str]) -> list[dict]:
    spec = template["spec"]
    containers = spec["containers"]
    assert containers, f"{where}: no containers"
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    for container in containers:
        assert container.get("name") and container.get("image"), f"{where}: containers need name and image"
        for mount in container.get("volumeMounts", []):
            assert mount["name"] in volumes, f"{where}: volumeMount {mount['name']} has no volume"
        requests, limits = container["resources"]["requests"], container["resources"]["limits"]
        assert {"cpu", "memory"} <= set(requests) and {"cpu", "memory"} <= set(limits), f"{where}: resources"
    for volume in volumes.values():
        if "persistentVolumeClaim" in volume:
            assert volume["persistentVolumeClaim"]["claimName"] in claims, f"{where}: unknown PVC"
    return containers


def test_rayservice_has_the_fields_kuberay_requires() -> None:
    service = rayservice()
    assert service["apiVersion"] == "ray.io/v1" and service["kind"] == "RayService"
    assert DNS_1123.match(service["metadata"]["name"])
    cluster = service["spec"]["rayClusterConfig"]
    import ray

    assert cluster["rayVersion"] == ray.__version__, "the image's Ray must match rayVersion"
    assert cluster.get("authOptions", {}).get("mode") in (None, "token", "disabled")
    claims = {d["metadata"]["name"] for d in load_all(DEPLOY / "kuberay" / "models.yaml")
              if d["kind"] == "PersistentVolumeClaim"}
    head = cluster["headGroupSpec"]
    assert all(isinstance(v, str) for v in head.get("rayStartParams", {}).values()), "rayStartParams are strings"
    env_sets = [c["env"] for c in _check_pod_template(head["template"], "head", claims)]
    assert {p["containerPort"] for p in head["template"]["spec"]["containers"][0]["ports"]} >= {6379, 8265, 8000}
    for group in cluster["workerGroupSpecs"]:
        assert DNS_1123.match(group["groupName"])
        assert 0 <= group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]
        assert all(isinstance(v, str) for v in group.get("rayStartParams", {}).values())
        env_sets += [c["env"] for c in _check_pod_template(group["template"], group["groupName"], claims)]
    for env in env_sets:  # every Ray pod finds the weights and the shared state the same way
        names = {e["name"]: e.get("value") for e in env}
        assert names["COE_CACHE_DIR"] == "/models" and names["COE_REDIS_URL"].startswith("redis://coe-redis:")


def test_redis_is_a_separate_service_the_config_points_at() -> None:
    docs = {(d["kind"], d["metadata"]["name"]): d for d in load_all(DEPLOY / "kuberay" / "redis.yaml")}
    service = docs[("Service", "coe-redis")]
    deployment = docs[("Deployment", "coe-redis")]
    assert service["spec"]["selector"] == deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["ports"][0]["port"] == 6379
    redis_url = yaml.safe_load((DEPLOY / "coe.yaml").read_text())["state"]["redis_url"]
    assert redis_url.startswith("redis://coe-redis:6379")
    job = next(d for d in load_all(DEPLOY / "kuberay" / "models.yaml") if d["kind"] == "Job")
    assert job["spec"]["template"]["spec"]["containers"][0]["command"] == ["coe", "models", "prepare"]


def test_deploy_config_cli_prints_and_reports_bad_input(tmp_path: Path) -> None:
    ok = subprocess.run([sys.executable, "-m", "coe.cli.main", "deploy", "config", "--config", str(DEPLOY / "coe.yaml")],
                        capture_output=True, text=True, timeout=60, check=False)
    assert ok.returncode == 0 and yaml.safe_load(ok.stdout) == serve_config_for(DEPLOY / "coe.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("experts:\n  - id: x\n    weights: /w\n    scaling: {min_replicas: 3, max_replicas: 1}\n")
    refused = subprocess.run([sys.executable, "-m", "coe.cli.main", "deploy", "config", "--config", str(bad)],
                             capture_output=True, text=True, timeout=60, check=False)
    assert refused.returncode == 2 and "experts.0.scaling" in refused.stderr and "Traceback" not in refused.stderr


def test_pooled_experts_are_deployed_as_their_pool_slots() -> None:
    from coe.serve.serve_config import build_serve_config

    raw = {"experts": [{"id": "a", "weights": "/w"}, {"id": "b", "weights": "/w"}, {"id": "c", "weights": "/w"}],
           "pools": [{"id": "p", "experts": ["a", "b"], "slots": 2}]}
    serve_config = build_serve_config(parse_config(raw), raw)
    validate_serve_config(serve_config)
    names = [d["name"] for d in serve_config["applications"][0]["deployments"]]
    assert names == ["ingress", "expert-c", "slot-p-0", "slot-p-1"]
