"""`coe upcycle`: dense checkpoints of one architecture -> one Mixtral-format MoE checkpoint."""

from __future__ import annotations

import json
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


def _calibration(sources: list[Path], calibration: list[Path] | None, domains: bool, limit: int) -> list[list[str]] | None:
    """Per-source texts: files given with --calibration, else each specialist's own domain data."""
    for source in sources:
        if not source.is_dir():
            raise UsageError(f"source checkpoint folder {source} does not exist")
    if calibration:
        if len(calibration) != len(sources):
            raise UsageError(f"--calibration needs one file per source ({len(sources)}), got {len(calibration)}")
        texts = []
        for file in calibration:
            if not file.is_file():
                raise UsageError(f"calibration file {file} does not exist")
            rows = [json.loads(line) for line in file.read_text().splitlines() if line.strip()]
            texts.append([r["text"] if isinstance(r, dict) else str(r) for r in rows][:limit])
        return texts
    if not domains:
        return None
    from coe.finetune.data import domain_examples

    texts = []
    for source in sources:
        card = source / "coe-specialist.json"
        if not card.is_file():
            raise UsageError(f"{source} has no coe-specialist.json (not built by `coe finetune`): "
                             "pass --calibration files, or --no-domain-data for a zero router")
        domain = json.loads(card.read_text())["domain"]
        # Domain text is all the router init needs; for math another seed gives unseen problems, for code
        # the pool is the stdlib's fixed set (overlap with training data does no harm here).
        texts.append([f"{ex.prompt}\n{ex.answer}" for ex in domain_examples(domain, limit, seed=7_777)])
    return texts


def upcycle(
    sources: Annotated[list[Path], typer.Argument(help="Dense checkpoint folders (same architecture); source i becomes expert i.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder to write the MoE checkpoint to.")],
    top_k: Annotated[int, typer.Option("--top-k", help="Experts per token.")] = 2,
    dtype: Annotated[str, typer.Option(help="bfloat16, float16 or float32.")] = "bfloat16",
    calibration: Annotated[Optional[list[Path]], typer.Option(help="Per-source JSONL of {'text'} for the router init (repeat once per source).")] = None,
    domain_data: Annotated[bool, typer.Option("--domain-data/--no-domain-data", help="Without --calibration: use each specialist's domain data (from its coe-specialist.json).")] = True,
    calibration_size: Annotated[int, typer.Option(help="Texts per source for the router init.")] = 32,
    train_steps: Annotated[int, typer.Option(help="Router-only training steps on the calibration texts (0: none).")] = 0,
    verify: Annotated[bool, typer.Option(help="Afterwards load the result in vLLM and transformers and compare prompt log-probabilities.")] = False,
) -> None:
    """Build a Mixtral-format MoE from dense checkpoints (sparse upcycling / BAM): one FFN expert per source."""
    with fail_cleanly():
        from coe.moe.upcycle import UpcycleError, upcycle as run_upcycle

        sources = [s.expanduser() for s in sources]
        try:
            texts = _calibration(sources, calibration, domain_data, calibration_size)
            train = [(t, i) for i, group in enumerate(texts) for t in group] if texts and train_steps else None
            result = run_upcycle(sources, out, top_k=top_k, dtype=dtype, calibration=texts, train_texts=train,
                                 train_steps=train_steps, progress=_say)
        except UpcycleError as err:
            raise UsageError(str(err)) from None
        console.print(f"[green]ok[/] {result.path}: {result.num_experts} experts, top-{result.top_k}, "
                      f"{result.total_params / 1e6:.1f}M params, {result.active_params / 1e6:.1f}M active per token")
        if verify:
            from coe.moe.probe import probe

            prompts = ["The capital of France is", "def add(a, b):\n    \"\"\"Return a plus b.\"\"\"\n",
                       "Question: A shop has 3 boxes of 4 pens. How many pens?\nAnswer:"]
            report = probe([str(result.path)], prompts, hf=[str(result.path)], max_tokens=8, dtype="float32")
            gap = max(abs(a - b) for va, ha in zip(report["vllm"][0]["prompt_logprobs"], report["hf"][0]["prompt_logprobs"])
                      for a, b in zip(va, ha))
            console.print(f"vLLM vs transformers prompt log-probabilities (float32): max |diff| = {gap:.5f}")
            if gap > 0.01:
                raise UsageError(f"verification failed: log-probabilities differ by {gap:.4f} > 0.01")
