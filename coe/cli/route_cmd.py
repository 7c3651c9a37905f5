"""`coe route "prompt"`: show the routing decision and why, without generating anything."""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console
from rich.table import Table

from coe.config import load_config
from coe.routing.artifact import RouterArtifactError

console = Console()


def router_folder(router: Path | None, config_path: Path | None) -> tuple[Path, set[str] | None]:
    """The router to use and, when it comes from a config, the experts that config would serve here
    (optional experts not built yet are left out, as `coe serve` leaves them out)."""
    if router is not None:
        return router, None
    from coe.models.resolve import without_missing_optional

    config = load_config(config_path)
    if config.router is None:
        raise RouterArtifactError("no router given: pass --router DIR or a coe.yaml with router.artifact")
    if config.router.built_name and not (config.router.path / "router.json").is_file():
        raise RouterArtifactError(f"router '{config.router.artifact}' is not built yet: `make router` builds it")
    served, _ = without_missing_optional(config)
    return config.router.path, {e.id for e in served.experts}


def run_route(prompt: str, model: str, router: Path | None, config_path: Path | None, as_json: bool = False) -> None:
    from coe.routing.knobs import parse_knob
    from coe.routing.router import CategoryRouter

    routing = CategoryRouter.load(*router_folder(router, config_path))
    decision = routing.decide([{"role": "user", "content": prompt}], parse_knob(model))
    artifact = routing.artifact
    if as_json:
        print(json.dumps({"router": artifact.version, **decision.to_metadata()}))
        return
    title = f"router {artifact.version} ({artifact.embedder.get('name')} + {artifact.classifier})"
    categories = Table(title=title)
    categories.add_column("category")
    categories.add_column("probability", justify="right")
    for category, prob in decision.top:
        categories.add_row(category, f"{prob:.3f}")
    console.print(categories)
    if decision.predicted:
        experts = Table(title=f"predicted scores ({decision.mode}, cost priced at {decision.lam:.3g})")
        experts.add_column("expert")
        experts.add_column("predicted", justify="right")
        experts.add_column("relative cost", justify="right")
        for expert, predicted in decision.predicted:
            experts.add_row(expert, f"{predicted:.4f}", f"{artifact.relative_costs.get(expert, 1.0):.3f}")
        console.print(experts)
    fallback = f" (fallback: confidence below {decision.threshold:.2f})" if decision.fallback else ""
    console.print(f"expert: [bold]{decision.expert}[/]{fallback}")
    console.print(f"why: {decision.reason}")


def read_route_inputs(path: Path) -> list[list[dict]]:
    """One conversation per line: {"prompt": "..."} or {"messages": [...]}; errors name file and line."""
    from coe.errors import InvalidRequest

    conversations = []
    with path.open(encoding="utf-8") as handle:
        for lineno, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            try:
                item = json.loads(raw)
                if not isinstance(item, dict):
                    raise ValueError("expected a JSON object")
                if isinstance(item.get("prompt"), str):
                    messages = [{"role": "user", "content": item["prompt"]}]
                elif isinstance(item.get("messages"), list) and all(isinstance(m, dict) for m in item["messages"]):
                    messages = item["messages"]
                else:
                    raise ValueError("needs 'prompt' (a string) or 'messages' (a list of {role, content})")
            except ValueError as err:
                raise InvalidRequest(f"{path}:{lineno}: {err}") from None
            conversations.append(messages)
    return conversations


def run_route_file(path: Path, output: Path | None, model: str, router: Path | None, config_path: Path | None,
                   batch: int = 256) -> None:
    """Decisions for every line of `path`, embedded in batches (thousands of prompts a minute)."""
    import sys

    from coe.routing.knobs import parse_knob
    from coe.routing.router import CategoryRouter
    from coe.routing.text import conversation_text

    knob = parse_knob(model)
    conversations = read_route_inputs(path)
    routing = CategoryRouter.load(*router_folder(router, config_path))
    sink = output.open("w", encoding="utf-8") if output else sys.stdout
    try:
        for start in range(0, len(conversations), batch):
            chunk = conversations[start : start + batch]
            vectors = routing.embedder.encode([conversation_text(m) for m in chunk])
            for decision in routing.decide_batch(vectors, knob):
                sink.write(json.dumps({"router": routing.artifact.version, **decision.to_metadata()}) + "\n")
            if output:
                console.print(f"routed {min(start + batch, len(conversations))}/{len(conversations)}", highlight=False)
    finally:
        if output:
            sink.close()
