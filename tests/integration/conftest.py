"""One real CoE service per test session: two bundled vLLM experts, a remote (LiteLLM) expert, a
synthetic variant sharing SmolLM2's engine slot and two upcycled MoE experts sharing another slot.

Booting engines costs over a minute on 2 cores, so the server is session-scoped. The remote expert
points LiteLLM at this same service's OpenAI endpoint: a real OpenAI-compatible server on loopback,
serving a real vLLM engine, so the remote path is tested without a paid API or a third engine.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from coe.serve.subprocess_server import CoEServer, free_port

SMOL = "smollm2-135m-instruct"
GEMMA = "gemma3-270m"
GEMMA_QUEUE_S = 5  # how long a Gemma request waits for a replica before its fallback answers it
REMOTE = "remote-smollm2"
VARIANT = f"{SMOL}-variant-7"  # synthetic (coe/models/variants.py): shares SmolLM2's engine slot
# Two Mixtral checkpoints upcycled from SmolLM2 and a variant with zero routers (ties go to expert 0):
# the first computes with SmolLM2's FFN, the second with the variant's, over the same averaged attention.
MOE, MOE_SWAPPED = "smollm2-moe-test", "smollm2-moe-test-swapped"


def build_moe_experts(folder: Path, base: Path) -> dict[str, Path]:
    from coe.models.variants import make_variant
    from coe.moe.upcycle import upcycle

    variant = make_variant(base, folder / "moe-source-variant", seed=1, noise=0.15)
    return {MOE: upcycle([base, variant], folder / MOE, top_k=1).path,
            MOE_SWAPPED: upcycle([variant, base], folder / MOE_SWAPPED, top_k=1).path}


def service_config(port: int, router: Path, variant: Path, moes: dict[str, Path], warm_dir: Path) -> dict:
    """SmolLM2 and a variant share one engine slot (a swap pool; `repack` keeps vLLM's packed CPU
    kernels, so SmolLM2's output stays comparable with a plain engine's); Gemma has its own engine;
    the two MoEs share a third."""
    return {
        "router": {"artifact": str(router)},
        "experts": [
            {
                "id": SMOL,
                "weights": f"bundled:{SMOL}",
                "architecture": "LlamaForCausalLM",
                "prompt_format": "chat",
                "engine": {"cpu_bind": "0", "max_model_len": 1024},
            },
            {
                "id": GEMMA,
                "weights": f"bundled:{GEMMA}",
                "architecture": "Gemma3ForCausalLM",
                "prompt_format": "completion",
                "engine": {"cpu_bind": "1", "max_model_len": 1024},
                "fallbacks": [SMOL],  # test_replica_killed: a stream cut by a dead replica ends on SmolLM2
                "timeouts": {"queue_s": GEMMA_QUEUE_S},  # ...and while it restarts, its requests go to SmolLM2 after 5 s
            },
            {
                "id": VARIANT,
                "description": "synthetic variant of SmolLM2 (seeded noise), for swap tests",
                "weights": str(variant),
                "architecture": "LlamaForCausalLM",
                "prompt_format": "chat",
            },
            *({"id": name, "description": "upcycled MoE (2 experts, top-1) for tests", "weights": str(path),
               "architecture": "MixtralForCausalLM", "prompt_format": "chat",
               "engine": {"cpu_bind": "1", "max_model_len": 1024}} for name, path in moes.items()),
            {
                "id": REMOTE,
                "description": "SmolLM2 reached over HTTP through LiteLLM (this service's own endpoint)",
                "remote": {"model": f"openai/{SMOL}", "api_base": f"http://127.0.0.1:{port}/v1"},
            },
        ],
        "server": {"max_request_bytes": 200_000},
        "pools": [{"id": "smollm2", "experts": [SMOL, VARIANT], "slots": 1, "warm_gib": 1,
                   "warm_dir": str(warm_dir), "slot_weights": "repack"},
                  {"id": "moe", "experts": list(moes), "slots": 1, "warm_gib": 1, "warm_dir": str(warm_dir)}],
    }


# The K-shot evidence for the test router: which expert "wins" each category. The endpoint must follow
# whatever map training derives from it; real K-shot scoring (answers + scorers) is tested in
# tests/unit/router_training and by `coe train-router --endpoint`. Writing goes to an MoE expert, so
# the map has a target that lives in a swap pool.
TEST_WINNERS = {"coding": SMOL, "general": SMOL, "math": GEMMA, "writing": MOE}
ROUTED = (SMOL, GEMMA, MOE)


def write_router_inputs(folder: Path) -> tuple[Path, Path]:
    from router_training.data import default_dataset

    data, scores = folder / "prompts.jsonl", folder / "scores.jsonl"
    dataset = default_dataset(cap=60)
    with data.open("w") as f:
        for item in dataset:
            f.write(json.dumps({"prompt": item.text, "category": item.category}) + "\n")
    with scores.open("w") as f:
        for category, winner in TEST_WINNERS.items():
            for item in [p for p in dataset if p.category == category][:10]:
                for expert in ROUTED:
                    score = 0.9 if expert == winner else 0.2
                    f.write(json.dumps({"prompt": item.text, "category": category, "expert": expert, "score": score}) + "\n")
    return data, scores


# Lines of a server's log worth showing when a test against it fails, wherever they are in the log:
# a replica or engine that died, Ray's memory monitor or health checks killing one, a traceback.
TROUBLE = re.compile(r"Traceback|Error|died|killed|low on memory|health check|unhealthy|exited|Restart", re.I)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    """A failed test against a `coe serve` shows that server's state in its report: CI keeps only
    pytest's output, and the server's log (in a temporary folder) is gone after the run."""
    outcome = yield
    report = outcome.get_result()
    if report.when != "call" or not report.failed:
        return
    funcargs = getattr(item, "funcargs", {})
    for name, server in funcargs.items():
        if not isinstance(server, CoEServer):
            continue
        lines = server.log_path.read_text(errors="replace").splitlines() if server.log_path.exists() else []
        trouble = [line for line in lines if TROUBLE.search(line)][-40:]
        alive = server.proc is not None and server.proc.poll() is None
        report.sections.append((f"{name}: coe serve ({'running' if alive else 'exited'}), {server.log_path}",
                                "\n".join(["-- lines naming trouble (last 40) --", *trouble,
                                           "-- last 40 lines --", *lines[-40:]])))


@pytest.fixture(scope="session")
def router_artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real router (the default static-tuned embedder + logistic regression on benchmark prompts) trained through the CLI."""
    folder = tmp_path_factory.mktemp("router")
    data, scores = write_router_inputs(folder)
    # train-router checks --experts against a config: the routed experts, as the service will name them
    config = folder / "experts.yaml"
    config.write_text(yaml.safe_dump({"experts": [
        {"id": SMOL, "weights": f"bundled:{SMOL}"}, {"id": GEMMA, "weights": f"bundled:{GEMMA}"},
        {"id": MOE, "weights": str(folder / "built-with-the-service")}]}))
    proc = subprocess.run(
        [sys.executable, "-m", "coe.cli.main", "train-router", "--config", str(config), "--data", str(data),
         "--scores", str(scores), "--k", "all", "--experts", ",".join(ROUTED), "--general-expert", SMOL,
         "--out", str(folder / "out")],
        capture_output=True, text=True, timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return Path(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="session")
def service_config_path(tmp_path_factory: pytest.TempPathFactory, router_artifact: Path) -> Iterator[tuple[Path, int]]:
    port = free_port()
    from coe.models.prepare import prepare
    from coe.models.variants import make_variant

    folder = tmp_path_factory.mktemp("coe")
    variant = make_variant(prepare(SMOL).path, folder / VARIANT, seed=7)
    moes = build_moe_experts(folder, prepare(SMOL).path)
    warm_dir = Path("/dev/shm") / f"coe-test-{port}"
    path = folder / "coe.yaml"
    path.write_text(yaml.safe_dump(service_config(port, router_artifact, variant, moes, warm_dir)))
    yield path, port
    shutil.rmtree(warm_dir, ignore_errors=True)  # tmpfs is RAM: leave nothing behind


@pytest.fixture(scope="session")
def coe_server(service_config_path: tuple[Path, int], tmp_path_factory: pytest.TempPathFactory) -> Iterator[CoEServer]:
    path, port = service_config_path
    log = tmp_path_factory.mktemp("logs") / "coe-serve.log"

    def follow_port(old: int, new: int) -> None:  # the remote expert loops back to the server's own port
        path.write_text(path.read_text().replace(f"127.0.0.1:{old}/", f"127.0.0.1:{new}/"))

    server = CoEServer(path, port, log).start(on_new_port=follow_port)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def base_url(coe_server: CoEServer) -> str:
    return f"{coe_server.url}/v1"


@pytest.fixture(scope="session")
def client(base_url: str):
    from openai import OpenAI

    return OpenAI(base_url=base_url, api_key="unused", max_retries=0, timeout=300)
