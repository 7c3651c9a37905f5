"""Tiny real Llama checkpoints (random weights, a few layers) written with transformers itself.

Why tiny: upcycling is tensor surgery whose correctness does not depend on size, so unit tests run it
on models that load in milliseconds; the real SmolLM2 path is tested in tests/integration/test_moe_upcycle.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from coe import paths

BASE_TOKENIZER = paths.model_cache_dir() / "smollm2-135m-instruct"


def tiny_llama(folder: Path, seed: int, tie: bool = True, intermediate: int = 48) -> Path:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=49152, hidden_size=32, intermediate_size=intermediate, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, head_dim=8, max_position_embeddings=256,
                         tie_word_embeddings=tie, bos_token_id=1, eos_token_id=2, pad_token_id=2)
    model = LlamaForCausalLM(config)
    model.save_pretrained(folder)
    tokenizer = PreTrainedTokenizerFast.from_pretrained(str(BASE_TOKENIZER))
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_sources(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    if not (BASE_TOKENIZER / "tokenizer.json").is_file():
        pytest.fail("SmolLM2 is not prepared (the tiny models borrow its tokenizer): run `coe models prepare` (make test does)")
    root = tmp_path_factory.mktemp("tiny-llamas")
    return [tiny_llama(root / f"src{i}", seed=i) for i in range(3)]
