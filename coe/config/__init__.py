"""Typed configuration for a CoE deployment (`coe.yaml`).

The YAML is validated once, here, at the edge: everything past `load_config` works with typed objects,
and a mistake in the file is reported with the path of the offending field instead of surfacing later as
a crash inside an engine.

Split into one module per job so each stays small: `base` (strict model, prompt formats, weight-reference
prefixes), `policies` (retries, breaker, timeouts, scaling), `experts` (one expert and its engine),
`deployment` (server, router, state, cluster, pools, the whole CoEConfig) and `loading` (YAML in, errors
out). Every name is re-exported here, so `from coe.config import ...` is the one import path.
"""

# `_named` and `_format_validation_error` are private, but stay importable from `coe.config` as before.
from coe.config.base import BUILT_PREFIX, BUNDLED_PREFIX, PromptFormat, StrictModel, _named
from coe.config.deployment import (
    ClusterConfig,
    CoEConfig,
    RouterConfig,
    ServerConfig,
    StateConfig,
    SwapPoolConfig,
)
from coe.config.experts import AdapterSource, EngineOptions, ExpertConfig, RemoteExpert
from coe.config.loading import (
    ConfigError,
    _format_validation_error,
    default_config_text,
    load_config,
    parse_config,
    read_config_data,
)
from coe.config.policies import (
    DEFAULT_REPLICA_QUEUE_S,
    BreakerPolicy,
    RetryPolicy,
    ScalingOptions,
    StreamTimeouts,
)

__all__ = [
    "BUILT_PREFIX",
    "BUNDLED_PREFIX",
    "DEFAULT_REPLICA_QUEUE_S",
    "AdapterSource",
    "BreakerPolicy",
    "ClusterConfig",
    "CoEConfig",
    "ConfigError",
    "EngineOptions",
    "ExpertConfig",
    "PromptFormat",
    "RemoteExpert",
    "RetryPolicy",
    "RouterConfig",
    "ScalingOptions",
    "ServerConfig",
    "StateConfig",
    "StreamTimeouts",
    "StrictModel",
    "SwapPoolConfig",
    "default_config_text",
    "load_config",
    "parse_config",
    "read_config_data",
]
