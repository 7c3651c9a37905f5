"""`coe serve`: prepare the local experts' weights, then run the Serve application."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from coe.config import load_config
from coe.models.resolve import resolve_local, without_missing_optional

console = Console(stderr=True)


def refuse_open_door(config) -> None:
    """Keyless serving is for loopback: another address needs keys or an explicit opt-out."""
    from coe.api.auth import configured_hashes, is_loopback
    from coe.cli.errors import UsageError

    server = config.server
    if is_loopback(server.host) or server.allow_unauthenticated or server.api_keys_in_store:
        return
    if not configured_hashes(server.api_keys, server.api_keys_file):
        raise UsageError(
            f"refusing to serve {server.host} without API keys: anyone who can reach it could use every expert. "
            "Create one with `coe keys new` and put its hash in server.api_keys (or COE_API_KEYS), "
            "or pass --allow-unauthenticated"
        )


def run_serve(config_path: Path | None, host: str | None, port: int | None, redis_url: str | None = None,
              allow_unauthenticated: bool = False, no_access_log: bool = False) -> None:
    config = load_config(config_path)
    if redis_url is not None:
        config.state.redis_url = redis_url
    if host is not None:
        config.server.host = host
    if port is not None:
        config.server.port = port
    config.server.allow_unauthenticated |= allow_unauthenticated
    config.server.access_log &= not no_access_log
    refuse_open_door(config)
    from coe.serve.direct_ingress import check_port_free

    check_port_free(config.server.host, config.server.port)  # before minutes of booting, not after
    config, skipped = without_missing_optional(config)
    for reason in skipped.values():
        console.print(f"[yellow]skipping optional[/] {reason}")
    checkpoints = {}
    for expert in config.experts:
        if expert.remote is None:
            with console.status(f"preparing weights of {expert.id}"):
                checkpoints[expert.id] = resolve_local(expert, config.model_cache_dir)
            kind = f"LoRA adapter on {expert.adapter.base}" if expert.adapter is not None else "checkpoint"
            console.print(f"[green]ready[/] {expert.id} ({kind}): {checkpoints[expert.id]}")
    local = len(config.dedicated_engine_experts()) + sum(p.slots for p in config.pools)
    console.print(f"starting Ray Serve with {local} local engine(s); on a 2-core CPU this takes 1-2 minutes")

    from coe.serve.runner import serve_forever

    def announce(message: str) -> None:
        if message.startswith("http"):
            console.print(f"[bold green]CoE is serving at {message}/v1[/]  (Ctrl-C to stop)")
        else:
            console.print(message)

    serve_forever(config, checkpoints, announce=announce)
