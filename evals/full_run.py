"""The full benchmark runs behind `make eval-mtbench` / `make eval-arena-hard`.

    python -m evals.full_run mt-bench|arena-hard [--router DIR] [--limit N] [--max-tokens N] ...

Boots the default arrangement (the bundled coe.yaml, plus ``router.artifact`` when ``--router`` is
given) as a real `coe serve` in a subprocess, evaluates every expert alone and, with a router, the
routed arrangement (``model=coe``), then writes the leaderboard and the offline routing analysis next
to the results. The judge defaults to SmolLM2-135M-Instruct on the same service (the only judge that
runs offline here; a weak one, and every table names it); pass ``--judge``/``--judge-api-base`` for
another. Every run is resumable: rerunning the target continues where an interrupted one stopped.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Sequence

import yaml

from evals.run import DEFAULT_OUT, RunSettings

DEFAULT_JUDGE = "openai/smollm2-135m-instruct"


def service_config(port: int, router: Path | None) -> dict:
    from importlib.resources import files

    config = yaml.safe_load(files("coe").joinpath("default_coe.yaml").read_text())
    config.setdefault("server", {})["port"] = port
    if router is not None:
        config["router"] = {"artifact": str(router.resolve())}
    return config


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m evals.full_run", description=__doc__.split("\n")[0])
    parser.add_argument("benchmark", choices=("mt-bench", "arena-hard"))
    parser.add_argument("--router", type=Path, help="router artifact: also evaluate model=coe")
    parser.add_argument("--models", help="comma-separated models to evaluate (default: every expert, plus coe with --router)")
    parser.add_argument("--judge", default=DEFAULT_JUDGE)
    parser.add_argument("--judge-api-base", help="default: the booted service when --judge is the default")
    parser.add_argument("--limit", type=int)
    parser.add_argument("--max-tokens", type=int, default=1024)
    parser.add_argument("--judge-max-tokens", type=int, default=2048)
    parser.add_argument("--parallel", type=int, default=4)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    if args.router is not None and not (args.router / "router.json").is_file():
        parser.error(f"--router {args.router}: not a router artifact (no router.json); train one with `coe train-router`")
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

    from coe.serve.subprocess_server import CoEServer, free_port
    from evals import arena_hard, leaderboard, mt_bench
    from evals.routing_analysis import AnalysisInputError, analyse, load_router_choices, load_scores, to_markdown

    service_dir = args.out / "_service"
    service_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config_path = service_dir / "coe.yaml"
    config = service_config(port, args.router)
    config_path.write_text(yaml.safe_dump(config))
    experts = [e["id"] for e in config["experts"]]
    models = args.models.split(",") if args.models else experts + (["coe"] if args.router else [])
    server = CoEServer(config_path, port, service_dir / "serve.log")
    folders: dict[str, Path] = {}
    try:
        server.start()  # inside try: Ctrl-C during the boot still stops the service
        base = f"{server.url}/v1"
        judge_base = args.judge_api_base or (base if args.judge == DEFAULT_JUDGE else None)
        for model in models:
            print(f">> {args.benchmark}: {model}, judge {args.judge}", file=sys.stderr, flush=True)
            settings = RunSettings(
                benchmark=args.benchmark, model=model, judge=args.judge, endpoint=base, judge_api_base=judge_base,
                max_tokens=args.max_tokens, judge_max_tokens=args.judge_max_tokens, limit=args.limit,
                parallel=args.parallel, out=args.out, params_config=config_path,
                # the port changes per boot: name the endpoint by what it serves, so a rerun resumes
                endpoint_id="evals.full_run:" + ("router " + args.router.name if args.router else "default arrangement"),
            )
            folders[model] = (mt_bench if args.benchmark == "mt-bench" else arena_hard).run(settings)
            print(leaderboard.run_summary_markdown(folders[model]), flush=True)
    finally:
        server.stop()

    md, page = leaderboard.write(args.out)
    print(md)
    print(page)
    singles = [folders[m] for m in models if m in experts and m in folders]
    analysis_dir = args.out / f"{args.benchmark}-routing-analysis"
    analysis_dir.mkdir(parents=True, exist_ok=True)
    try:
        report = analyse(load_scores(singles, None), load_router_choices(folders["coe"]) if "coe" in folders else None)
        (analysis_dir / "report.json").write_text(json.dumps(report, indent=1) + "\n")
        text = to_markdown(report)
    except AnalysisInputError as err:
        text = f"Routing analysis not possible: {err}\n"
    (analysis_dir / "report.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
