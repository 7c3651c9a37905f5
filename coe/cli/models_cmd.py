"""`coe models list|prepare`: what experts a config names, and getting their weights ready."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from coe.cli.errors import fail_cleanly

models_app = typer.Typer(help="List and prepare the experts' weights.", no_args_is_help=True)
console = Console()

ConfigOption = Annotated[Optional[Path], typer.Option("--config", "-c", help="coe.yaml (default: bundled).")]
CacheOption = Annotated[
    Optional[Path], typer.Option("--cache-dir", help="Prepared-model folder (default: COE_CACHE_DIR or ~/.cache/coe/models).")
]


def _human(n: int | None, unit: str = "") -> str:
    if n is None:
        return "-"
    for suffix in ("", "K", "M", "G", "T"):
        if abs(n) < 1000 or suffix == "T":
            return f"{n:.0f}{suffix}{unit}" if suffix == "" else f"{n:.1f}{suffix}{unit}"
        n /= 1000
    return str(n)


def _with_routing(architecture: str, routing: str | None) -> str:
    """MoE experts show their in-model routing next to the architecture: '(8 experts, top-2 +1 shared)'."""
    return f"{architecture} ({routing})" if routing else architecture


@models_app.command("list")
def list_models(config: ConfigOption = None, cache_dir: CacheOption = None) -> None:
    """Show each expert: kind, parameters, size on disk, tier and where it lives."""
    with fail_cleanly():
        from coe.config import load_config
        from coe.models.inspect import checkpoint_stats, expert_folder

        cfg = load_config(config)
        cache = cache_dir or cfg.model_cache_dir
        table = Table(title="CoE experts")
        for column in ("expert", "kind", "architecture", "params", "size", "tier", "location"):
            table.add_column(column)
        for expert in cfg.experts:
            if expert.remote is not None:
                where = expert.remote.api_base or "provider default"
                table.add_row(expert.id, "remote (LiteLLM)", expert.remote.model, "-", "-", "remote", where)
                continue
            if expert.adapter is not None:
                table.add_row(expert.id, f"LoRA adapter of {expert.adapter.base}", *_adapter_row(expert, cache))
                continue
            stats = checkpoint_stats(expert_folder(expert, cache))
            kind = "base (completion)" if expert.prompt_format.value == "completion" else "chat"
            tier = "cold (on disk)" if stats.path else "not prepared"
            pool = cfg.pool_of(expert.id)
            if pool is not None and stats.path:
                from coe.serve.pool_builder import image_root
                from coe.swap.tiers import Tier, tier_on_this_machine

                found = tier_on_this_machine(expert.id, image_root(cfg), pool.warm_dir)
                tier = {Tier.warm: "warm", Tier.cold: "cold"}.get(found, "cold, no image") + f" \\[{pool.id}]"
            todo = "make experts" if expert.built_name else "coe models prepare"
            location = str(stats.path) if stats.path else f"run: {todo} ({expert.weights})"
            if expert.optional and not stats.path:
                tier = "not built (optional: skipped)"
            table.add_row(
                expert.id, kind, _with_routing(stats.architecture or expert.architecture or "-", stats.routing),
                _params(stats.num_params, stats.active_params), _human(stats.size_bytes, "B"), tier, location,
            )
        console.print(table)
        console.print("tiers: hot = in a running engine (see GET /v1/models while `coe serve` runs), warm = engine-layout "
                      "image in host RAM (tmpfs), cold = on disk, \\[pool] = swapped in place; no image = built on first swap; remote = hosted API")


def _adapter_row(expert, cache) -> tuple[str, str, str, str, str]:
    """architecture, params, size, tier, location of an adapter expert, from its folder on disk."""
    from coe.models.resolve import CheckpointError, resolve_adapter

    try:
        folder = resolve_adapter(expert, cache)
    except CheckpointError:
        skipped = "not built (optional: skipped)" if expert.optional else "missing"
        return "-", "-", "-", skipped, f"run: make experts ({expert.adapter.path})"
    size = sum(f.stat().st_size for f in folder.iterdir() if f.is_file())
    return "LoRA", "-", _human(size, "B"), "cold (on disk; warm once its base's engine loads it)", str(folder)


def _params(total: int | None, active: int | None) -> str:
    if total and active and active != total:
        return f"{_human(total)} ({_human(active)} active)"
    return _human(total)


@models_app.command("prepare")
def prepare_models(config: ConfigOption = None, cache_dir: CacheOption = None) -> None:
    """Convert bundled GGUF models to vLLM-loadable safetensors, once (checksummed; reruns skip)."""
    with fail_cleanly():
        from coe.config import load_config
        from coe.models.resolve import CheckpointError, resolve_local

        cfg = load_config(config)
        cache = cache_dir or cfg.model_cache_dir
        for expert in cfg.experts:
            if expert.remote is not None:
                continue
            try:
                path = resolve_local(expert, cache, progress=lambda m: console.print(f"  {m}"))
            except CheckpointError as err:
                if not expert.optional:
                    raise
                # Optional experts are built by other steps (`make experts`): say so, keep going.
                console.print(f"[yellow]skipped[/] optional expert {expert.id}: {err}", highlight=False, soft_wrap=True)
                continue
            console.print(f"[green]ok[/] {expert.id}: {path}", highlight=False, soft_wrap=True)
