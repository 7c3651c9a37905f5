from __future__ import annotations

from pathlib import Path

import pytest

from coe.config import ConfigError, ExpertConfig, PromptFormat, load_config, parse_config


def test_default_config_ships_both_bundled_experts_and_the_built_ones_as_optional() -> None:
    config = load_config()
    ids = [e.id for e in config.experts]
    assert ids == ["smollm2-135m-instruct", "gemma3-270m", "smollm2-code", "smollm2-math", "smollm2-moe-code-math"]
    assert config.experts[1].prompt_format is PromptFormat.completion
    assert config.experts[0].bundled_name == "smollm2-135m-instruct"
    assert [e.id for e in config.experts if e.optional] == ids[2:]
    # the specialists are LoRA adapters on SmolLM2's own engine, the MoE a checkpoint `make experts` builds
    assert [e.id for e in config.adapters_of("smollm2-135m-instruct")] == ["smollm2-code", "smollm2-math"]
    assert all(config.expert(i).adapter.built_name == i for i in ("smollm2-code", "smollm2-math"))
    assert config.expert("smollm2-moe-code-math").built_name == "smollm2-moe-code-math"
    assert config.pools == []


def test_missing_optional_experts_are_left_out_with_the_reason(tmp_path: Path) -> None:
    from coe.models.resolve import CheckpointError, without_missing_optional

    built = tmp_path / "smollm2-math"
    built.mkdir()
    (built / "config.json").write_text('{"architectures": ["LlamaForCausalLM"]}')
    config = parse_config({
        "model_cache_dir": str(tmp_path),
        "experts": [{"id": "base", "weights": str(tmp_path)},
                    {"id": "smollm2-math", "weights": "built:smollm2-math", "optional": True},
                    {"id": "smollm2-code", "weights": "built:smollm2-code", "optional": True},
                    {"id": "moe", "weights": "built:moe", "optional": True}],
        "pools": [{"id": "p", "experts": ["base", "smollm2-math", "smollm2-code"]}, {"id": "q", "experts": ["moe"]}],
    })
    kept, skipped = without_missing_optional(config)
    assert [e.id for e in kept.experts] == ["base", "smollm2-math"]
    assert [p.experts for p in kept.pools] == [["base", "smollm2-math"]]
    assert set(skipped) == {"smollm2-code", "moe"} and "make experts" in skipped["moe"]
    # a required expert that is missing is still an error, not a silent skip
    required = parse_config({"model_cache_dir": str(tmp_path), "experts": [{"id": "x", "weights": "built:nope"}]})
    assert without_missing_optional(required)[1] == {}
    with pytest.raises(CheckpointError, match="not built yet"):
        from coe.models.resolve import resolve_checkpoint

        resolve_checkpoint(required.experts[0], tmp_path)


def _error(data: object) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config(data, "test.yaml")
    return str(info.value)


def test_mistakes_are_reported_by_field() -> None:
    message = _error({"experts": [{"id": "a", "weights": "/x", "engine": {"max_model_len": 1, "dtyp": "x"}}]})
    assert "experts.0.engine.max_model_len" in message
    assert "experts.0.engine.dtyp" in message  # unknown keys are errors, not silently ignored


def test_expert_needs_exactly_one_source() -> None:
    assert "exactly one" in _error({"experts": [{"id": "a"}]})
    both = {"id": "a", "weights": "/x", "remote": {"model": "openai/x"}}
    assert "exactly one" in _error({"experts": [both]})


def test_duplicate_and_reserved_ids() -> None:
    assert "appears twice" in _error({"experts": [{"id": "a", "weights": "/x"}, {"id": "a", "weights": "/y"}]})
    assert "reserved" in _error({"experts": [{"id": "coe", "weights": "/x"}]})


def test_bad_yaml_and_missing_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("experts: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "absent.yaml")
    assert "mapping" in _error(["a list"])


def test_remote_key_comes_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    config = parse_config({"experts": [{"id": "r", "remote": {"model": "openai/x", "api_key_env": "MY_KEY"}}]})
    monkeypatch.setenv("MY_KEY", "secret")
    assert config.experts[0].remote.api_key() == "secret"


def test_a_built_router_that_is_not_built_yet_is_skipped_with_what_to_run(tmp_path: Path, monkeypatch) -> None:
    from coe.models.resolve import without_missing_optional

    monkeypatch.setenv("COE_ROUTERS_DIR", str(tmp_path / "routers"))
    config = parse_config({"experts": [{"id": "base", "weights": str(tmp_path)}], "router": {"artifact": "built:default"}})
    assert config.router.path == tmp_path / "routers" / "default"
    served, skipped = without_missing_optional(config)
    assert served.router is None and "make router" in skipped["router"]
    (tmp_path / "routers" / "default").mkdir(parents=True)
    (tmp_path / "routers" / "default" / "router.json").write_text("{}")
    served, skipped = without_missing_optional(config)
    assert served.router is not None and not skipped


def test_a_replica_queue_bound_defaults_to_10_s_but_not_for_an_expert_that_scales_to_zero() -> None:
    """A restarting replica must not hold requests for a minute; a scaled-to-zero expert's first
    request has to wait for its boot, so it gets no bound unless one is set."""
    assert ExpertConfig(id="a", weights="/w").replica_queue_s() == 10.0
    cold = {"min_replicas": 0, "max_replicas": 1}
    assert ExpertConfig(id="a", weights="/w", scaling=cold).replica_queue_s() is None
    assert ExpertConfig(id="a", weights="/w", scaling=cold, timeouts={"queue_s": 90}).replica_queue_s() == 90


def test_adapter_experts_name_a_local_base_outside_pools() -> None:
    base = {"id": "base", "weights": "/x"}
    adapter = {"id": "lora", "adapter": {"base": "base", "path": "/a"}}
    config = parse_config({"experts": [base, adapter]})
    assert [e.id for e in config.adapters_of("base")] == ["lora"] and not config.expert("lora").has_engine
    assert "not a local expert" in _error({"experts": [base, {**adapter, "adapter": {"base": "nope", "path": "/a"}}]})
    remote = {"id": "r", "remote": {"model": "openai/x"}}
    assert "not a local expert" in _error({"experts": [remote, {**adapter, "adapter": {"base": "r", "path": "/a"}}]})
    assert "exactly one" in _error({"experts": [base, {**adapter, "weights": "/y"}]})
    pooled = {"experts": [base, adapter, {"id": "other", "weights": "/y"}], "pools": [{"id": "p", "experts": ["base", "other"]}]}
    assert "base of LoRA adapters" in _error(pooled)
    assert "LoRA adapter" in _error({**pooled, "pools": [{"id": "p", "experts": ["other", "lora"]}]})
    small_cache = {**base, "engine": {"lora_slots": 4, "lora_cache": 2}}
    assert "lora_cache" in _error({"experts": [small_cache, adapter]})


def test_missing_optional_adapters_are_left_out_and_follow_their_base(tmp_path: Path) -> None:
    from coe.models.resolve import CheckpointError, resolve_adapter, without_missing_optional

    built = tmp_path / "code" / "adapter"
    built.mkdir(parents=True)
    (built / "adapter_config.json").write_text('{"r": 8}')
    (built / "adapter_model.safetensors").write_bytes(b"")
    config = parse_config({
        "model_cache_dir": str(tmp_path),
        "experts": [{"id": "base", "weights": str(tmp_path)},
                    {"id": "code", "adapter": {"base": "base", "path": "built:code"}, "optional": True},
                    {"id": "math", "adapter": {"base": "base", "path": "built:math"}, "optional": True}],
    })
    kept, skipped = without_missing_optional(config)
    assert [e.id for e in kept.experts] == ["base", "code"] and "make experts" in skipped["math"]
    assert resolve_adapter(config.expert("code"), tmp_path) == built
    not_peft = parse_config({"experts": [{"id": "b", "weights": "/x"},
                                         {"id": "a", "adapter": {"base": "b", "path": str(tmp_path)}}]})
    with pytest.raises(CheckpointError, match="no adapter_config.json"):
        resolve_adapter(not_peft.expert("a"))
    (tmp_path / "adapter_config.json").write_text('{"r": 8}')
    with pytest.raises(CheckpointError, match="only as safetensors"):
        resolve_adapter(not_peft.expert("a"))
    orphan = parse_config({"experts": [{"id": "b", "weights": "built:absent", "optional": True},
                                       {"id": "keep", "weights": str(tmp_path)},
                                       {"id": "a", "adapter": {"base": "b", "path": str(built)}, "optional": True}],
                           "model_cache_dir": str(tmp_path)})
    assert set(without_missing_optional(orphan)[1]) == {"b", "a"}
