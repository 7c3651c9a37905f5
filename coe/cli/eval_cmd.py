"""`coe eval mt-bench|arena-hard|routing-analysis`: thin wrappers over the evals package.

Heavy imports happen inside the commands. Errors a user can fix (an unreachable endpoint or judge, a
run folder that holds other settings, a missing data package) print one line and exit 2; everything
already answered or judged stays cached, so rerunning the same command resumes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Optional

import typer

from coe import paths
from coe.cli.errors import err_console, fail_cleanly

eval_app = typer.Typer(help="Evaluate an arrangement: MT-Bench, Arena-Hard, offline routing analysis.",
                       no_args_is_help=True)

Endpoint = Annotated[Optional[str], typer.Option(help="OpenAI-compatible base URL that answers (with --litellm: its api_base, optional).")]
Model = Annotated[str, typer.Option(help="Model to evaluate: coe (the router), coe:<knob>, an expert id, or with --litellm a LiteLLM string.")]
JudgeOpt = Annotated[str, typer.Option(help="The judge: any LiteLLM model string, e.g. openai/gpt-4o or openai/smollm2-135m-instruct.")]
JudgeBase = Annotated[Optional[str], typer.Option(help="api_base for the judge (a local OpenAI-compatible server).")]
Limit = Annotated[Optional[int], typer.Option(min=1, help="Only the first N questions, taken one category at a time.")]
Parallel = Annotated[int, typer.Option(min=1, help="Requests in flight at once.")]
Out = Annotated[Path, typer.Option(help="Results root; a run writes <out>/<benchmark>/<run>/.")]


@contextlib.contextmanager
def _eval_errors() -> Iterator[None]:
    from evals.clients import EvalTransportError
    from evals.run import EvalSetupError

    try:
        yield
    except (EvalSetupError, EvalTransportError, FileNotFoundError) as err:
        err_console.print(f"[bold red]error:[/] {err}", highlight=False)
        err_console.print("cached answers and judgments are kept: rerun the same command to resume", highlight=False)
        raise typer.Exit(code=2) from None


def _run(benchmark: str, **kwargs: object) -> None:
    with fail_cleanly(), _eval_errors():
        from evals import arena_hard, mt_bench
        from evals.run import RunSettings

        settings = RunSettings(benchmark=benchmark, **kwargs)  # type: ignore[arg-type]
        folder = (mt_bench if benchmark == "mt-bench" else arena_hard).run(settings)
        from evals.leaderboard import run_summary_markdown

        typer.echo(run_summary_markdown(folder))
        typer.echo(str(folder))


@eval_app.command("mt-bench")
def mt_bench_cmd(
    judge: JudgeOpt,
    endpoint: Endpoint = "http://127.0.0.1:8000/v1",
    model: Model = "coe",
    judge_api_base: JudgeBase = None,
    limit: Limit = None,
    parallel: Parallel = 4,
    max_tokens: Annotated[int, typer.Option(min=1, help="Answer length limit (FastChat: 1024).")] = 1024,
    judge_max_tokens: Annotated[int, typer.Option(min=1, help="Judgment length limit (FastChat: 2048).")] = 2048,
    temperature: Annotated[float, typer.Option(min=0.0, help="Answer temperature (0: greedy, reproducible).")] = 0.0,
    seed: int = 0,
    litellm: Annotated[bool, typer.Option("--litellm", help="Answer through LiteLLM: --model is a LiteLLM model string.")] = False,
    params_config: Annotated[Optional[Path], typer.Option(help="coe.yaml whose local checkpoints give parameter counts (default: the bundled one).")] = None,
    name: Annotated[Optional[str], typer.Option(help="Run folder name (default: derived from the settings).")] = None,
    out: Out = paths.results_dir("evals"),
    quiet: Annotated[bool, typer.Option(help="No progress bars.")] = False,
) -> None:
    """MT-Bench: 80 two-turn questions, single-answer grading 1-10 by the judge (FastChat llm_judge prompts)."""
    _run("mt-bench", model=model, judge=judge, endpoint=endpoint, via_litellm=litellm, judge_api_base=judge_api_base,
         max_tokens=max_tokens, judge_max_tokens=judge_max_tokens, temperature=temperature, seed=seed, limit=limit,
         parallel=parallel, out=out, name=name, params_config=params_config, quiet=quiet)


@eval_app.command("arena-hard")
def arena_hard_cmd(
    judge: JudgeOpt,
    endpoint: Endpoint = "http://127.0.0.1:8000/v1",
    model: Model = "coe",
    judge_api_base: JudgeBase = None,
    limit: Limit = None,
    parallel: Parallel = 4,
    max_tokens: Annotated[int, typer.Option(min=1, help="Answer length limit.")] = 1024,
    judge_max_tokens: Annotated[int, typer.Option(min=1, help="Judgment length limit.")] = 2048,
    temperature: Annotated[float, typer.Option(min=0.0)] = 0.0,
    seed: int = 0,
    baseline: Annotated[Optional[str], typer.Option(help="Baseline answers shipped in the package (default: per category, as Arena-Hard v2.0).")] = None,
    bootstrap_rounds: Annotated[int, typer.Option(min=10, help="Bootstrap refits for the 95% interval.")] = 100,
    litellm: Annotated[bool, typer.Option("--litellm", help="Answer through LiteLLM: --model is a LiteLLM model string.")] = False,
    params_config: Annotated[Optional[Path], typer.Option(help="coe.yaml whose local checkpoints give parameter counts.")] = None,
    name: Annotated[Optional[str], typer.Option(help="Run folder name (default: derived from the settings).")] = None,
    out: Out = paths.results_dir("evals"),
    quiet: Annotated[bool, typer.Option(help="No progress bars.")] = False,
) -> None:
    """Arena-Hard v2.0: pairwise judging against the baseline's answers in both orders; Bradley-Terry win rate with a bootstrap 95% interval."""
    _run("arena-hard", model=model, judge=judge, endpoint=endpoint, via_litellm=litellm, judge_api_base=judge_api_base,
         max_tokens=max_tokens, judge_max_tokens=judge_max_tokens, temperature=temperature, seed=seed, limit=limit,
         parallel=parallel, out=out, name=name, baseline=baseline, bootstrap_rounds=bootstrap_rounds,
         params_config=params_config, quiet=quiet)


@eval_app.command("routing-analysis")
def routing_analysis_cmd(
    runs: Annotated[Optional[list[Path]], typer.Option("--run", help="A run folder of one expert (repeat per expert).")] = None,
    scores: Annotated[Optional[Path], typer.Option(exists=True, dir_okay=False, help="Per-prompt scores instead (JSONL: prompt_id, category, expert, score).")] = None,
    router_run: Annotated[Optional[Path], typer.Option(help="A run of the router (model coe): its per-prompt expert choices are scored from the experts' runs.")] = None,
    seed: int = 0,
    rounds: Annotated[int, typer.Option(min=10, help="Bootstrap rounds over prompts.")] = 1000,
    out: Annotated[Optional[Path], typer.Option(help="Write report.json and report.md here.")] = None,
) -> None:
    """Best single expert, oracle, random and the router's arrangement from per-prompt scores; the share of the oracle's headroom the router captures."""
    with fail_cleanly(), _eval_errors():
        from evals.routing_analysis import (
            AnalysisInputError,
            analyse,
            load_router_choices,
            load_scores,
            to_markdown,
        )

        try:
            matrix = load_scores(runs or [], scores)
            choices = load_router_choices(router_run) if router_run else None
            report = analyse(matrix, choices, seed=seed, rounds=rounds)
        except AnalysisInputError as err:
            err_console.print(f"[bold red]error:[/] {err}", highlight=False)
            raise typer.Exit(code=2) from None
        md = to_markdown(report)
        if out is not None:
            import json

            out.mkdir(parents=True, exist_ok=True)
            (out / "report.json").write_text(json.dumps(report, indent=1) + "\n")
            (out / "report.md").write_text(md)
        typer.echo(md)
