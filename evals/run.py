"""What every benchmark run shares: its settings, its results folder and manifest, parallel stages with
progress bars.

A run's folder is named by what determines its answers and judgments (model, endpoint, judge, token
limits, temperature, seed), not by time: the same command finds the same folder and resumes from its
caches, and a run with other settings can never mix its results into it. ``--limit`` is left out of
the name on purpose: a larger limit extends a smaller run and reuses what it cached.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import subprocess
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from coe import paths
from evals.clients import EndpointClient, EvalTransportError, Judge, LiteLLMClient

DEFAULT_ENDPOINT = "http://127.0.0.1:8000/v1"
DEFAULT_OUT = paths.results_dir("evals")
REPO_ROOT = Path(__file__).resolve().parents[1]


class EvalSetupError(ValueError):
    """Settings that cannot work (a changed arrangement behind a run being resumed, a bad option...)."""


@dataclass
class RunSettings:
    benchmark: str  # "mt-bench" | "arena-hard"
    model: str
    judge: str
    endpoint: str | None = DEFAULT_ENDPOINT
    via_litellm: bool = False  # answer through LiteLLM (``model`` is a LiteLLM string) instead of HTTP
    judge_api_base: str | None = None
    max_tokens: int = 1024
    judge_max_tokens: int = 2048
    temperature: float = 0.0
    seed: int = 0
    limit: int | None = None
    parallel: int = 4
    out: Path = DEFAULT_OUT
    name: str | None = None
    baseline: str | None = None  # Arena-Hard: override the package's per-category baselines
    params_config: Path | None = None  # coe.yaml whose local checkpoints give experts' parameter counts
    bootstrap_rounds: int = 100
    quiet: bool = False
    endpoint_id: str | None = None  # names the endpoint in the identity instead of its URL (a port that changes per boot)

    def identity(self) -> dict[str, Any]:
        """The settings that change answers or judgments: they name the folder and must match on resume."""
        return {
            "benchmark": self.benchmark, "model": self.model, "endpoint": self.endpoint_id or self.endpoint,
            "via_litellm": self.via_litellm, "judge": self.judge,
            # a judge on the evaluated endpoint is named as such (its URL may change with the endpoint's port)
            "judge_api_base": "@endpoint" if self.judge_api_base and self.judge_api_base == self.endpoint else self.judge_api_base,
            "max_tokens": self.max_tokens, "judge_max_tokens": self.judge_max_tokens,
            "temperature": self.temperature, "seed": self.seed, "baseline": self.baseline,
        }

    def folder(self) -> Path:
        digest = hashlib.sha256(json.dumps(self.identity(), sort_keys=True).encode()).hexdigest()[:8]
        name = self.name or f"{_slug(self.model)}__judge-{_slug(self.judge)}__{digest}"
        return Path(self.out) / self.benchmark / name

    def answer_client(self) -> EndpointClient | LiteLLMClient:
        if self.via_litellm:
            return LiteLLMClient(self.model, api_base=self.endpoint)
        if not self.endpoint:
            raise EvalSetupError("--endpoint is required unless --litellm answers through a LiteLLM model string")
        return EndpointClient(self.endpoint, self.model)

    def judge_client(self) -> Judge:
        return Judge(self.judge, api_base=self.judge_api_base, max_tokens=self.judge_max_tokens)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "x"


def git_state() -> dict[str, Any]:
    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    commit = git("rev-parse", "HEAD")
    return {"commit": commit or None, "dirty": bool(git("status", "--porcelain", "--untracked-files=no")) if commit else None}


def arrangement(models: list[dict[str, Any]], model: str) -> dict[str, Any]:
    """What answered: the endpoint's experts and router (from ``GET /models``), and which of them the
    evaluated model name means (``coe*`` = the router over all of them, else one expert)."""
    experts = [{"id": m["id"], "kind": (m.get("coe") or {}).get("kind")} for m in models
               if (m.get("coe") or {}).get("kind") != "router"]
    router = next((m for m in models if (m.get("coe") or {}).get("kind") == "router"), None)
    routed = model == "coe" or model.startswith("coe:")
    return {
        "evaluated": model,
        "routed": routed,
        "router_version": (router["coe"].get("version") if router and routed else None),
        "router_general_expert": (router["coe"].get("general_expert") if router and routed else None),
        "experts": experts if routed else [e for e in experts if e["id"] == model] or [{"id": model, "kind": None}],
        "endpoint_experts": [e["id"] for e in experts],
    }


def open_run(settings: RunSettings, models: list[dict[str, Any]], data: dict[str, str]) -> tuple[Path, dict[str, Any]]:
    """Create the run folder and its manifest, or check that a resumed run still matches it."""
    folder = settings.folder()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "manifest.json"
    now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    current = {
        "benchmark": settings.benchmark,
        "run": folder.name,
        "settings": settings.identity(),
        "arrangement": arrangement(models, settings.model),
        "judge": settings.judge_client().describe(),
        "data": data,
        "git": git_state(),
        "seed": settings.seed,
    }
    if path.is_file():
        old = json.loads(path.read_text())
        if old.get("settings") != current["settings"]:
            raise EvalSetupError(f"{folder} holds a run with other settings; pass another --name or --out")
        before, after = old["arrangement"], current["arrangement"]
        if models and (before.get("experts"), before.get("router_version")) != (after["experts"], after["router_version"]):
            raise EvalSetupError(
                f"the arrangement behind {settings.endpoint} changed since this run started "
                f"({before.get('experts')} router {before.get('router_version')} -> {after['experts']} router "
                f"{after['router_version']}); cached answers would mix arrangements: pass another --name"
            )
        manifest = {**old, "resumed": [*old.get("resumed", []), {"at": now, "git": current["git"]}]}
    else:
        manifest = {**current, "created": now}
    manifest["limit"] = settings.limit
    path.write_text(json.dumps(manifest, indent=1) + "\n")
    return folder, manifest


def run_stage(description: str, tasks: Sequence[Callable[[], None]], parallel: int, quiet: bool = False) -> None:
    """Run tasks on ``parallel`` threads with a progress bar. The first error (a transport failure, or
    Ctrl-C) stops the stage: queued tasks are cancelled, finished ones are already cached, and the
    error is raised."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    if not tasks:
        return
    console = Console(stderr=True, quiet=quiet)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    pool = ThreadPoolExecutor(max(1, parallel))
    try:
        with Progress(*columns, console=console) as progress:
            bar = progress.add_task(description, total=len(tasks))
            futures = [pool.submit(task) for task in tasks]
            for future in futures:
                future.add_done_callback(lambda _: progress.advance(bar))
            done, _ = wait(futures, return_when=FIRST_EXCEPTION)
            errors = [f.exception() for f in done if not f.cancelled() and f.exception() is not None]
            if errors:
                raise errors[0]
    finally:
        pool.shutdown(wait=True, cancel_futures=True)  # waits only for the requests already in flight


__all__ = ["EvalSetupError", "EvalTransportError", "RunSettings", "open_run", "run_stage", "DEFAULT_ENDPOINT", "DEFAULT_OUT"]
