"""`coe finetune`: a domain specialist (LoRA, merged) with its model card and held-out checks."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from coe.cli.errors import UsageError, fail_cleanly

console = Console()


def _say(message: str) -> None:
    """Progress lines, flushed: these runs take minutes and are often logged to a file."""
    console.print(f"  {message}")
    console.file.flush()


def finetune(
    domain: Annotated[str, typer.Argument(help="Domain of the specialist: code or math.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the merged checkpoint and its model card.")],
    base: Annotated[Optional[Path], typer.Option(help="Base checkpoint folder (default: the prepared SmolLM2-135M-Instruct).")] = None,
    steps: Annotated[int, typer.Option(help="Optimizer steps.")] = 300,
    batch_size: Annotated[int, typer.Option(help="Examples per step.")] = 8,
    lr: Annotated[float, typer.Option(help="Learning rate of the LoRA weights.")] = 3e-4,
    rank: Annotated[int, typer.Option(help="LoRA rank.")] = 16,
    max_tokens: Annotated[int, typer.Option(help="Longest training example in tokens.")] = 384,
    limit: Annotated[Optional[int], typer.Option(help="Use at most this many training examples.")] = None,
    eval_n: Annotated[int, typer.Option(help="Held-out prompts per domain for the base-vs-specialist check (0: skip).")] = 40,
    seed: int = 0,
) -> None:
    """Fine-tune a domain specialist from a dense chat model with LoRA, merge it, write a model card."""
    with fail_cleanly():
        from coe.finetune.build import FinetuneError, build_specialist
        from coe.finetune.train import TrainSettings

        if base is None:
            from coe.models.bundled import SMOLLM2
            from coe.models.prepare import prepare

            base = prepare(SMOLLM2).path
        settings = TrainSettings(steps=steps, batch_size=batch_size, lr=lr, rank=rank, alpha=2 * rank,
                                 max_tokens=max_tokens, seed=seed)
        try:
            result = build_specialist(base, domain, out, settings, limit=limit, eval_n=eval_n,
                                      progress=_say)
        except FinetuneError as err:
            raise UsageError(str(err)) from None
        console.print(f"[green]ok[/] {result['path']} ({result['seconds']:.0f} s)")
        for domain_name, row in (result["held_out"] or {}).items():
            console.print(f"  {domain_name}: {row['check']}: base {row['base']:.3f} -> specialist {row['specialist']:.3f}")
