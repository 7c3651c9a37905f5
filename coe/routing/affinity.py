"""Session affinity: keep a multi-turn conversation on the expert that started it.

Switching experts mid-conversation loses the style and context a user is following, so a follow-up
turn stays put unless the router is confident the topic changed. A conversation is keyed by the
client's `x-coe-conversation-id` header, else by a hash of its opening (system + first user turn),
which every later turn of the same conversation repeats.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import replace

from coe.routing.router import RoutingDecision
from coe.state.store import InMemoryStore, StateStore


def conversation_key(messages: Sequence[Mapping[str, str]], conversation_id: str | None) -> str:
    if conversation_id:
        return "id:" + conversation_id
    opening = []
    for m in messages:
        opening.append(f"{m['role']}:{m['content']}")
        if m["role"] == "user":
            break
    return "open:" + hashlib.sha256("\x00".join(opening).encode()).hexdigest()[:32]


def is_follow_up(messages: Sequence[Mapping[str, str]]) -> bool:
    return any(m["role"] == "assistant" for m in messages)


class AffinityTable:
    """Conversation -> (expert, category), kept in the StateStore so every ingress replica agrees.

    With Redis configured, a follow-up turn that lands on another replica (or another node) still finds
    its conversation; without it, the embedded store keeps it per process. Entries expire after
    `ttl_s` of inactivity instead of being evicted by count, so a store shared by many replicas stays
    bounded without coordination.
    """

    PREFIX = "affinity:"

    def __init__(self, switch_confidence: float = 0.8, store: StateStore | None = None, ttl_s: float = 86_400) -> None:
        self.switch_confidence = switch_confidence
        self.store = store if store is not None else InMemoryStore()
        self.ttl_s = ttl_s

    async def held(self, key: str) -> tuple[str, str] | None:
        value = await self.store.get(self.PREFIX + key)
        if value is None or "\t" not in value:
            return None
        expert, category = value.split("\t", 1)
        return expert, category

    async def apply(self, key: str, decision: RoutingDecision, follow_up: bool) -> RoutingDecision:
        held = await self.held(key)
        record = (decision.expert, decision.category)
        if held is not None and follow_up and held[0] != decision.expert:
            topic_changed = (
                decision.category != held[1] and decision.confidence >= self.switch_confidence and not decision.fallback
            )
            if not topic_changed:
                decision = replace(decision, expert=held[0], reason=f"{decision.reason}; kept on {held[0]} (conversation affinity)")
                record = held
        await self.store.set(self.PREFIX + key, "\t".join(record), self.ttl_s)
        return decision
