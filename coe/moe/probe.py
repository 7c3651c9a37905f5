"""Run checkpoints in vLLM and transformers and report what the conversion checks compare.

Why a module: the upcycling checks (vLLM against transformers log-probabilities, MoE against its
dense source greedy output) are run by the tests, by `coe upcycle --verify` and by the benchmark,
always in a fresh process (vLLM engines are created in-process, eager, one after another).

From a shell: ``python -m coe.moe.probe SPEC.json`` where SPEC has ``models`` (list of folders),
``prompts``, ``max_tokens``, ``dtype``, ``hf`` (also score with transformers); prints one JSON line.
"""

from __future__ import annotations

import gc
import json
import os
import sys
import time
from pathlib import Path
from typing import Sequence


def vllm_env() -> dict[str, str]:
    """Environment for an in-process, eager vLLM-CPU engine."""
    env = dict(os.environ)
    env.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    env.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    env.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("TRANSFORMERS_OFFLINE", "1")
    return env


def run_vllm(model: str, prompts: Sequence[str], max_tokens: int, dtype: str, ignore_eos: bool = False) -> dict:
    """Greedy token ids, prompt log-probabilities and decode throughput of one checkpoint."""
    from vllm import LLM, SamplingParams

    started = time.monotonic()
    llm = LLM(model=model, dtype=dtype, enforce_eager=True, max_model_len=1024, seed=0,
              max_num_seqs=8, enable_prefix_caching=False)
    boot_s = time.monotonic() - started
    scoring = llm.generate(list(prompts), SamplingParams(max_tokens=1, prompt_logprobs=0, temperature=0.0),
                           use_tqdm=False)
    prompt_logprobs = []
    for result in scoring:
        row = []
        for token, entry in zip(result.prompt_token_ids[1:], result.prompt_logprobs[1:]):
            row.append(entry[token].logprob)
        prompt_logprobs.append(row)
    params = SamplingParams(max_tokens=max_tokens, temperature=0.0, ignore_eos=ignore_eos)
    started = time.monotonic()
    outputs = llm.generate(list(prompts), params, use_tqdm=False)
    gen_s = time.monotonic() - started
    greedy = [list(o.outputs[0].token_ids) for o in outputs]
    texts = [o.outputs[0].text for o in outputs]
    del llm
    gc.collect()
    return {"model": model, "boot_s": boot_s, "prompt_logprobs": prompt_logprobs, "greedy": greedy,
            "texts": texts, "gen_s": gen_s, "gen_tokens": sum(len(g) for g in greedy)}


def run_hf(model: str, prompts: Sequence[str], dtype: str) -> list[list[float]]:
    """Prompt log-probabilities from transformers (the reference implementation)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model)
    net = AutoModelForCausalLM.from_pretrained(model, dtype=getattr(torch, dtype))
    net.eval()
    rows = []
    with torch.no_grad():
        for prompt in prompts:
            ids = tokenizer(prompt, return_tensors="pt")["input_ids"]
            logits = net(input_ids=ids).logits.float()
            logprobs = torch.log_softmax(logits[0, :-1], dim=-1)
            rows.append(logprobs.gather(1, ids[0, 1:, None])[:, 0].tolist())
    return rows


def run_backend(weights: str, architecture: str, messages: list[dict], max_tokens: int) -> dict:
    """Answer one chat through CoE's own path for a local expert: config -> resolve -> VLLMBackend."""
    import asyncio
    import uuid

    from coe.config import ExpertConfig
    from coe.experts.vllm_backend import VLLMBackend
    from coe.models.resolve import resolve_checkpoint
    from coe.protocol import GenerationRequest, SamplingSettings

    expert = ExpertConfig(id="moe", weights=weights, architecture=architecture, prompt_format="chat",
                          engine={"max_model_len": 1024, "max_num_seqs": 4})
    folder = resolve_checkpoint(expert)
    backend = VLLMBackend(folder, expert.engine, expert.prompt_format, expert.id)

    async def answer() -> dict:
        await backend.start()
        try:
            request = GenerationRequest(uuid.uuid4().hex, tuple(messages),
                                        SamplingSettings(temperature=0.0, top_p=1.0, max_tokens=max_tokens))
            result = await backend.chat(request)
            await backend.check_health()
            return {"text": result.text, "finish_reason": result.finish_reason}
        finally:
            await backend.shutdown()

    return asyncio.run(answer())


def main(argv: list[str]) -> int:
    spec = json.loads(Path(argv[0]).read_text())
    dtype = spec.get("dtype", "bfloat16")
    report = {"vllm": [], "hf": [], "backend": None}
    if spec.get("backend"):
        b = spec["backend"]
        report["backend"] = run_backend(b["weights"], b["architecture"], b["messages"], b.get("max_tokens", 16))
    for model in spec["models"]:
        report["vllm"].append(run_vllm(model, spec["prompts"], spec.get("max_tokens", 32), dtype,
                                       bool(spec.get("ignore_eos"))))
    for model in spec.get("hf", []):
        report["hf"].append({"model": model, "prompt_logprobs": run_hf(model, spec["prompts"], dtype)})
    print("PROBE-JSON " + json.dumps(report), flush=True)
    return 0


def probe(models: Sequence[str], prompts: Sequence[str], hf: Sequence[str] = (), max_tokens: int = 32,
          dtype: str = "bfloat16", timeout: float = 900, backend: dict | None = None,
          ignore_eos: bool = False) -> dict:
    """Run :func:`main` in a fresh Python process and return its report."""
    import subprocess
    import tempfile

    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump({"models": [str(m) for m in models], "prompts": list(prompts), "hf": [str(m) for m in hf],
                   "max_tokens": max_tokens, "dtype": dtype, "backend": backend,
                   "ignore_eos": ignore_eos}, handle)
    proc = subprocess.run([sys.executable, "-m", "coe.moe.probe", handle.name], env=vllm_env(),
                          capture_output=True, text=True, timeout=timeout)
    os.unlink(handle.name)
    for line in proc.stdout.splitlines():
        if line.startswith("PROBE-JSON "):
            return json.loads(line[len("PROBE-JSON "):])
    raise RuntimeError(f"probe failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
