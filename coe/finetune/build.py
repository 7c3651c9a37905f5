"""`coe finetune` end to end: data -> LoRA run -> merged checkpoint -> held-out checks -> model card."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Callable

from coe.finetune.card import loss_plot, write_card
from coe.finetune.data import DOMAINS, LICENCES, domain_examples
from coe.finetune.layout import ADAPTER_FOLDER
from coe.finetune.train import TrainSettings, lora_finetune, save_checkpoint, settings_dict

Progress = Callable[[str], None]
CHECKS = {"code": "HumanEval unit tests, pass@1", "math": "held-out word problems, exact answer"}


class FinetuneError(Exception):
    """Bad finetune inputs: the message says what to pass instead."""


def build_specialist(base: Path, domain: str, out: Path, settings: TrainSettings, limit: int | None = None,
                     eval_n: int = 40, name: str | None = None, progress: Progress | None = None) -> dict:
    say = progress or (lambda _m: None)
    base = Path(base).expanduser()
    if domain not in DOMAINS:
        raise FinetuneError(f"unknown domain {domain!r}; choose one of: {', '.join(DOMAINS)}")
    if not (base / "config.json").is_file():
        raise FinetuneError(f"{base}: not a checkpoint folder (no config.json)")
    if settings.steps < 1 or settings.batch_size < 1:
        raise FinetuneError("--steps and --batch-size must be at least 1")
    examples = domain_examples(domain, limit, settings.seed)
    say(f"{domain}: {len(examples)} training examples ({LICENCES[domain]})")
    started = time.monotonic()
    out = Path(out).expanduser()
    model, _tokenizer, log = lora_finetune(base, examples, settings, progress=say, adapter_out=out / ADAPTER_FOLDER)
    save_checkpoint(model, base, out)
    del model
    loss_plot(log.losses, out / "loss.png", f"{name or out.name}: LoRA on {domain}")
    info = {
        "name": name or out.name, "domain": domain, "base": str(base), "base_name": base.name,
        "licence": LICENCES[domain], "num_examples": len(examples), "settings": settings_dict(settings),
        "log": {"losses": log.losses, "seconds": log.seconds, "trainable_params": log.trainable_params,
                "examples_seen": log.examples_seen, "loss_first": log.losses[0],
                "loss_last_mean": sum(log.losses[-10:]) / len(log.losses[-10:])},
        "build_seconds": None,
    }
    scores = None
    if eval_n > 0:
        from coe.finetune.evaluate import evaluate

        say(f"held-out checks: {eval_n} prompts per domain, base and specialist, in vLLM")
        results = evaluate([base, out], list(DOMAINS), eval_n)
        scores = {}
        with (out / "held_out_answers.jsonl").open("w") as handle:
            for d in DOMAINS:
                scores[d] = {"check": CHECKS[d], "n": results[str(base)][d]["n"],
                             "base": results[str(base)][d]["score"], "specialist": results[str(out)][d]["score"]}
                for who, model_dir in (("base", base), ("specialist", out)):
                    for row in results[str(model_dir)][d]["answers"]:
                        handle.write(json.dumps({"domain": d, "model": who, **row}) + "\n")
    info["build_seconds"] = time.monotonic() - started
    write_card(out, info, scores)
    say(f"wrote {out}")
    return {"path": str(out), "held_out": scores, "seconds": info["build_seconds"]}
