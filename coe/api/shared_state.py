"""What the HTTP layer adds when replicas share state: rate limits (requests and tokens per API key),
per-expert stats, where a response came from, and `/metrics`.

Installed on the FastAPI app by the ingress (and by tests on a bare app). Everything goes through one
`StateStore`, so with Redis configured every ingress replica on every node counts against the same
budgets and reports the same cluster-wide stats. The store never fails a request: with Redis down,
`ResilientStore` answers from local state and `/metrics` says so (`coe_state_redis_up 0`).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from functools import partial

from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse, Response

from coe.api.auth import InvalidApiKey, KeyRing, configured_hashes
from coe.api.errors import error_response
from coe.api.ratelimit import RateLimiter, RateLimitExceeded, TokenBudget, api_key_of
from coe.config import CoEConfig, ConfigError
from coe.state.factory import backend_name, open_store
from coe.state.store import StateStore

log = logging.getLogger(__name__)


def node_id() -> str:
    """The Ray node this replica runs on (outside Ray: the host name), for `x-coe-node`."""
    try:
        import ray

        if ray.is_initialized():
            return ray.get_runtime_context().get_node_id()
    except Exception as err:  # noqa: BLE001 - identification only; never fail a replica over it
        log.debug("no Ray node id: %s", err)
    return socket.gethostname()


@dataclass
class SharedState:
    store: StateStore
    limiter: RateLimiter | None = None
    keys: KeyRing | None = None
    tokens: TokenBudget | None = None
    node: str = field(default_factory=node_id)
    rejected: int = 0
    _pending: set[asyncio.Task] = field(default_factory=set, repr=False)
    metric_sources: list[Callable[[], Awaitable[str]]] = field(default_factory=list, repr=False)

    @classmethod
    def for_config(cls, config: CoEConfig) -> SharedState:
        store = open_store(config.state)
        limiter = None
        if config.server.rate_limit_requests is not None:
            limiter = RateLimiter(store, config.server.rate_limit_requests, config.server.rate_limit_window_s)
        tokens = None
        if config.server.rate_limit_tokens is not None:
            tokens = TokenBudget(store, config.server.rate_limit_tokens, config.server.rate_limit_window_s)
        try:
            hashes = configured_hashes(config.server.api_keys, config.server.api_keys_file)
        except (OSError, ValueError) as err:
            raise ConfigError(f"API keys: {err}") from None
        keys = KeyRing(hashes, store, config.server.api_keys_in_store)
        return cls(store, limiter, keys if keys.enabled else None, tokens)

    def _headers(self) -> dict[str, str]:
        return {"x-coe-node": self.node, "x-coe-state": backend_name(self.store)}

    async def record(self, expert: str, elapsed_ms: float) -> None:
        """Per-expert load and latency (to the response head: first token when streaming), cluster-wide."""
        await self.store.incr(f"stats:{expert}:requests")
        await self.store.incr(f"stats:{expert}:latency_ms_total", round(elapsed_ms))

    def _background(self, work: Coroutine[object, object, object]) -> None:
        """Runs a store write off the response path, kept referenced until done (see `settled`)."""
        task = asyncio.create_task(work)
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    def _charge(self, api_key: str, tokens: int) -> None:
        """The hook chat.complete calls with an answer's tokens. Synchronous on purpose: it also runs
        in the `finally` of a stream whose client left, where an await would be cancelled."""
        if self.tokens is not None and tokens > 0:
            self._background(self.tokens.charge(api_key, tokens))

    async def settled(self) -> None:
        """Waits for the writes made off the response path (stats, token charges), e.g. before a test reads them."""
        while self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)

    async def _admit(self, api_key: str) -> None:
        """The per-key limits, both at once (one store round trip of latency); raises RateLimitExceeded."""
        checks = [limit.check(api_key) for limit in (self.limiter, self.tokens) if limit is not None]
        for outcome in await asyncio.gather(*checks, return_exceptions=True):
            if isinstance(outcome, BaseException):
                raise outcome

    def install(self, app: FastAPI, experts: list[str]) -> None:
        @app.middleware("http")
        async def _shared_state(request: Request, call_next) -> Response:
            if self.keys is not None and request.url.path.startswith("/v1/"):
                try:
                    await self.keys.check(request.headers.get("authorization"))
                except InvalidApiKey as err:
                    response = error_response(err)
                    response.headers.update(self._headers())
                    return response
            limited = self.limiter is not None or self.tokens is not None
            if limited and request.method == "POST" and request.url.path.startswith("/v1/"):
                api_key = api_key_of(request.headers.get("authorization"))
                try:
                    await self._admit(api_key)
                except RateLimitExceeded as err:
                    self.rejected += 1
                    response = error_response(err)  # carries Retry-After
                    response.headers.update(self._headers())
                    return response
                if self.tokens is not None:  # the route hands this to chat.complete, which reports usage
                    request.state.charge_tokens = partial(self._charge, api_key)
            start = time.perf_counter()
            response = await call_next(request)
            expert = response.headers.get("x-coe-expert")
            if expert:  # off the response path: stats must not add a Redis round trip to every request
                self._background(self.record(expert, (time.perf_counter() - start) * 1000))
            response.headers.update(self._headers())
            return response

        @app.get("/metrics", include_in_schema=False)
        async def _metrics() -> PlainTextResponse:
            text = await self.metrics_text(experts)
            for source in self.metric_sources:  # e.g. the swap pools' counters (coe/swap/metrics.py)
                text += await source()
            return PlainTextResponse(text, media_type="text/plain; version=0.0.4")

    async def metrics_text(self, experts: list[str]) -> str:
        from coe.state.resilient import ResilientStore

        store = self.store
        lines: list[str] = []

        def metric(name: str, kind: str, help_text: str, samples: list[tuple[str, float]]) -> None:
            lines.extend([f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"])
            lines.extend(f"{name}{labels} {value:g}" for labels, value in samples)

        if isinstance(store, ResilientStore):
            await store.available()  # probe now, so the gauge is current even without traffic
            metric("coe_state_redis_up", "gauge", "1 while shared state is on Redis, 0 while this replica runs on local state",
                   [("", 1 if store.redis_up else 0)])
            metric("coe_state_redis_outages_total", "counter", "Times this replica lost Redis", [("", store.outages)])
            metric("coe_state_redis_resyncs_total", "counter", "Times this replica resynced Redis after an outage",
                   [("", store.resyncs)])
            metric("coe_state_pending_writes", "gauge", "Writes waiting for Redis to come back", [("", store.pending_writes)])
        metric("coe_ratelimit_rejected_total", "counter", "Requests this replica refused with 429", [("", self.rejected)])
        requests, latency = [], []
        for expert in experts:
            label = f'{{expert="{expert}"}}'
            requests.append((label, int(await store.get(f"stats:{expert}:requests") or 0)))
            latency.append((label, int(await store.get(f"stats:{expert}:latency_ms_total") or 0)))
        metric("coe_expert_requests_total", "counter", "Requests answered per expert, all replicas (shared state)", requests)
        metric("coe_expert_latency_ms_total", "counter", "Sum of time to response head per expert, all replicas", latency)
        return "\n".join(lines) + "\n"
