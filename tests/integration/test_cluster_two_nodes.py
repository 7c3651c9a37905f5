"""A real two-node Ray cluster on this machine, CoE deployed on it with `serve deploy` from deploy/.

`ray start --head` and `ray start --address` (the second raylet with its own resources) each run as
a `--block` child of this test in its own process group, stopped by that group: never `ray stop`,
which would kill every Ray process on the machine. Ray 2.60 token auth is on (RAY_AUTH_MODE=token,
with a token made for this cluster). The deployed file is deploy/serve_config.yaml with only the HTTP
port changed to a free one; requests go through the openai SDK; the `x-coe-node` header shows which
node's ingress replica answered, and Redis (a real redis-server) holds the stats both wrote.

Cost: one SmolLM2 engine (eager) boots in the cluster; about 1.5-2 minutes on 2 cores.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from coe.serve.subprocess_server import free_port
from coe.state.redis_server import RedisServer

REPO = Path(__file__).resolve().parents[2]
SERVE_CONFIG = REPO / "deploy" / "serve_config.yaml"
BIN = Path(sys.executable).parent
EXPERT = "smollm2-135m-instruct"
REQUESTS = 16


class RayNode:
    """One `ray start --block` process group owned by this test."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        self.proc = subprocess.Popen(
            [str(BIN / "ray"), "start", "--block", "--disable-usage-stats", *args],
            stdout=log.open("wb"), stderr=subprocess.STDOUT, env=env, start_new_session=True,
        )

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=8)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # anything of the group left behind
        except ProcessLookupError:
            pass


def node_ports() -> list[str]:
    names = ["node-manager-port", "object-manager-port", "metrics-export-port", "dashboard-agent-listen-port",
             "dashboard-agent-grpc-port", "runtime-env-agent-port"]
    return [arg for name in names for arg in (f"--{name}", str(free_port()))]


def run(cmd: list[str], env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout, check=False)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    from ray._private.authentication.authentication_token_generator import (
        generate_new_authentication_token,
    )

    work = tmp_path_factory.mktemp("cluster")
    temp_dir = Path(f"/tmp/coe-ray-{os.getpid()}")  # short: Ray's socket paths must fit 107 bytes
    redis = RedisServer(work).start()
    gcs_port, dashboard_port, http_port = free_port(), free_port(), free_port()
    env = {
        **os.environ,
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN": generate_new_authentication_token(),
        "COE_REDIS_URL": redis.url,
        "PYTHONPATH": str(REPO),
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "RAY_USAGE_STATS_ENABLED": "0",
        "RAY_SERVE_PROXY_PREFER_LOCAL_NODE_ROUTING": "0",
    }
    common = ["--num-cpus", "1", "--object-store-memory", str(100 * 1024 * 1024)]
    nodes = [RayNode(["--head", "--port", str(gcs_port), "--dashboard-port", str(dashboard_port),
                      "--dashboard-host", "127.0.0.1", "--ray-client-server-port", str(free_port()),
                      "--temp-dir", str(temp_dir), *common, *node_ports()], env, work / "head.log")]
    address = f"http://127.0.0.1:{dashboard_port}"
    try:
        wait_for(lambda: run([str(BIN / "ray"), "status", "--address", f"127.0.0.1:{gcs_port}"], env).returncode == 0,
                 60, "head node", nodes[0].log)
        nodes.append(RayNode(["--address", f"127.0.0.1:{gcs_port}", "--resources", json.dumps({"node2": 1}),
                              *common, *node_ports()], env, work / "worker.log"))
        wait_for(lambda: "node2" in run([str(BIN / "ray"), "status", "--address", f"127.0.0.1:{gcs_port}"], env).stdout,
                 60, "second node", nodes[1].log)
        deployed = yaml.safe_load(SERVE_CONFIG.read_text())
        deployed["http_options"]["port"] = http_port
        config_file = work / "serve_config.yaml"
        config_file.write_text(yaml.safe_dump(deployed, sort_keys=False))
        wait_for(lambda: run([str(BIN / "serve"), "deploy", str(config_file), "-a", address], env).returncode == 0,
                 60, "serve deploy", nodes[0].log)
        yield {"env": env, "address": address, "http_port": http_port, "deployed": deployed, "redis": redis,
               "work": work}
    finally:
        for node in reversed(nodes):
            node.stop()
        redis.stop()
        shutil.rmtree(temp_dir, ignore_errors=True)


def wait_for(check, timeout_s: float, what: str, log: Path) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(1)
    raise TimeoutError(f"{what} not ready after {timeout_s}s; log tail:\n{log.read_text(errors='replace')[-3000:]}")


def serve_details(cluster: dict) -> dict:
    code = ("import json,sys; from ray.dashboard.modules.serve.sdk import ServeSubmissionClient as C; "
            "print(json.dumps(C(sys.argv[1]).get_serve_details()))")
    proc = run([sys.executable, "-c", code, cluster["address"]], cluster["env"])
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout)


def test_coe_on_two_ray_nodes_serves_from_both(cluster: dict) -> None:
    from openai import OpenAI

    deadline = time.monotonic() + 240
    while True:
        app = serve_details(cluster).get("applications", {}).get("coe", {})
        if app.get("status") == "RUNNING":
            break
        assert app.get("status") not in ("DEPLOY_FAILED", "UNHEALTHY"), app.get("message")
        assert time.monotonic() < deadline, f"application not RUNNING: {app.get('status')} {app.get('message')}"
        time.sleep(3)

    deployments = app["deployments"]
    ingress_nodes = {r["node_id"] for r in deployments["ingress"]["replicas"] if r["state"] == "RUNNING"}
    assert len(ingress_nodes) == 2, "one ingress replica per node (max_replicas_per_node: 1)"
    assert len([r for r in deployments[f"expert-{EXPERT}"]["replicas"] if r["state"] == "RUNNING"]) == 1
    assert not [r for r in deployments["expert-gemma3-270m"]["replicas"] if r["state"] == "RUNNING"], \
        "the cold expert is scaled to zero"

    client = OpenAI(base_url=f"http://127.0.0.1:{cluster['http_port']}/v1", api_key="cluster-test", max_retries=0,
                    timeout=120)
    served: Counter[str] = Counter()
    for i in range(REQUESTS):
        raw = client.chat.completions.with_raw_response.create(
            model=EXPERT, messages=[{"role": "user", "content": f"Say hello number {i}."}], max_tokens=4, temperature=0,
        )
        reply = raw.parse()
        assert reply.choices[0].message.content.strip()
        assert raw.headers["x-coe-expert"] == EXPERT and raw.headers["x-coe-state"] == "redis"
        served[raw.headers["x-coe-node"]] += 1
    assert set(served) == ingress_nodes, f"requests per node: {dict(served)}"
    print(f"requests answered per node: {dict(served)}")

    # Both nodes' replicas counted into the same Redis.
    counted = lambda: cluster["redis"].command("get", f"coe:stats:{EXPERT}:requests")
    deadline = time.monotonic() + 10  # stats are written just after each response
    while counted() != str(REQUESTS) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert counted() == str(REQUESTS)

    # Redis stopped mid-run: requests keep flowing on both nodes; restarted: back on Redis.
    def ask(i: int):
        return client.chat.completions.with_raw_response.create(
            model=EXPERT, messages=[{"role": "user", "content": f"Count to {i}."}], max_tokens=2, temperature=0)

    cluster["redis"].stop()
    during = [ask(i) for i in range(6)]
    assert all(r.parse().choices for r in during)
    assert {r.headers["x-coe-state"] for r in during} == {"local-fallback"}
    cluster["redis"].start()
    time.sleep(1.5)  # retry_interval_s is 1 s
    after = [ask(i) for i in range(6)]
    assert {r.headers["x-coe-state"] for r in after} == {"redis"}
    assert {r.headers["x-coe-node"] for r in during + after} == ingress_nodes

    status = run([str(BIN / "coe"), "deploy", "status", "-a", cluster["address"]], cluster["env"])
    assert status.returncode == 0, status.stderr
    assert re.search(r"ingress\s.*HEALTHY\s.*2", status.stdout), status.stdout


@pytest.mark.skipif(not os.environ.get("COE_TEST_COLD_START"), reason="boots a second engine (about 1 minute); "
                    "set COE_TEST_COLD_START=1 to measure scale-from-zero")
def test_cold_expert_scales_up_from_zero_on_first_request(cluster: dict) -> None:
    from openai import OpenAI

    def running() -> int:
        app = serve_details(cluster)["applications"]["coe"]
        return len([r for r in app["deployments"]["expert-gemma3-270m"]["replicas"] if r["state"] == "RUNNING"])

    assert running() == 0
    client = OpenAI(base_url=f"http://127.0.0.1:{cluster['http_port']}/v1", api_key="cold", max_retries=0, timeout=300)
    started = time.monotonic()
    reply = client.chat.completions.create(
        model="gemma3-270m", messages=[{"role": "user", "content": "What is the capital of France?"}],
        max_tokens=8, temperature=0,
    )
    waited = time.monotonic() - started
    assert reply.choices[0].message.content.strip()
    assert running() == 1
    print(f"cold expert: first request answered after {waited:.1f}s (scale 0 -> 1, engine boot included)")
