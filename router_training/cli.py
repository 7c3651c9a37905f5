"""`coe train-router`, a plugin command: `coe` (serving) never imports `router_training`.

pyproject.toml registers `train_router` under the entry-point group ``coe.commands``, and
`coe.cli.main` adds every command of that group to its app. This module is loaded for every `coe`
invocation (`coe --help` too), so at import time it takes only typer and CoE's own light modules
(paths, CLI errors); the training code (scikit-learn, torch, httpx) is imported inside the command.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from coe import paths
from coe.cli.errors import UsageError, fail_cleanly

ConfigOption = Annotated[
    Optional[Path], typer.Option("--config", "-c", help="coe.yaml to use (default: the bundled one).")
]


def parse_k(text: str) -> int | None:
    """`--k 5` or `--k all` (every scored prompt)."""
    if text.strip().lower() == "all":
        return None
    if not text.strip().isdigit() or int(text) < 1:
        raise UsageError(f"--k takes a positive number or 'all', not {text!r}")
    return int(text)


def train_router(
    out: Annotated[Path, typer.Option(help="Folder for router artifacts (a versioned subfolder is written).")] = paths.routers_dir(),
    config: ConfigOption = None,
    data: Annotated[Optional[Path], typer.Option(exists=True, dir_okay=False, help="Labelled prompts (JSONL: prompt or messages, category). Default: built from benchmark packages.")] = None,
    k: Annotated[str, typer.Option("--k", help="Prompts per category each expert answers for K-shot selection, or 'all'.")] = "5",
    name: Annotated[Optional[str], typer.Option(help="Folder name under --out (default: router-<timestamp>); a named router has no clock in it.")] = None,
    categories: Annotated[Optional[str], typer.Option(help="Comma-separated categories to keep.")] = None,
    experts: Annotated[Optional[str], typer.Option(help="Comma-separated candidate experts (default: all in the config).")] = None,
    general_expert: Annotated[Optional[str], typer.Option(help="Expert for low-confidence prompts (default: the best single expert on the K-shot evidence).")] = None,
    scores: Annotated[Optional[Path], typer.Option(exists=True, dir_okay=False, help="Precomputed K-shot scores (JSONL: prompt, category, expert, score; or pairwise preferences: prompt, category, model_a, model_b, winner).")] = None,
    endpoint: Annotated[Optional[str], typer.Option(help="Running CoE endpoint whose experts answer the K-shot prompts.")] = None,
    scorer: Annotated[str, typer.Option(help="Scorer for answers: llm-judge, exact-match, unit-tests.")] = "llm-judge",
    judge: Annotated[Optional[str], typer.Option(help="LiteLLM model string of the judge (llm-judge scorer).")] = None,
    judge_api_base: Annotated[Optional[str], typer.Option(help="api_base for the judge.")] = None,
    embedder: Annotated[str, typer.Option(help="Stage-1 embedder: static-tuned (default: the static table fine-tuned on the train prompts, "
                                 "served as static, about 0.5 ms a decision), minilm or static.")] = "static-tuned",
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
        from router_training.train_router_cli import run_train_router

        split = lambda text: [t.strip() for t in text.split(",") if t.strip()] if text else None  # noqa: E731
        folder = run_train_router(
            config_path=config, data=data, out=out, k=parse_k(k), name=name, categories=split(categories), experts=split(experts),
            general_expert=general_expert, scores=scores, endpoint=endpoint, scorer=scorer, judge=judge,
            judge_api_base=judge_api_base, embedder=embedder, classifier=classifier, seed=seed,
        )
        typer.echo(str(folder))
