"""The whole deployment around the experts: HTTP server, router, shared state, cluster layout, swap pools."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator

from coe import paths
from coe.config.base import BUILT_PREFIX, StrictModel, _named
from coe.config.experts import ExpertConfig
from coe.swap.scheduler import BatchingPolicy
from coe.swap.tiers import EvictionPolicy

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
    direct_ingress: bool = Field(
        True, description="`coe serve` with one ingress replica: the replica serves the port itself (Ray Serve's "
        "direct ingress), one process hop less than through Serve's HTTP proxy (coe/serve/direct_ingress.py).",
    )
    ingress_on_main_loop: bool = Field(
        True, description="The ingress replica runs CoE's app on Ray Serve's own event loop instead of a second "
        "thread's, so each request skips two thread hops (coe/serve/serve_config.py: INGRESS_MAIN_LOOP_ENV). "
        "Expert and slot replicas, which boot engines, keep their separate thread.",
    )
    access_log: bool = Field(
        True, description="Log one line per request (Ray Serve's access log: method, path, status, time) from the "
        "ingress, and from an expert replica a request passes through, in the replica logs and `coe serve`'s "
        "terminal. False (`coe serve --no-access-log`) is what vLLM's `--disable-uvicorn-access-log` does: on a "
        "2-core machine each line costs CPU in the ingress and in Ray's log forwarding that the engine would "
        "otherwise get.",
    )
    keep_off_engine_cores: bool = Field(
        True, description="`coe serve` runs its own processes (Ray's daemons, Serve's actors, the ingress) on the "
        "cores no local engine is pinned to (engine.cpu_bind), so that none of them takes an engine's core; the "
        "engines' processes still start with the cores `coe serve` started with, as under `vllm serve` "
        "(coe/experts/engine_cores.py). No change where every core is an engine's or none is pinned.",
    )
    direct_engines: bool = Field(
        True, description="An ingress replica runs its own vLLM frontend on each dedicated engine of its node (one "
        "replica, no autoscaling), one process hop less than through the expert replica; the replica keeps owning "
        "the engine (coe/experts/shared_engine.py). Elsewhere, and until linked, requests go through the replica.",
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
    gather_ms: int = Field(
        0, ge=0, description="A swap waits until its expert's oldest request has waited this long, so requests "
        "arriving close together share one swap (fewer swaps, each request up to this much later; README: trace replay).",
    )
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

    def dedicated_engine_experts(self) -> list[ExpertConfig]:
        """Experts with an engine of their own: local weights, outside every swap pool (a pooled expert
        runs in its pool's slots)."""
        return [e for e in self.experts if e.has_engine and self.pool_of(e.id) is None]

    def adapters_of(self, base_id: str) -> list[ExpertConfig]:
        """The adapter experts served on `base_id`'s engine, in config order."""
        return [e for e in self.experts if e.adapter is not None and e.adapter.base == base_id]

    def expert(self, expert_id: str) -> ExpertConfig | None:
        return next((e for e in self.experts if e.id == expert_id), None)
