"""`coe leaderboard`: every finished eval run as a markdown table, plus a static HTML page with plots."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from coe import paths
from coe.cli.errors import err_console


def leaderboard(
    results: Annotated[Path, typer.Option(help="Results root written by `coe eval` (<results>/<benchmark>/<run>/).")] = paths.results_dir("evals"),
) -> None:
    """Print the table of all runs; write leaderboard.md, leaderboard.html and its plots next to the results."""
    if not results.is_dir():
        err_console.print(f"[bold red]error:[/] {results} does not exist: run `coe eval mt-bench` or `coe eval arena-hard` first",
                          highlight=False)
        raise typer.Exit(code=2)
    from evals.leaderboard import write

    md, page = write(results)
    typer.echo(md)
    typer.echo(str(page))
