"""Session affinity: keep a multi-turn conversation on the expert that started it.

Switching experts mid-conversation loses the style and context a user is following, so a follow-up
turn stays put unless the router is confident the topic changed. A conversation is keyed by the
client's `x-coe-conversation-id` header, else by a hash of its opening (system + first user turn),
which every later turn of the same conversation repeats.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import replace

from coe.routing.router import RoutingDecision


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
    """Bounded LRU of conversation -> (expert, category). In-process; Redis-shared in a later issue."""

    def __init__(self, switch_confidence: float = 0.8, capacity: int = 100_000) -> None:
        self.switch_confidence = switch_confidence
        self.capacity = capacity
        self._table: OrderedDict[str, tuple[str, str]] = OrderedDict()

    def apply(self, key: str, decision: RoutingDecision, follow_up: bool) -> RoutingDecision:
        held = self._table.get(key)
        record = (decision.expert, decision.category)
        if held is not None and follow_up and held[0] != decision.expert:
            topic_changed = (
                decision.category != held[1] and decision.confidence >= self.switch_confidence and not decision.fallback
            )
            if not topic_changed:
                decision = replace(decision, expert=held[0], reason=f"{decision.reason}; kept on {held[0]} (conversation affinity)")
                record = held
        self._table[key] = record
        self._table.move_to_end(key)
        while len(self._table) > self.capacity:
            self._table.popitem(last=False)
        return decision
