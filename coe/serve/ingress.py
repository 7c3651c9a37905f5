"""The ingress deployment: the FastAPI front door, holding one client per expert.

The app is built after the constructor (`__serve_build_asgi_app__`), so the routes get their state
from `app.state` rather than from module globals, and the same `build_app` runs outside Ray in tests.
"""

from __future__ import annotations

import logging
from typing import Any

from coe.api.app import build_app
from coe.api.auth import is_loopback
from coe.api.shared_state import SharedState
from coe.api.state import ApiState
from coe.config import CoEConfig
from coe.experts.base import ExpertBackend, ExpertInfo
from coe.experts.litellm_backend import LiteLLMBackend
from coe.failover.caller import FailoverCaller
from coe.serve.app_builder import linkable
from coe.serve.gc_heap import freeze_gc_heap
from coe.serve.handle_client import ServeHandleClient
from coe.serve.linked_engine import LinkedEngine, LinkedExpertClient
from coe.serve.pool_client import PooledExpertClient, describe_slots
from coe.serve.serve_config import expert_options
from coe.swap.metrics import render_prometheus
from coe.swap.placement import Placement

log = logging.getLogger(__name__)


class Ingress:
    def __init__(
        self, config: CoEConfig, infos: list[ExpertInfo], handles: dict[str, Any], pools: dict[str, dict[str, Any]] | None = None
    ) -> None:
        self.shared = SharedState.for_config(config)  # store (Redis or in-process), rate limits, keys, stats
        if self.shared.keys is None and not is_loopback(config.cluster.http_host) and not config.server.allow_unauthenticated:
            log.warning("the cluster's HTTP proxy binds %s and no API key is configured: anyone who reaches it can use "
                        "every expert (set server.api_keys, or server.allow_unauthenticated: true to silence this)",
                        config.cluster.http_host)
        self.pools = pools or {}
        experts: dict[str, ExpertBackend] = {}
        linked: dict[str, LinkedEngine] = {}  # engine id -> this replica's link to it
        for pool_id, slots in self.pools.items():
            placement = Placement(self.shared.store, pool_id, list(slots))
            for expert_id in config.pool_of_id(pool_id).experts:
                experts[expert_id] = PooledExpertClient(expert_id, slots, placement)
        for expert in config.experts:
            if expert.id in experts:
                continue
            if expert.remote is not None:
                experts[expert.id] = LiteLLMBackend(expert.id, expert.remote)
            else:
                adapter = expert.id if expert.adapter is not None else None
                engine = config.expert(expert.adapter.base) if expert.adapter is not None else expert
                client = ServeHandleClient(expert.id, handles[expert.id], engine.replica_queue_s(), adapter)
                if linkable(config, engine):  # this ingress's own frontend on the engine, the handle as the fallback path
                    if engine.id not in linked:
                        linked[engine.id] = LinkedEngine(engine, handles[engine.id], expert_options(engine)["max_ongoing_requests"])
                    client = LinkedExpertClient(client, linked[engine.id])
                experts[expert.id] = client
        # Engines that serve adapters, asked for their adapters' tiers by GET /v1/models.
        self.lora_bases = {e.adapter.base: handles[e.adapter.base] for e in config.experts if e.adapter is not None}
        router = None
        if config.router is not None:
            from coe.routing.service import RoutingService

            router = RoutingService.load(
                config.router.path, set(experts), config.router.switch_confidence,
                store=self.shared.store, affinity_ttl_s=config.state.affinity_ttl_s,
            )
        self.state = ApiState(server=config.server, experts=experts, infos={i.id: i for i in infos}, router=router,
                              swap_status=self.swap_status if self.pools else None,
                              adapter_tiers=self.adapter_tiers if self.lora_bases else None,
                              failover=FailoverCaller.from_config(config, experts, self.shared.store))

    async def swap_metrics(self) -> str:
        status = await self.swap_status()
        return render_prometheus({name: d["metrics"] for name, d in status.items() if "metrics" in d})

    async def adapter_tiers(self) -> dict[str, str]:
        tiers: dict[str, str] = {}
        for base, handle in self.lora_bases.items():
            try:
                tiers.update(await handle.adapter_tiers.remote())
            except Exception as err:  # a restarting base: its adapters keep the default tier in /v1/models
                log.warning("could not read the adapter tiers of '%s': %s", base, err)
        return tiers

    async def swap_status(self) -> dict[str, dict]:
        slots = {name: handle for pool in self.pools.values() for name, handle in pool.items()}
        return await describe_slots(slots)

    def __serve_build_asgi_app__(self) -> Any:
        app = build_app(self.state)
        if self.pools:
            self.shared.metric_sources.append(self.swap_metrics)
        self.shared.install(app, list(self.state.infos))
        freeze_gc_heap("ingress")
        return app
