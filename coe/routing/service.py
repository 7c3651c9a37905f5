"""Routing as the HTTP layer sees it: knob parsing, the router, conversation affinity, off the event loop."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from pathlib import Path

from coe.routing.affinity import AffinityTable, conversation_key, is_follow_up
from coe.routing.knobs import parse_knob
from coe.routing.router import CategoryRouter, RoutingDecision
from coe.state.store import StateStore


class RoutingService:
    def __init__(
        self, router: CategoryRouter, switch_confidence: float = 0.8, store: StateStore | None = None,
        affinity_ttl_s: float = 86_400,
    ) -> None:
        self.router = router
        self.affinity = AffinityTable(switch_confidence, store, affinity_ttl_s)

    @classmethod
    def load(
        cls, artifact: Path, known_experts: set[str], switch_confidence: float = 0.8, store: StateStore | None = None,
        affinity_ttl_s: float = 86_400,
    ) -> "RoutingService":
        router = CategoryRouter.load(artifact, served=known_experts)
        return cls(router, switch_confidence, store, affinity_ttl_s)

    async def route(
        self, messages: Sequence[Mapping[str, str]], model: str, conversation_id: str | None = None
    ) -> RoutingDecision:
        knob = parse_knob(model)
        # Embedding is CPU work (milliseconds to tens of ms): keep it off the ingress event loop.
        decision = await asyncio.to_thread(self.router.decide, messages, knob)
        return await self.affinity.apply(conversation_key(messages, conversation_id), decision, is_follow_up(messages))
