"""`coe`: the command-line entry point. Each command is a thin call into the packages.

Heavy imports (Ray, vLLM, torch) happen inside the commands, so `coe --help` is instant. Expected
failures (a bad config, a missing model package) print one clear line and exit non-zero.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from coe import paths
from coe.cli.errors import fail_cleanly
from coe.cli.eval_cmd import eval_app
from coe.cli.leaderboard_cmd import leaderboard
from coe.cli.models_cmd import models_app

app = typer.Typer(help="CoE: one OpenAI-compatible endpoint over a composition of expert LLMs.", no_args_is_help=True)
app.add_typer(models_app, name="models")
app.add_typer(eval_app, name="eval")
app.command("leaderboard")(leaderboard)

ConfigOption = Annotated[
    Optional[Path], typer.Option("--config", "-c", help="coe.yaml to use (default: the bundled one).")
]


@app.command()
def serve(
    config: ConfigOption = None,
    host: Annotated[Optional[str], typer.Option(help="Address to listen on (default: from config).")] = None,
    port: Annotated[Optional[int], typer.Option(help="Port to listen on (default: from config).")] = None,
    redis_url: Annotated[Optional[str], typer.Option(help="Share state through this Redis (default: state.redis_url).")] = None,
) -> None:
    """Serve the experts of a coe.yaml behind one OpenAI-compatible endpoint (local Ray)."""
    with fail_cleanly():
        from coe.cli.serve_cmd import run_serve

        run_serve(config, host, port, redis_url)


@app.command()
def route(
    prompt: Annotated[Optional[str], typer.Argument(help="The prompt to route (or --input FILE).")] = None,
    model: Annotated[str, typer.Option(help="Routing knob: coe, coe:quality|balanced|cheap, coe:<threshold>.")] = "coe",
    router: Annotated[Optional[Path], typer.Option(help="Router artifact folder (default: router.artifact of --config).")] = None,
    config: ConfigOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the decision as one JSON object.")] = False,
    input_file: Annotated[Optional[Path], typer.Option("--input", help="JSONL of {prompt} or {messages}: route every line.")] = None,
    output: Annotated[Optional[Path], typer.Option("--output", help="Where --input's decisions go (JSONL; default: stdout).")] = None,
) -> None:
    """Print the routing decision for a prompt and why (top categories, map entry, fallback); generates nothing."""
    with fail_cleanly():
        from coe.cli.route_cmd import run_route, run_route_file

        if input_file is not None:
            run_route_file(input_file, output, model, router, config)
        elif prompt is None:
            from coe.cli.errors import UsageError

            raise UsageError("give a prompt, or --input FILE with one JSON object per line")
        else:
            run_route(prompt, model, router, config, as_json)


def parse_k(text: str) -> int | None:
    """`--k 5` or `--k all` (every scored prompt)."""
    from coe.cli.errors import UsageError

    if text.strip().lower() == "all":
        return None
    if not text.strip().isdigit() or int(text) < 1:
        raise UsageError(f"--k takes a positive number or 'all', not {text!r}")
    return int(text)


@app.command("train-router")
def train_router(
    out: Annotated[Path, typer.Option(help="Folder for router artifacts (a versioned subfolder is written).")] = paths.routers_dir(),
    config: ConfigOption = None,
    data: Annotated[Optional[Path], typer.Option(exists=True, dir_okay=False, help="Labelled prompts (JSONL: prompt or messages, category). Default: built from benchmark packages.")] = None,
    k: Annotated[str, typer.Option("--k", help="Prompts per category each expert answers for K-shot selection, or 'all'.")] = "5",
    name: Annotated[Optional[str], typer.Option(help="Folder name under --out (default: router-<timestamp>); a named router has no clock in it.")] = None,
    categories: Annotated[Optional[str], typer.Option(help="Comma-separated categories to keep.")] = None,
    experts: Annotated[Optional[str], typer.Option(help="Comma-separated candidate experts (default: all in the config).")] = None,
    general_expert: Annotated[Optional[str], typer.Option(help="Expert for low-confidence prompts (default: the best single expert on the K-shot evidence).")] = None,
    scores: Annotated[Optional[Path], typer.Option(exists=True, dir_okay=False, help="Precomputed K-shot scores (JSONL: prompt, category, expert, score).")] = None,
    endpoint: Annotated[Optional[str], typer.Option(help="Running CoE endpoint whose experts answer the K-shot prompts.")] = None,
    scorer: Annotated[str, typer.Option(help="Scorer for answers: llm-judge, exact-match, unit-tests.")] = "llm-judge",
    judge: Annotated[Optional[str], typer.Option(help="LiteLLM model string of the judge (llm-judge scorer).")] = None,
    judge_api_base: Annotated[Optional[str], typer.Option(help="api_base for the judge.")] = None,
    embedder: Annotated[str, typer.Option(help="Stage-1 embedder: minilm or static.")] = "minilm",
    classifier: Annotated[str, typer.Option(help="Stage-1 classifier: logreg, knn, mlp.")] = "logreg",
    seed: int = 0,
    analysis: Annotated[
        bool, typer.Option("--alpacaeval-analysis", help="Instead of training: run the routing-quality analysis on the AlpacaEval matrix.")
    ] = False,
    analysis_seeds: Annotated[int, typer.Option(help="Random splits for --alpacaeval-analysis.")] = 20,
) -> None:
    """Train the router: stage-1 classifier, K-shot expert map, fallback threshold -> artifact folder."""
    if analysis:
        from router_training.pref_analysis import main as pref_analysis

        raise typer.Exit(pref_analysis(["--seeds", str(analysis_seeds), "--out", str(out / "routing_analysis")]))
    with fail_cleanly():
        from coe.cli.train_router_cmd import run_train_router

        split = lambda text: [t.strip() for t in text.split(",") if t.strip()] if text else None  # noqa: E731
        folder = run_train_router(
            config_path=config, data=data, out=out, k=parse_k(k), name=name, categories=split(categories), experts=split(experts),
            general_expert=general_expert, scores=scores, endpoint=endpoint, scorer=scorer, judge=judge,
            judge_api_base=judge_api_base, embedder=embedder, classifier=classifier, seed=seed,
        )
        typer.echo(str(folder))


deploy_app = typer.Typer(help="Run CoE on a Ray cluster: Serve config, submit, status.", no_args_is_help=True)
app.add_typer(deploy_app, name="deploy")
DashboardOption = Annotated[
    str, typer.Option("--address", "-a", envvar="RAY_DASHBOARD_ADDRESS", help="Ray dashboard address of the cluster.")
]


@deploy_app.command("config")
def deploy_config(
    config: ConfigOption = None,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Write here (default: print).")] = None,
    kuberay: Annotated[Optional[Path], typer.Option(help="Also embed it as serveConfigV2 in this RayService manifest.")] = None,
) -> None:
    """Write the Ray Serve config (serve deploy / KubeRay serveConfigV2) for a coe.yaml."""
    with fail_cleanly():
        from coe.cli.deploy_cmd import run_config

        run_config(config, out, kuberay)


@deploy_app.command("apply")
def deploy_apply(config: ConfigOption = None, address: DashboardOption = "http://127.0.0.1:8265") -> None:
    """Build the Serve config from a coe.yaml and submit it to a running Ray cluster (like `serve deploy`)."""
    with fail_cleanly():
        from coe.cli.deploy_cmd import run_apply

        run_apply(config, address)


@deploy_app.command("status")
def deploy_status(address: DashboardOption = "http://127.0.0.1:8265") -> None:
    """Each CoE deployment on the cluster: status, running replicas, their nodes."""
    with fail_cleanly():
        from coe.cli.deploy_cmd import run_status

        run_status(address)


# Specialists and in-model MoE (issue 8): the command modules import only typer/rich at load time.
from coe.cli.finetune_cmd import finetune as _finetune  # noqa: E402
from coe.cli.moe_stats_cmd import moe_stats as _moe_stats  # noqa: E402
from coe.cli.upcycle_cmd import upcycle as _upcycle  # noqa: E402

app.command("finetune")(_finetune)
app.command("upcycle")(_upcycle)
app.command("moe-stats")(_moe_stats)

from coe.cli.swap_bench_cmd import swap_bench as _swap_bench  # noqa: E402

app.command("swap-bench")(_swap_bench)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
