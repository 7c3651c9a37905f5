"""Routing statistics and MoE settings across families."""

from __future__ import annotations

import json

import pytest

from coe.moe.settings import moe_settings
from coe.moe.stats import NotAnMoE, routing_stats, write_stats
from coe.moe.upcycle import upcycle


def test_settings_of_each_family():
    assert moe_settings({"num_local_experts": 8, "num_experts_per_tok": 2}).describe() == "8 experts, top-2"
    qwen2 = moe_settings({"num_experts": 60, "num_experts_per_tok": 4, "shared_expert_intermediate_size": 5632})
    assert (qwen2.num_experts, qwen2.top_k, qwen2.shared_experts) == (60, 4, 1)
    deepseek = moe_settings({"n_routed_experts": 64, "num_experts_per_tok": 6, "n_shared_experts": 2})
    assert deepseek.describe() == "64 experts, top-6 +2 shared"
    assert moe_settings({"num_experts": 64, "num_experts_per_tok": 8}).shared_experts == 0  # OLMoE / Qwen3-MoE
    assert moe_settings({"hidden_size": 576}) is None


def test_stats_count_topk_choices_per_layer(tiny_sources, tmp_path):
    out = upcycle(tiny_sources, tmp_path / "moe", top_k=2, dtype="float32").path
    stats = routing_stats(out, ["hello world", "def f(x): return x"])
    assert len(stats.counts) == 2 and all(len(row) == 3 for row in stats.counts)
    assert all(sum(row) == 2 * stats.tokens for row in stats.counts)  # each token picks top_k experts
    assert sum(p["tokens"] for p in stats.per_prompt) == stats.tokens
    paths = write_stats(stats, tmp_path / "stats")
    assert paths["png"].stat().st_size > 1000
    assert paths["csv"].read_text().splitlines()[0] == "layer,expert_0,expert_1,expert_2"
    assert json.loads(paths["json"].read_text())["top_k"] == 2


def test_stats_refuse_dense_models(tiny_sources):
    with pytest.raises(NotAnMoE, match="dense"):
        routing_stats(tiny_sources[0], ["hi"])
