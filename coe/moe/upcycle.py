"""Upcycle dense Llama-family checkpoints into one Mixtral-format MoE checkpoint.

Why Mixtral format: it is the one MoE layout that both vLLM (fused MoE kernels) and transformers load
without custom code, so the result serves through the same Expert deployment as any dense model.

The recipe follows sparse upcycling and BAM ("Just Like That: Simple and Efficient Parameter
Upcycling"): every source's FFN becomes one expert of each layer; attention, norms and embeddings are
averaged, because Mixtral has one attention block per layer (BAM's attention experts do not fit this
format). With fine-tunes of one base model (CoE's specialists: BAM's setting), averaging those shared
parts is a small perturbation. The router of each layer starts from each source's mean hidden state
(``coe.moe.router_init``) and may then be trained briefly with everything else frozen
(``coe.moe.router_train``).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import torch
from safetensors import safe_open
from safetensors.torch import save_file

Progress = Callable[[str], None]

WEIGHTS = "model.safetensors"
MANIFEST = "coe-upcycle.json"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "generation_config.json",
                   "chat_template.jinja")
# Llama config keys that must be equal across sources for their FFNs to be experts of one model.
SHAPE_KEYS = ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
              "num_key_value_heads", "head_dim", "vocab_size", "hidden_act", "rms_norm_eps", "tie_word_embeddings")
FFN_TO_EXPERT = {"gate_proj": "w1", "down_proj": "w2", "up_proj": "w3"}


class UpcycleError(Exception):
    """The sources cannot be upcycled together; the message says which source and why."""


@dataclass
class UpcycleResult:
    path: Path
    num_experts: int
    top_k: int
    total_params: int
    active_params: int
    router_init: str
    router_training: dict = field(default_factory=dict)


def _read_config(folder: Path) -> dict:
    config_file = folder / "config.json"
    if not config_file.is_file():
        raise UpcycleError(f"{folder}: no config.json (not a Hugging Face checkpoint folder)")
    config = json.loads(config_file.read_text())
    arch = (config.get("architectures") or [None])[0]
    if config.get("model_type") != "llama" or arch != "LlamaForCausalLM":
        raise UpcycleError(f"{folder}: architecture {arch!r} (model_type {config.get('model_type')!r}); "
                           "upcycling supports dense LlamaForCausalLM checkpoints")
    if config.get("attention_bias") or config.get("mlp_bias"):
        raise UpcycleError(f"{folder}: has attention/MLP biases, which Mixtral's layout cannot hold")
    if not list(folder.glob("*.safetensors")):
        raise UpcycleError(f"{folder}: no *.safetensors weights")
    return config


def check_sources(sources: Sequence[Path]) -> dict:
    """Return the first source's config after checking every source has the same shapes."""
    if len(sources) < 1:
        raise UpcycleError("give at least one source checkpoint")
    configs = [_read_config(Path(s)) for s in sources]
    first = configs[0]
    for src, cfg in zip(sources[1:], configs[1:]):
        diff = [k for k in SHAPE_KEYS if cfg.get(k) != first.get(k)]
        if diff:
            raise UpcycleError(f"{src}: differs from {sources[0]} in {', '.join(diff)}; "
                               "experts must come from checkpoints of one architecture and size")
    return first


def load_state(folder: Path) -> dict[str, torch.Tensor]:
    """All tensors of a checkpoint folder (one or several safetensors files)."""
    state: dict[str, torch.Tensor] = {}
    for file in sorted(Path(folder).glob("*.safetensors")):
        with safe_open(str(file), framework="pt") as handle:
            for key in handle.keys():
                state[key] = handle.get_tensor(key)
    return state


def mixtral_config(base: dict, num_experts: int, top_k: int, dtype: str) -> dict:
    """A MixtralConfig dict built by transformers itself, so every field has the name it expects."""
    from transformers import MixtralConfig

    rope = base.get("rope_parameters") or {"rope_type": "default", "rope_theta": base.get("rope_theta", 10000.0)}
    config = MixtralConfig(
        vocab_size=base["vocab_size"], hidden_size=base["hidden_size"], intermediate_size=base["intermediate_size"],
        num_hidden_layers=base["num_hidden_layers"], num_attention_heads=base["num_attention_heads"],
        num_key_value_heads=base["num_key_value_heads"], head_dim=base.get("head_dim"),
        hidden_act=base["hidden_act"], max_position_embeddings=base["max_position_embeddings"],
        rms_norm_eps=base["rms_norm_eps"], rope_parameters=rope, sliding_window=None,
        tie_word_embeddings=bool(base.get("tie_word_embeddings")), num_local_experts=num_experts,
        num_experts_per_tok=top_k, bos_token_id=base.get("bos_token_id"), eos_token_id=base.get("eos_token_id"),
        pad_token_id=base.get("pad_token_id"), router_aux_loss_coef=0.01, output_router_logits=False,
    )
    out = config.to_dict()
    out["architectures"] = ["MixtralForCausalLM"]
    out["dtype"] = dtype
    return out


def merge_states(states: Sequence[dict[str, torch.Tensor]], num_layers: int, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """Mixtral tensors: each source's FFN as expert i, every other tensor averaged over sources.

    Averaging is done in float32 and cast once, so N equal sources give back exactly their tensors.
    """
    merged: dict[str, torch.Tensor] = {}
    for key in states[0]:
        if ".mlp." in key:
            continue
        stacked = torch.stack([s[key].float() for s in states])
        merged[key] = stacked.mean(dim=0).to(dtype)
    for layer in range(num_layers):
        for expert, state in enumerate(states):
            for dense, name in FFN_TO_EXPERT.items():
                src = f"model.layers.{layer}.mlp.{dense}.weight"
                merged[f"model.layers.{layer}.block_sparse_moe.experts.{expert}.{name}.weight"] = state[src].to(dtype).contiguous()
    return merged


def count_params(config: dict) -> tuple[int, int]:
    """(total, active per token) parameters of a Mixtral config; embeddings counted once when tied."""
    h, i, v = config["hidden_size"], config["intermediate_size"], config["vocab_size"]
    layers, experts, k = config["num_hidden_layers"], config["num_local_experts"], config["num_experts_per_tok"]
    head_dim = config.get("head_dim") or h // config["num_attention_heads"]
    attn = h * head_dim * config["num_attention_heads"] * 2 + h * head_dim * config["num_key_value_heads"] * 2
    per_layer_shared = attn + 2 * h + experts * h  # attention, two norms, router
    expert = 3 * h * i
    embed = v * h * (1 if config.get("tie_word_embeddings") else 2)
    total = embed + h + layers * (per_layer_shared + experts * expert)
    active = embed + h + layers * (per_layer_shared + k * expert)
    return total, active


def _copy_tokenizer(source: Path, out: Path) -> None:
    for name in TOKENIZER_FILES:
        if (source / name).is_file():
            shutil.copy2(source / name, out / name)


def upcycle(
    sources: Sequence[Path],
    out: Path,
    top_k: int = 2,
    dtype: str = "bfloat16",
    calibration: Sequence[Sequence[str]] | None = None,
    train_texts: Sequence[tuple[str, int]] | None = None,
    train_steps: int = 0,
    seed: int = 0,
    progress: Progress | None = None,
) -> UpcycleResult:
    """Write a Mixtral checkpoint to ``out`` from dense ``sources`` (one expert per source).

    ``calibration[i]`` are texts of source i's domain, used for the mean-hidden-state router init;
    without them the router starts at zero (uniform: ties go to expert 0). ``train_texts`` are
    (text, source index) pairs for the brief router-only training run.
    """
    say = progress or (lambda _m: None)
    sources = [Path(s).expanduser() for s in sources]
    if not 1 <= top_k <= len(sources):
        raise UpcycleError(f"top-k must be between 1 and the number of sources ({len(sources)}), got {top_k}")
    if calibration is not None and len(calibration) != len(sources):
        raise UpcycleError(f"got calibration texts for {len(calibration)} sources, but {len(sources)} sources")
    if dtype not in ("bfloat16", "float32", "float16"):
        raise UpcycleError(f"dtype must be bfloat16, float16 or float32, not {dtype!r}")
    base = check_sources(sources)
    torch_dtype = getattr(torch, dtype)
    config = mixtral_config(base, len(sources), top_k, dtype)
    num_layers = config["num_hidden_layers"]

    say(f"reading {len(sources)} source checkpoints")
    states = [load_state(s) for s in sources]
    for src, state in zip(sources, states):
        missing = [f"model.layers.{l}.mlp.{p}.weight" for l in range(num_layers) for p in FFN_TO_EXPERT
                   if f"model.layers.{l}.mlp.{p}.weight" not in state]
        if missing:
            raise UpcycleError(f"{src}: missing FFN tensors, e.g. {missing[0]}")
    merged = merge_states(states, num_layers, torch_dtype)
    del states

    from coe.moe.router_init import mean_hidden_router

    router_init = "zeros (no calibration texts)"
    if calibration is not None:
        say("initialising routers from each source's mean hidden state")
        gates = mean_hidden_router(sources, calibration, progress=say)
        router_init = "mean hidden state per source (centred, unit norm)"
    else:
        gates = torch.zeros(num_layers, len(sources), config["hidden_size"])
    for layer in range(num_layers):
        merged[f"model.layers.{layer}.block_sparse_moe.gate.weight"] = gates[layer].to(torch_dtype).contiguous()

    out = Path(out).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    save_file(merged, str(out / WEIGHTS), metadata={"format": "pt"})
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    _copy_tokenizer(sources[0], out)

    training: dict = {}
    if train_texts and train_steps > 0:
        from coe.moe.router_train import train_router

        say(f"training the routers for {train_steps} steps, everything else frozen")
        training = train_router(out, train_texts, steps=train_steps, seed=seed, progress=say)

    total, active = count_params(config)
    result = UpcycleResult(out, len(sources), top_k, total, active, router_init, training)
    manifest = {
        "sources": [str(s) for s in sources], "num_experts": len(sources), "top_k": top_k, "dtype": dtype,
        "merge": "FFN of source i -> expert i; attention, norms, embeddings averaged (float32, then cast)",
        "router_init": router_init, "router_training": training,
        "total_params": total, "active_params": active,
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    say(f"wrote {out}: {len(sources)} experts, top-{top_k}, {total / 1e6:.1f}M params ({active / 1e6:.1f}M active)")
    return result
