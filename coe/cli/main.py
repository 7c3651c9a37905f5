"""`coe`: the command-line entry point. Each command is a thin call into the packages.

Heavy imports (Ray, vLLM, torch) happen inside the commands, so `coe --help` is instant. Expected
failures (a bad config, a missing model package) print one clear line and exit non-zero.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

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
    allow_unauthenticated: Annotated[bool, typer.Option("--allow-unauthenticated", help="Serve a non-loopback address without API keys.")] = False,
    no_access_log: Annotated[bool, typer.Option("--no-access-log", help="No log line per request (server.access_log: false).")] = False,
) -> None:
    """Serve the experts of a coe.yaml behind one OpenAI-compatible endpoint (local Ray)."""
    with fail_cleanly():
        from coe.cli.serve_cmd import run_serve

        run_serve(config, host, port, redis_url, allow_unauthenticated, no_access_log)


keys_app = typer.Typer(help="API keys: CoE stores only their sha256.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")


@keys_app.command("new")
def keys_new() -> None:
    """Print a new API key (give it to the client) and its hash (put it in server.api_keys)."""
    from coe.api.auth import new_key

    key, digest = new_key()
    typer.echo(f"key:  {key}\nhash: {digest}")


@keys_app.command("hash")
def keys_hash(key: Annotated[str, typer.Argument(help="An existing key, to configure it by hash.")]) -> None:
    """The hash to configure for an existing key."""
    from coe.api.auth import hash_key

    typer.echo(hash_key(key))


@app.command()
def route(
    prompt: Annotated[Optional[str], typer.Argument(help="The prompt to route (or --input FILE).")] = None,
    model: Annotated[str, typer.Option(help="Routing knob: coe, coe:quality|balanced|cheap, coe:budget-B, coe:<threshold>.")] = "coe",
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


def _add_plugin_commands(app: typer.Typer, group: str = "coe.commands") -> None:
    """Commands other packages of this distribution register under the entry-point group ``coe.commands``
    (pyproject.toml): `train-router` lives in router_training, which serving code never imports. A
    plugin module imports only typer/rich at load time, so `coe --help` stays instant. Without the
    entry point (an install that lacks it) the command is simply absent; a plugin that fails to load
    is named on stderr and skipped, so the other commands still work."""
    from importlib.metadata import distributions

    # Every distribution, not entry_points(group=...): that keeps only the first `coe` on sys.path, and
    # run from the repository root (python -m, pytest) that can be a stale ./coe.egg-info without the group.
    seen: set[str] = set()
    for ep in (ep for dist in distributions() for ep in dist.entry_points if ep.group == group):
        if ep.name in seen:  # the same command found twice (editable install + ./coe.egg-info)
            continue
        seen.add(ep.name)
        try:
            command = ep.load()
        except Exception as err:  # noqa: BLE001 - one broken plugin must not take down every command
            typer.echo(f"warning: command {ep.name!r} ({ep.value}) not loaded: {err}", err=True)
            continue
        app.command(ep.name)(command)


_add_plugin_commands(app)


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
