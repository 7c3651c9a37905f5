from __future__ import annotations

from coe.routing.affinity import AffinityTable, conversation_key, is_follow_up
from coe.routing.router import RoutingDecision
from coe.routing.text import conversation_text


def _decision(expert: str, category: str, confidence: float, fallback: bool = False) -> RoutingDecision:
    return RoutingDecision(expert, category, confidence, "quality", 0.5, fallback)


FIRST = [{"role": "system", "content": "be nice"}, {"role": "user", "content": "write a poem"}]
SECOND = [*FIRST, {"role": "assistant", "content": "roses..."}, {"role": "user", "content": "now a haiku"}]


def test_every_turn_of_a_conversation_has_the_same_key() -> None:
    assert conversation_key(FIRST, None) == conversation_key(SECOND, None)
    assert conversation_key(FIRST, None) != conversation_key([{"role": "user", "content": "other"}], None)
    assert conversation_key(FIRST, "abc") == "id:abc"
    assert not is_follow_up(FIRST) and is_follow_up(SECOND)


async def test_follow_up_stays_unless_confident_topic_change() -> None:
    table = AffinityTable(switch_confidence=0.8)
    key = conversation_key(FIRST, None)
    assert (await table.apply(key, _decision("writer", "writing", 0.9), follow_up=False)).expert == "writer"
    kept = await table.apply(key, _decision("coder", "coding", 0.6), follow_up=True)
    assert kept.expert == "writer" and "affinity" in kept.reason
    assert (await table.apply(key, _decision("general", "coding", 0.95, fallback=True), True)).expert == "writer"
    moved = await table.apply(key, _decision("coder", "coding", 0.9), follow_up=True)
    assert moved.expert == "coder"
    assert (await table.apply(key, _decision("writer", "writing", 0.7), follow_up=True)).expert == "coder"


async def test_entries_expire_so_the_shared_table_stays_bounded() -> None:
    import asyncio

    table = AffinityTable(ttl_s=0.05)
    await table.apply("k0", _decision("a", "c", 0.9), follow_up=False)
    assert await table.held("k0") == ("a", "c")
    await asyncio.sleep(0.08)
    assert await table.held("k0") is None
    assert (await table.apply("k0", _decision("b", "d", 0.1), follow_up=True)).expert == "b"


def test_conversation_text_puts_newest_user_turn_first() -> None:
    assert conversation_text(SECOND) == "now a haiku\nwrite a poem"
