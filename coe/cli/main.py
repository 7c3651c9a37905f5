"""`coe`: the command-line entry point. Each command is a thin call into the packages.

Heavy imports (Ray, vLLM, torch) happen inside the commands, so `coe --help` is instant. Expected
failures (a bad config, a missing model package) print one clear line and exit non-zero.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from coe.cli.errors import fail_cleanly
from coe.cli.models_cmd import models_app

app = typer.Typer(help="CoE: one OpenAI-compatible endpoint over a composition of expert LLMs.", no_args_is_help=True)
app.add_typer(models_app, name="models")

ConfigOption = Annotated[
    Optional[Path], typer.Option("--config", "-c", help="coe.yaml to use (default: the bundled one).")
]


@app.command()
def serve(
    config: ConfigOption = None,
    host: Annotated[Optional[str], typer.Option(help="Address to listen on (default: from config).")] = None,
    port: Annotated[Optional[int], typer.Option(help="Port to listen on (default: from config).")] = None,
) -> None:
    """Serve the experts of a coe.yaml behind one OpenAI-compatible endpoint (local Ray)."""
    with fail_cleanly():
        from coe.cli.serve_cmd import run_serve

        run_serve(config, host, port)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
