"""One expert's config: where its model comes from (local weights, remote, LoRA adapter) and its engine options."""

from __future__ import annotations

import os
from typing import Annotated

from pydantic import Field, model_validator

from coe.config.base import BUILT_PREFIX, BUNDLED_PREFIX, PromptFormat, StrictModel, _named
from coe.config.policies import (
    DEFAULT_REPLICA_QUEUE_S,
    BreakerPolicy,
    RetryPolicy,
    ScalingOptions,
    StreamTimeouts,
)

class EngineOptions(StrictModel):
    """Serving options for one local vLLM engine. Defaults suit a 2-core CPU machine."""

    max_model_len: int = Field(2048, ge=64, description="Context window the engine reserves (tokens).")
    dtype: str = Field("bfloat16", description="Weight/activation dtype passed to vLLM.")
    enforce_eager: bool = Field(
        True, description="Skip torch.compile: boots in seconds instead of minutes on CPU."
    )
    max_num_seqs: int = Field(16, ge=1, description="Most sequences the engine batches at once.")
    default_max_tokens: int = Field(
        512, ge=1, description="Completion budget when a request gives no max_tokens (small CPU models ramble)."
    )
    kv_cache_gib: float = Field(1.0, gt=0, description="CPU KV-cache size (VLLM_CPU_KVCACHE_SPACE).")
    cpu_bind: str | None = Field(
        None,
        description="Cores for the engine's OpenMP threads (VLLM_CPU_OMP_THREADS_BIND), e.g. '0' or '0-3'. "
        "Give each engine its own cores: vLLM's 'auto' pins every engine to core 0.",
    )
    num_cpus: float = Field(0.5, gt=0, description="Ray CPUs reserved for the expert's replica.")
    nice: int | None = Field(
        0, ge=-20, le=19,
        description="Process priority of the engine's processes. Ray starts its workers at nice 15, below every "
        "other process; 0 is what `vllm serve` from a shell gets. Lowering needs CAP_SYS_NICE (root or `ulimit -e`); "
        "where it is refused the engine keeps Ray's and a warning says so. null: keep Ray's.",
    )
    seed: int = Field(0, description="Engine seed, so sampled outputs are reproducible.")
    lora_slots: int = Field(
        2, ge=1, description="With adapter experts on this engine: adapters batched at once (vLLM max_loras, the hot tier)."
    )
    lora_cache: int = Field(
        8, ge=1, description="Adapters the engine keeps loaded in host RAM (vLLM max_cpu_loras, the warm tier); "
        "at least lora_slots.",
    )


class RemoteExpert(StrictModel):
    """A hosted model reached through LiteLLM instead of local weights."""

    model: str = Field(..., min_length=1, description="LiteLLM model string, e.g. 'openai/gpt-4o-mini'.")
    api_base: str | None = Field(None, description="Base URL of an OpenAI-compatible server.")
    api_key_env: str | None = Field(
        None, description="Environment variable holding the API key (keys never live in coe.yaml)."
    )
    timeout_s: float = Field(
        30.0, gt=0, description="How long a remote expert may stay silent (connect, or between bytes) before the "
        "request fails; with no hidden retries this bounds a silent upstream to about this long."
    )

    def api_key(self) -> str | None:
        return os.environ.get(self.api_key_env) if self.api_key_env else None


class AdapterSource(StrictModel):
    """A LoRA adapter served on another expert's engine: batched with its base, no swap, no engine of its own."""

    base: str = Field(..., min_length=1, description="Id of the local expert whose engine serves this adapter.")
    path: str = Field(
        ..., min_length=1, description="PEFT adapter folder (adapter_config.json), or 'built:<name>' for the adapter "
        "`coe finetune` wrote beside the merged checkpoint <name> in the model cache.",
    )

    @property
    def built_name(self) -> str | None:
        return _named(self.path, BUILT_PREFIX)


class ExpertConfig(StrictModel):
    """One expert: local weights served by vLLM, or a remote model through LiteLLM."""

    id: Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]*$")]
    description: str = ""
    weights: str | None = Field(
        None,
        description="Local checkpoint folder, 'bundled:<name>' for a model shipped in a package, or "
        "'built:<name>' for one `coe finetune`/`coe upcycle` wrote into the model cache.",
    )
    remote: RemoteExpert | None = None
    adapter: AdapterSource | None = Field(
        None, description="A LoRA adapter of a local base expert, served on the base's engine (vLLM multi-LoRA)."
    )
    architecture: str | None = Field(
        None, description="HF architecture (e.g. LlamaForCausalLM); checked against the checkpoint."
    )
    prompt_format: PromptFormat = PromptFormat.chat
    engine: EngineOptions = Field(default_factory=EngineOptions)
    scaling: ScalingOptions | None = Field(
        None, description="Autoscaling of the expert's replicas (Ray Serve); without it, one fixed replica."
    )
    optional: bool = Field(
        False, description="Serve it when its weights exist, else skip it with a warning (experts built by `make experts`)."
    )
    fallbacks: list[str] = Field(
        default_factory=list, description="Experts that answer, in order, when this one cannot (after its retries); "
        "a stream cut mid-answer is continued on them.",
    )
    retry: RetryPolicy = Field(default_factory=RetryPolicy)
    breaker: BreakerPolicy = Field(default_factory=BreakerPolicy)
    timeouts: StreamTimeouts = Field(default_factory=StreamTimeouts)
    cost_per_mtok: float | None = Field(
        None, ge=0, description="Price in $ per million input tokens the router weighs against quality (default: "
        "LiteLLM's price map for a remote model it knows, else from the active parameters: see coe/experts/costs.py).",
    )

    def replica_queue_s(self) -> float | None:
        """How long a request may wait for one of this expert's replicas to accept it (None: no bound)."""
        if self.timeouts.queue_s is not None:
            return self.timeouts.queue_s
        return None if self.scaling is not None and self.scaling.min_replicas == 0 else DEFAULT_REPLICA_QUEUE_S

    @model_validator(mode="after")
    def _one_source(self) -> "ExpertConfig":
        if sum(source is not None for source in (self.weights, self.remote, self.adapter)) != 1:
            raise ValueError("give exactly one of 'weights' (local), 'remote' (LiteLLM) or 'adapter' (LoRA on a local expert)")
        return self

    @property
    def is_remote(self) -> bool:
        return self.remote is not None

    @property
    def has_engine(self) -> bool:
        """Local weights of its own: a vLLM engine (dedicated or a pool's slot) serves it."""
        return self.weights is not None

    @property
    def bundled_name(self) -> str | None:
        return _named(self.weights, BUNDLED_PREFIX)

    @property
    def built_name(self) -> str | None:
        return _named(self.weights, BUILT_PREFIX)
