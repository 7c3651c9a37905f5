"""`coe train-router`: train stage 1 on labelled prompts, pick the expert map by K-shot selection
against a running CoE endpoint, tune the fallback threshold, write a versioned router artifact."""

from __future__ import annotations

from pathlib import Path

import httpx
from rich.console import Console

from coe.cli.errors import UsageError
from coe.config import load_config
from coe.errors import ExpertUnavailable
from router_training.pipeline import StepReporter

console = Console(stderr=True)


def endpoint_answerer(endpoint: str, max_tokens: int = 256, timeout_s: float = 300):
    client = httpx.Client(base_url=endpoint.rstrip("/"), timeout=timeout_s)

    def answer(expert: str, prompt: str) -> str:
        body = {"model": expert, "messages": [{"role": "user", "content": prompt}], "temperature": 0, "max_tokens": max_tokens}
        try:
            resp = client.post("/chat/completions", json=body)
        except httpx.HTTPError as err:
            raise ExpertUnavailable(f"cannot reach {endpoint}: {err} (is `coe serve` running?)") from None
        if resp.status_code >= 400:
            # An answer the expert cannot give (e.g. prompt longer than its window) scores as empty.
            return ""
        return resp.json()["choices"][0]["message"]["content"]

    return answer


def local_active_params(config_path: Path | None) -> dict[str, float]:
    from coe.models.inspect import checkpoint_stats, expert_folder

    config = load_config(config_path)
    params = {}
    for expert in config.experts:
        folder = expert_folder(expert, config.model_cache_dir)
        stats = checkpoint_stats(folder) if folder else None
        if stats and stats.active_params:
            params[expert.id] = float(stats.active_params)
    return params


def run_train_router(
    *,
    config_path: Path | None,
    data: Path | None,
    out: Path,
    k: int | None,
    categories: list[str] | None,
    experts: list[str] | None,
    general_expert: str | None,
    scores: Path | None,
    endpoint: str | None,
    scorer: str,
    judge: str | None,
    judge_api_base: str | None,
    embedder: str,
    classifier: str,
    seed: int,
) -> Path:
    from router_training.data import default_dataset, load_jsonl
    from router_training.pipeline import TrainingPlan, read_precomputed, score_by_answering, train_router

    config = load_config(config_path)
    expert_ids = experts or [e.id for e in config.experts]
    unknown = sorted(set(expert_ids) - {e.id for e in config.experts})
    if unknown:
        raise UsageError(f"--experts names {', '.join(unknown)}, not in the config")
    from router_training.embedders import get_embedder_class

    if data is not None and get_embedder_class(embedder).needs_training_data:
        raise UsageError(f"the '{embedder}' embedder trains on the default dataset; with --data use minilm or static")
    dataset = load_jsonl(data) if data else default_dataset()
    if categories:
        dataset = [p for p in dataset if p.category in categories]
        if not dataset:
            raise UsageError(f"no prompt has a category in {categories}")
    active_params: dict[str, float] | None = {e: p for e, p in local_active_params(config_path).items() if e in expert_ids}
    uncounted = [e for e in expert_ids if e not in active_params]
    if uncounted:  # remote, or weights not prepared/built: the cost-aware map cannot weigh them
        console.print(f"[yellow]no parameter count for {', '.join(uncounted)} (remote or weights not on this machine): "
                      "the cheap map ignores cost[/]")
        active_params = None
    plan = TrainingPlan(
        dataset=dataset,
        experts=expert_ids,
        general_expert=general_expert,
        out=out,
        embedder=embedder,
        classifier=classifier,
        k=k,
        seed=seed,
        active_params=active_params,
    )
    progress = lambda message: console.print(f"  {message}", highlight=False)  # noqa: E731
    if scores is not None:
        return train_router(plan, lambda _pool: read_precomputed(scores, expert_ids, k, seed), progress)
    if endpoint is None:
        raise UsageError("K-shot selection needs scores: pass --scores FILE, or --endpoint URL of a running `coe serve`")
    score = build_score_fn(scorer, judge, judge_api_base)
    answer = endpoint_answerer(endpoint)
    with RichStepReporter(progress) as reporter:
        return train_router(plan, lambda pool: score_by_answering(plan, pool, answer, score, reporter), progress)


class RichStepReporter(StepReporter):
    """A rich progress bar per loop label (K-shot answering takes minutes on CPU)."""

    def __enter__(self) -> "RichStepReporter":
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

        self.bars = Progress("{task.description}", BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), console=console)
        self.tasks: dict[str, int] = {}
        self.bars.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bars.stop()

    def step(self, label: str, done: int, total: int) -> None:
        if label not in self.tasks:
            self.tasks[label] = self.bars.add_task(label, total=total)
        self.bars.update(self.tasks[label], completed=done)


def build_score_fn(scorer: str, judge: str | None, judge_api_base: str | None):
    from router_training.scorers import get_scorer

    kwargs = {}
    if scorer == "llm-judge":
        if not judge:
            raise UsageError("--scorer llm-judge needs --judge MODEL (a LiteLLM model string)")
        kwargs = {"model": judge, "api_base": judge_api_base}
    instance = get_scorer(scorer, **kwargs)
    return lambda item, answer: instance.score(item.text, answer, getattr(item, "reference", None))
