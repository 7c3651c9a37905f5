"""LoRA fine-tuning of a dense chat checkpoint on one domain, merged into a plain HF folder.

Why LoRA and merge: on 2 CPU cores a full fine-tune of 135M parameters is slow and forgets more;
LoRA trains ~1-2% of the weights, and merging it back gives an ordinary dense checkpoint that vLLM
serves, the tier manager swaps and `coe upcycle` turns into one expert of an MoE.
The loss counts only the answer tokens (the prompt is context, not something to learn to produce).
"""

from __future__ import annotations

import json
import math
import random
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import torch
from safetensors.torch import save_file

from coe.finetune.data import Example

Progress = Callable[[str], None]
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "generation_config.json",
                   "chat_template.jinja")
TARGET_MODULES = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


@dataclass
class TrainSettings:
    steps: int = 300
    batch_size: int = 8
    micro_batch: int = 2  # examples per forward pass; gradients accumulate to batch_size (bounds memory)
    lr: float = 3e-4
    rank: int = 16
    alpha: int = 32
    max_tokens: int = 384
    warmup: int = 10
    seed: int = 0
    threads: int | None = None


@dataclass
class TrainLog:
    losses: list[float] = field(default_factory=list)
    seconds: float = 0.0
    trainable_params: int = 0
    examples_seen: int = 0


def encode(tokenizer, example: Example, max_tokens: int) -> tuple[list[int], list[int]]:
    """Token ids of the chat-formatted example and labels with the prompt part masked (-100)."""
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": example.prompt}], tokenize=False,
                                           add_generation_prompt=True)
    full = tokenizer.apply_chat_template([{"role": "user", "content": example.prompt},
                                          {"role": "assistant", "content": example.answer}], tokenize=False)
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    full_ids = tokenizer(full, add_special_tokens=False)["input_ids"][:max_tokens]
    labels = [-100] * min(len(prompt_ids), len(full_ids)) + full_ids[len(prompt_ids):]
    return full_ids, labels[: len(full_ids)]


def _batch(rows: Sequence[tuple[list[int], list[int]]], pad_id: int) -> dict[str, torch.Tensor]:
    width = max(len(ids) for ids, _ in rows)
    ids = torch.full((len(rows), width), pad_id)
    labels = torch.full((len(rows), width), -100)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, (row_ids, row_labels) in enumerate(rows):
        ids[i, : len(row_ids)] = torch.tensor(row_ids)
        labels[i, : len(row_labels)] = torch.tensor(row_labels)
        mask[i, : len(row_ids)] = 1
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def lora_finetune(base: Path, examples: Sequence[Example], settings: TrainSettings,
                  progress: Progress | None = None, adapter_out: Path | None = None):
    """Train a LoRA adapter on ``examples``; returns (merged model, tokenizer, log).

    With ``adapter_out`` the unmerged adapter is written there first (PEFT layout: adapter_config.json +
    adapter_model.safetensors), so one run gives both forms: the adapter for a base engine's LoRA slots,
    the merged checkpoint for swap pools and upcycling."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if settings.threads:
        torch.set_num_threads(settings.threads)
    torch.manual_seed(settings.seed)
    rng = random.Random(settings.seed)
    tokenizer = AutoTokenizer.from_pretrained(str(base))
    model = AutoModelForCausalLM.from_pretrained(str(base), dtype=torch.float32)
    lora = LoraConfig(r=settings.rank, lora_alpha=settings.alpha, lora_dropout=0.0,
                      target_modules=TARGET_MODULES, task_type="CAUSAL_LM")
    model = get_peft_model(model, lora)
    model.train()
    log = TrainLog(trainable_params=sum(p.numel() for p in model.parameters() if p.requires_grad))
    encoded = [encode(tokenizer, ex, settings.max_tokens) for ex in examples]
    encoded = [row for row in encoded if any(label != -100 for label in row[1])]
    if not encoded:
        raise ValueError("no training example has answer tokens within max_tokens")
    optimiser = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=settings.lr)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimiser, lambda s: min(1.0, (s + 1) / max(1, settings.warmup))
                                                 * 0.5 * (1 + math.cos(math.pi * min(1.0, s / max(1, settings.steps)))))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    order: list[int] = []
    started = time.monotonic()
    for step in range(settings.steps):
        if len(order) < settings.batch_size:
            more = list(range(len(encoded)))
            rng.shuffle(more)
            order.extend(more)
        rows = [encoded[order.pop()] for _ in range(min(settings.batch_size, len(encoded)))]
        optimiser.zero_grad()
        # Mean over answer tokens of the whole batch, accumulated over micro-batches.
        answer_tokens = sum(sum(1 for label in labels[1:] if label != -100) for _, labels in rows)
        loss = torch.zeros(())
        for start in range(0, len(rows), max(1, settings.micro_batch)):
            part = _batch(rows[start:start + max(1, settings.micro_batch)], pad)
            logits = model(input_ids=part["input_ids"], attention_mask=part["attention_mask"]).logits
            part_loss = torch.nn.functional.cross_entropy(
                logits[:, :-1].reshape(-1, logits.shape[-1]).float(), part["labels"][:, 1:].reshape(-1),
                ignore_index=-100, reduction="sum") / max(1, answer_tokens)
            part_loss.backward()
            loss = loss + part_loss.detach()
        torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 1.0)
        optimiser.step()
        schedule.step()
        log.losses.append(loss.item())
        log.examples_seen += len(rows)
        if progress and (step % 10 == 0 or step == settings.steps - 1):
            elapsed = time.monotonic() - started
            progress(f"step {step + 1}/{settings.steps}: loss {log.losses[-1]:.4f} ({elapsed:.0f} s)")
    log.seconds = time.monotonic() - started
    if adapter_out is not None:
        save_adapter(model, base, Path(adapter_out))
    merged = model.merge_and_unload()
    merged.eval()
    return merged, tokenizer, log


def save_checkpoint(model, base: Path, out: Path, dtype: torch.dtype = torch.bfloat16) -> Path:
    """Write config.json + model.safetensors + the base's tokenizer files: a plain HF folder.

    Tied embeddings share one tensor, which safetensors refuses to store twice: lm_head is dropped
    when the config ties it (loaders re-tie it), as in the base checkpoint.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    config = json.loads((Path(base) / "config.json").read_text())
    state = {k: v.detach().to(dtype).contiguous() for k, v in model.state_dict().items()}
    if config.get("tie_word_embeddings"):
        state.pop("lm_head.weight", None)
    save_file(state, str(out / "model.safetensors"), metadata={"format": "pt"})
    config["dtype"] = str(dtype).replace("torch.", "")
    config.pop("_model_name_or_path", None)
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    for name in TOKENIZER_FILES:
        if (Path(base) / name).is_file():
            shutil.copy2(Path(base) / name, out / name)
    return out


def save_adapter(peft_model, base: Path, out: Path) -> Path:
    """The adapter alone, in PEFT's layout, naming its base by folder name (not this machine's path)."""
    out.mkdir(parents=True, exist_ok=True)
    peft_model.save_pretrained(str(out), safe_serialization=True)
    config_file = out / "adapter_config.json"
    config = json.loads(config_file.read_text())
    config["base_model_name_or_path"] = Path(base).name
    config_file.write_text(json.dumps(config, indent=2) + "\n")
    return out


def settings_dict(settings: TrainSettings) -> dict:
    return asdict(settings)
