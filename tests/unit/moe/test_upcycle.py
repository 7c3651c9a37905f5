"""Upcycling on tiny real Llama checkpoints: tensor layout, averaging, config, errors, router init."""

from __future__ import annotations

import json

import pytest
import torch

from coe.moe.router_init import gates_from_means
from coe.moe.upcycle import UpcycleError, count_params, load_state, upcycle
from tests.unit.moe.conftest import tiny_llama


def test_each_source_ffn_becomes_one_expert_and_the_rest_is_averaged(tiny_sources, tmp_path):
    out = upcycle(tiny_sources, tmp_path / "moe", top_k=2, dtype="float32").path
    moe = load_state(out)
    srcs = [load_state(s) for s in tiny_sources]
    for layer in range(2):
        for e, src in enumerate(srcs):
            for dense, name in (("gate_proj", "w1"), ("down_proj", "w2"), ("up_proj", "w3")):
                assert torch.equal(moe[f"model.layers.{layer}.block_sparse_moe.experts.{e}.{name}.weight"],
                                   src[f"model.layers.{layer}.mlp.{dense}.weight"])
        q = f"model.layers.{layer}.self_attn.q_proj.weight"
        assert torch.allclose(moe[q], torch.stack([s[q] for s in srcs]).mean(0))
    assert not any(".mlp." in k for k in moe)
    config = json.loads((out / "config.json").read_text())
    assert config["architectures"] == ["MixtralForCausalLM"] and config["model_type"] == "mixtral"
    assert config["num_local_experts"] == 3 and config["num_experts_per_tok"] == 2
    assert (out / "tokenizer.json").is_file()


def test_param_count_matches_the_written_tensors(tiny_sources, tmp_path):
    result = upcycle(tiny_sources, tmp_path / "moe", top_k=1, dtype="float32")
    written = sum(t.numel() for t in load_state(result.path).values())
    assert result.total_params == written
    per_expert = 3 * 32 * 48 * 2  # three projections, two layers
    assert result.total_params - result.active_params == 2 * per_expert


def test_transformers_loads_it_and_equal_experts_at_top1_equal_the_source(tiny_sources, tmp_path):
    from transformers import AutoModelForCausalLM

    source = tiny_sources[0]
    out = upcycle([source, source], tmp_path / "same", top_k=1, dtype="float32").path
    ids = torch.tensor([[1, 400, 5000, 77, 12000, 9]])
    dense = AutoModelForCausalLM.from_pretrained(str(source), dtype=torch.float32).eval()
    moe = AutoModelForCausalLM.from_pretrained(str(out), dtype=torch.float32).eval()
    with torch.no_grad():
        assert torch.allclose(dense(ids).logits, moe(ids).logits, atol=1e-5)


def test_mismatched_sources_are_refused_with_the_reason(tiny_sources, tmp_path):
    wider = tiny_llama(tmp_path / "wider", seed=9, intermediate=64)
    with pytest.raises(UpcycleError, match="intermediate_size"):
        upcycle([tiny_sources[0], wider], tmp_path / "x")
    with pytest.raises(UpcycleError, match="top-k"):
        upcycle(tiny_sources[:2], tmp_path / "x", top_k=3)
    with pytest.raises(UpcycleError, match="no config.json"):
        upcycle([tmp_path], tmp_path / "x", top_k=1)


def test_non_llama_sources_are_refused(tiny_sources, tmp_path):
    moe = upcycle(tiny_sources[:2], tmp_path / "moe", dtype="float32").path
    with pytest.raises(UpcycleError, match="LlamaForCausalLM"):
        upcycle([moe, moe], tmp_path / "again")


def test_router_rows_are_centred_unit_directions():
    means = torch.tensor([[[1.0, 0.0, 2.0]], [[0.0, 1.0, 2.0]]])  # 2 experts, 1 layer, hidden 3
    gates = gates_from_means(means)
    assert gates.shape == (1, 2, 3)
    assert torch.allclose(gates[0].norm(dim=-1), torch.ones(2))
    assert torch.allclose(gates[0].sum(dim=0), torch.zeros(3), atol=1e-6)
    same = gates_from_means(torch.ones(2, 1, 3))
    assert torch.equal(same, torch.zeros(1, 2, 3))  # identical sources: no preference, not NaN


def test_router_init_from_domain_texts_prefers_each_sources_own_domain(tiny_sources, tmp_path):
    from coe.moe.stats import routing_stats

    code = ["def f(x):\n    return x + 1\n" * 3, "import os\nprint(os.getcwd())\n" * 3]
    prose = ["The weather today is sunny and warm, and the birds sing.", "Once upon a time there lived a king."]
    out = upcycle(tiny_sources[:2], tmp_path / "moe", top_k=1, dtype="float32", calibration=[code, prose]).path
    on_code = routing_stats(out, code)
    on_prose = routing_stats(out, prose)
    share_code = sum(row[0] for row in on_code.fractions()) / 2
    share_prose = sum(row[0] for row in on_prose.fractions()) / 2
    assert share_code > share_prose  # expert 0 (the "code" source) gets more of the code tokens


def test_router_training_changes_only_the_routers(tiny_sources, tmp_path):
    texts = [("def f(x):\n    return x", 0), ("Once upon a time", 1)]
    out = tmp_path / "moe"
    upcycle(tiny_sources[:2], out, top_k=1, dtype="float32")
    before = load_state(out)
    result = upcycle(tiny_sources[:2], out, top_k=1, dtype="float32", train_texts=texts, train_steps=3)
    after = load_state(out)
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(k.endswith("block_sparse_moe.gate.weight") for k in changed)
    assert result.router_training["steps"] == 3


def test_count_params_untied_counts_lm_head():
    config = {"hidden_size": 4, "intermediate_size": 8, "vocab_size": 10, "num_hidden_layers": 1,
              "num_local_experts": 2, "num_experts_per_tok": 1, "num_attention_heads": 2, "num_key_value_heads": 1}
    tied, _ = count_params({**config, "tie_word_embeddings": True})
    untied, _ = count_params({**config, "tie_word_embeddings": False})
    assert untied - tied == 40


def test_checkpoint_stats_read_active_params_from_the_headers(tiny_sources, tmp_path):
    """`coe models list` and the eval's mean active parameters count an MoE by what one token runs."""
    from coe.models.inspect import checkpoint_stats

    result = upcycle(tiny_sources, tmp_path / "moe", top_k=2, dtype="float32")
    stats = checkpoint_stats(result.path)
    assert (stats.num_params, stats.active_params) == (result.total_params, result.active_params)
    assert stats.routing == "3 experts, top-2"
    dense = checkpoint_stats(tiny_sources[0])
    assert dense.active_params == dense.num_params and dense.routing is None
