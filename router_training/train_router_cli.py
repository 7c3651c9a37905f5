"""`coe train-router`: train stage 1 on labelled prompts, pick the expert map by K-shot selection
against a running CoE endpoint, tune the fallback threshold, write a versioned router artifact.

The work behind the command of ``router_training/cli.py``; imported only when the command runs."""

from __future__ import annotations

from pathlib import Path

import httpx
from rich.console import Console

from coe.cli.errors import UsageError
from coe.config import load_config
from coe.errors import ExpertUnavailable
from router_training.pipeline import StepReporter

console = Console(stderr=True)


def endpoint_answerer(endpoint: str, experts: list[str], max_tokens: int = 256, timeout_s: float = 300):
    """Answers through a running CoE. A failed request is never scored as an empty answer: a prompt
    past an expert's context window is left out (and counted); anything else stops training with the
    expert named, because scores from a half-working service would be wrong, not noisy."""
    client = httpx.Client(base_url=endpoint.rstrip("/"), timeout=timeout_s)
    try:
        served = {m["id"] for m in client.get("/models").json()["data"]}
    except (httpx.HTTPError, ValueError, KeyError, TypeError) as err:
        raise ExpertUnavailable(f"cannot list the experts of {endpoint}: {err} (is `coe serve` running?)") from None
    missing = sorted(set(experts) - served)
    if missing:
        raise UsageError(f"{endpoint} does not serve {', '.join(missing)} (it serves: {', '.join(sorted(served))}); "
                         "pass --experts with served ones")

    def answer(expert: str, prompt: str) -> str | None:
        body = {"model": expert, "messages": [{"role": "user", "content": prompt}], "temperature": 0, "max_tokens": max_tokens}
        try:
            resp = client.post("/chat/completions", json=body)
        except httpx.HTTPError as err:
            raise ExpertUnavailable(f"expert '{expert}': cannot reach {endpoint}: {err} (is `coe serve` running?)") from None
        if resp.status_code == 200:
            return resp.json()["choices"][0]["message"]["content"]
        try:
            error = resp.json().get("error") or {}
        except ValueError:
            error = {}
        if resp.status_code == 400 and error.get("code") == "context_length_exceeded":
            return None
        raise ExpertUnavailable(f"expert '{expert}' answered HTTP {resp.status_code}: "
                                f"{error.get('message') or resp.text[:300]}; training stopped (no score is made up)")

    return answer


def _built_from(folder: Path) -> str | None:
    import json

    try:
        return json.loads((folder / "router.json").read_text()).get("inputs_sha256") or None
    except (OSError, ValueError):
        return None


def inputs_digest(dataset, scores: Path | None, k, seed: int, experts, general, embedder: str, params) -> str:
    """What a router is a function of: the same digest means the same router (make skips rebuilding).
    The training code and the served choice rule are inputs too, so an upgrade rebuilds it."""
    import hashlib
    import json

    import coe.routing.predictor
    import router_training

    digest = hashlib.sha256(json.dumps([[p.text, p.category] for p in dataset]).encode())
    for source in [*sorted(Path(router_training.__file__).parent.glob("*.py")), Path(coe.routing.predictor.__file__)]:
        digest.update(source.read_bytes())
    digest.update(json.dumps([k, seed, list(experts), general, embedder, params]).encode())
    if scores is not None:
        digest.update(scores.read_bytes())
    return digest.hexdigest()


def local_active_params(config_path: Path | None) -> dict[str, float]:
    from coe.models.inspect import checkpoint_stats, expert_folder

    config = load_config(config_path)
    params = {}
    for expert in config.experts:
        engine = config.expert(expert.adapter.base) if expert.adapter is not None else expert  # an adapter runs its base
        folder = expert_folder(engine, config.model_cache_dir)
        stats = checkpoint_stats(folder) if folder else None
        if stats and stats.active_params:
            params[expert.id] = float(stats.active_params)
    return params


def expert_costs(config, expert_ids: list[str], active_params: dict[str, float]) -> dict[str, float | None]:
    """$ per Mtok of each candidate (coe.experts.costs); an unpriced one is named, since without a
    price for every expert the budget knobs have nothing to weigh."""
    from coe.experts.costs import cost_per_mtok

    by_id = {e.id: e for e in config.experts}
    costs = {e: cost_per_mtok(by_id[e], active_params.get(e)) for e in expert_ids}
    unpriced = [e for e, c in costs.items() if c is None]
    if unpriced:
        console.print(f"[yellow]no price for {', '.join(unpriced)} (set cost_per_mtok in coe.yaml, or prepare its "
                      "weights so its active parameters are known): every expert counts as the same cost[/]")
    return costs


def run_train_router(
    *,
    config_path: Path | None,
    data: Path | None,
    out: Path,
    k: int | None,
    name: str | None = None,
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
    from router_training.kshot_evidence import read_precomputed
    from router_training.pipeline import TrainingPlan, score_by_answering, train_router

    config = load_config(config_path)
    expert_ids = experts or [e.id for e in config.experts]
    unknown = sorted(set(expert_ids) - {e.id for e in config.experts})
    if unknown:
        raise UsageError(f"--experts names {', '.join(unknown)}, not in the config")
    if general_expert is not None and general_expert not in expert_ids:
        raise UsageError(f"--general-expert {general_expert} is not one of the candidate experts ({', '.join(expert_ids)})")
    dataset = load_jsonl(data) if data else default_dataset()
    if categories:
        dataset = [p for p in dataset if p.category in categories]
        if not dataset:
            raise UsageError(f"no prompt has a category in {categories}")
    measured = local_active_params(config_path)
    active_params: dict[str, float] | None = {e: p for e, p in measured.items() if e in expert_ids}
    if any(e not in active_params for e in expert_ids):
        # Remote, or weights not built: the category maps' cost modes (kept for routers without a
        # predictor) cannot weigh them. The served knobs price experts by cost_per_mtok instead, and
        # the pipeline says when a price is missing.
        active_params = None
    costs = expert_costs(config, expert_ids, measured)
    digest = inputs_digest(dataset, scores, k, seed, expert_ids, general_expert, f"{embedder}+{classifier}",
                           [active_params, costs])
    # Only a router trained from a scores file is a function of its inputs; live answers may differ.
    if name is not None and scores is not None and _built_from(out / name) == digest:
        console.print(f"  router {out / name} is up to date (same data, scores and settings)", highlight=False)
        return out / name
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
        name=name,
        inputs_sha256=digest,
        costs=costs,
        stage1_from_scores=data is None,
    )
    progress = lambda message: console.print(f"  {message}", highlight=False)  # noqa: E731
    if scores is not None:
        return train_router(plan, lambda _pool: read_precomputed(scores, expert_ids, k, seed), progress)
    if endpoint is None:
        raise UsageError("K-shot selection needs scores: pass --scores FILE, or --endpoint URL of a running `coe serve`")
    score = build_score_fn(scorer, judge, judge_api_base)
    answer = endpoint_answerer(endpoint, expert_ids)
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
    from evals.scorers import get_scorer

    kwargs = {}
    if scorer == "llm-judge":
        if not judge:
            raise UsageError("--scorer llm-judge needs --judge MODEL (a LiteLLM model string)")
        kwargs = {"model": judge, "api_base": judge_api_base}
    instance = get_scorer(scorer, **kwargs)
    return lambda item, answer: instance.score(item.text, answer, getattr(item, "reference", None))
