"""The model card of a specialist: what data, how long, the loss curve, held-out scores vs the base."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence


def loss_plot(losses: Sequence[float], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.2))
    ax.plot(range(1, len(losses) + 1), losses, linewidth=0.8, alpha=0.5, label="per step")
    window = max(1, len(losses) // 20)
    if len(losses) >= window > 1:
        smooth = [sum(losses[i - window:i]) / window for i in range(window, len(losses) + 1)]
        ax.plot(range(window, len(losses) + 1), smooth, linewidth=1.6, label=f"mean of {window}")
    ax.set_xlabel("step")
    ax.set_ylabel("training loss (answer tokens)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_card(out: Path, info: dict, scores: dict | None) -> Path:
    """README.md (human) and coe-specialist.json (machine) beside the weights."""
    (out / "coe-specialist.json").write_text(json.dumps({**info, "held_out": scores}, indent=2) + "\n")
    lines = [
        f"# {info['name']}: a {info['domain']} specialist of {info['base_name']}",
        "",
        f"LoRA fine-tune (rank {info['settings']['rank']}, alpha {info['settings']['alpha']}, all attention and MLP "
        f"projections), merged into the base weights and saved as bf16 safetensors; built by `coe finetune`.",
        "",
        "## Data",
        f"- {info['licence']}",
        f"- {info['num_examples']} examples; {info['log']['examples_seen']} seen in {info['settings']['steps']} steps "
        f"of batch {info['settings']['batch_size']} (max {info['settings']['max_tokens']} tokens; loss on answer tokens only)",
        "",
        "## Training",
        f"- {info['log']['trainable_params']:,} trainable parameters, lr {info['settings']['lr']}, seed {info['settings']['seed']}",
        f"- {info['log']['seconds']:.0f} s on this machine; loss {info['log']['loss_first']:.3f} (first step) -> "
        f"{info['log']['loss_last_mean']:.3f} (mean of the last 10 steps)",
        "",
        "![loss curve](loss.png)",
        "",
    ]
    if scores:
        lines += ["## Held-out checks (greedy, vLLM)", "", "| check | base | this specialist |", "|---|---:|---:|"]
        for domain, row in scores.items():
            lines.append(f"| {row['check']} ({row['n']}) | {row['base']:.3f} | {row['specialist']:.3f} |")
        lines += ["", "Answers with their scores: `held_out_answers.jsonl`."]
    else:
        lines += ["Held-out checks were not run (`--eval-n 0`)."]
    path = out / "README.md"
    path.write_text("\n".join(lines) + "\n")
    return path
