"""`coe route "prompt"`: show the routing decision and why, without generating anything."""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console
from rich.table import Table

from coe.config import load_config
from coe.routing.artifact import RouterArtifactError

console = Console()


def router_folder(router: Path | None, config_path: Path | None) -> Path:
    if router is not None:
        return router
    config = load_config(config_path)
    if config.router is None:
        raise RouterArtifactError("no router given: pass --router DIR or a coe.yaml with router.artifact")
    return config.router.artifact


def run_route(prompt: str, model: str, router: Path | None, config_path: Path | None, as_json: bool = False) -> None:
    from coe.routing.knobs import parse_knob
    from coe.routing.router import CategoryRouter

    folder = router_folder(router, config_path)
    routing = CategoryRouter.load(folder)
    decision = routing.decide([{"role": "user", "content": prompt}], parse_knob(model))
    artifact = routing.artifact
    if as_json:
        print(json.dumps({"router": artifact.version, **decision.to_metadata()}))
        return
    table = Table(title=f"router {artifact.version} ({artifact.embedder} + {artifact.classifier})")
    table.add_column("category")
    table.add_column("probability", justify="right")
    table.add_column(f"{decision.mode} map")
    mapping = artifact.maps.get(decision.mode) or artifact.maps["quality"]
    for category, prob in routing.probabilities([{"role": "user", "content": prompt}]):
        table.add_row(category, f"{prob:.3f}", mapping[category])
    console.print(table)
    fallback = f" (fallback: confidence below {decision.threshold:.2f})" if decision.fallback else ""
    console.print(f"expert: [bold]{decision.expert}[/]{fallback}")
    console.print(f"why: {decision.reason}")
