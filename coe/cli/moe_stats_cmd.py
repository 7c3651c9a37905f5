"""`coe moe-stats`: which in-model experts each layer chose for some prompts (table + heatmap)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from coe.cli.errors import UsageError, fail_cleanly

console = Console()


def _prompts(prompt: list[str] | None, prompts_file: Path | None) -> list[str]:
    texts = list(prompt or [])
    if prompts_file is not None:
        if not prompts_file.is_file():
            raise UsageError(f"prompts file {prompts_file} does not exist")
        for line in prompts_file.read_text().splitlines():
            if line.strip():
                row = json.loads(line) if line.lstrip().startswith("{") else line
                texts.append(row.get("prompt") or row.get("text") if isinstance(row, dict) else row)
    if not texts or not all(isinstance(t, str) and t for t in texts):
        raise UsageError("give prompts with --prompt (repeatable) or --prompts FILE (lines of text or JSON with 'prompt')")
    return texts


def moe_stats(
    model: Annotated[Path, typer.Argument(help="MoE checkpoint folder (Mixtral, Qwen2/3-MoE, OLMoE ...).")],
    prompt: Annotated[Optional[list[str]], typer.Option("--prompt", "-p", help="A prompt (repeatable).")] = None,
    prompts: Annotated[Optional[Path], typer.Option("--prompts", help="File of prompts: one per line, or JSONL with 'prompt'.")] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for routing.csv, routing.json, routing.png.")] = Path("moe-stats"),
    chat: Annotated[bool, typer.Option(help="Wrap each prompt in the model's chat template.")] = False,
) -> None:
    """Count each layer's top-k expert choices over the prompts' tokens; write a table and a heatmap."""
    with fail_cleanly():
        from coe.moe.stats import NotAnMoE, routing_stats, write_stats

        texts = _prompts(prompt, prompts)
        try:
            stats = routing_stats(model.expanduser(), texts, chat=chat)
        except NotAnMoE as err:
            raise UsageError(str(err)) from None
        paths = write_stats(stats, out)
        table = Table(title=f"top-{stats.top_k} expert share per layer, {stats.tokens} tokens, {len(texts)} prompts")
        table.add_column("layer", justify="right")
        for e in range(stats.num_experts):
            table.add_column(f"expert {e}", justify="right")
        for layer, row in enumerate(stats.fractions()):
            table.add_row(str(layer), *[f"{v:.2f}" for v in row])
        console.print(table)
        console.print(f"wrote {paths['csv']}, {paths['json']}, {paths['png']}")
