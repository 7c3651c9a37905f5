"""What the HTTP layer needs to answer: the experts by id and what to say about them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from coe.api.admission import AdmissionGate
from coe.config import ServerConfig
from coe.experts.base import ExpertBackend, ExpertInfo
from coe.failover.caller import FailoverCaller
from coe.routing.service import RoutingService


@dataclass
class ApiState:
    server: ServerConfig
    experts: dict[str, ExpertBackend] = field(default_factory=dict)
    infos: dict[str, ExpertInfo] = field(default_factory=dict)
    router: RoutingService | None = None
    swap_status: Callable[[], Awaitable[dict[str, dict]]] | None = None
    """Every engine slot's `describe()` (hot expert, tiers, queue, swap counters), when pools exist."""
    adapter_tiers: Callable[[], Awaitable[dict[str, str]]] | None = None
    """Each LoRA adapter expert's tier on its base's engine (warm/cold), when adapters exist."""
    failover: FailoverCaller | None = None
    """Retries, fallbacks and breakers per expert (the ingress builds it from coe.yaml); None: the
    defaults (retries and breakers, no fallbacks), made on first use."""

    gate: AdmissionGate | None = None

    def admission(self) -> AdmissionGate:
        if self.gate is None:
            self.gate = AdmissionGate(self.server.ingress_max_ongoing_requests)
        return self.gate

    def caller(self) -> FailoverCaller:
        if self.failover is None:
            self.failover = FailoverCaller(self.experts)
        return self.failover

    async def tiers(self) -> dict[str, str]:
        """expert id -> hot/warm/cold/unbuilt for pooled experts (the hot slot wins over other slots) and
        adapters; others are not listed (a dedicated engine always holds its expert)."""
        tiers: dict[str, str] = dict(await self.adapter_tiers()) if self.adapter_tiers is not None else {}
        if self.swap_status is None:
            return tiers
        rank = {"hot": 0, "warm": 1, "cold": 2, "unbuilt": 3}
        for slot in (await self.swap_status()).values():
            for expert, tier in slot.get("tiers", {}).items():
                if rank.get(tier, 9) < rank.get(tiers.get(expert, "?"), 9):
                    tiers[expert] = tier
        return tiers
