"""Pick the store a deployment's `state:` section asks for."""

from __future__ import annotations

import os

from coe.config import StateConfig
from coe.state.store import InMemoryStore, StateStore

REDIS_URL_ENV = "COE_REDIS_URL"
"""Overrides `state.redis_url`: lets one Serve config run against a different Redis per cluster."""


def redis_url(config: StateConfig) -> str | None:
    return os.environ.get(REDIS_URL_ENV) or config.redis_url


def open_store(config: StateConfig) -> StateStore:
    """Redis (with local fallback) when a URL is configured, else the embedded in-process store."""
    url = redis_url(config)
    if not url:
        return InMemoryStore()
    from coe.state.redis_store import RedisStore
    from coe.state.resilient import ResilientStore

    remote = RedisStore(url, prefix=config.key_prefix, timeout_s=config.redis_timeout_s)
    return ResilientStore(remote, retry_interval_s=config.retry_interval_s)


def backend_name(store: StateStore) -> str:
    """What a response header and /metrics say the state lives in right now."""
    from coe.state.resilient import ResilientStore

    if isinstance(store, ResilientStore):
        return "redis" if store.redis_up else "local-fallback"
    return "local"
