from __future__ import annotations

import pytest

from coe.api.ratelimit import RateLimiter, RateLimitExceeded, TokenBudget, TokenLimitExceeded, api_key_of, key_id
from coe.state import InMemoryStore


async def test_budget_per_key_per_window_with_retry_after() -> None:
    limiter = RateLimiter(InMemoryStore(), requests=3, window_s=60)
    for _ in range(3):
        await limiter.check("k1", now=120.0)
    with pytest.raises(RateLimitExceeded) as refused:
        await limiter.check("k1", now=150.5)
    assert refused.value.status_code == 429 and refused.value.retry_after_s == 30
    assert refused.value.to_body()["error"]["code"] == "rate_limit_exceeded"
    await limiter.check("k2", now=150.5)  # another key has its own budget
    await limiter.check("k1", now=180.0)  # a new window


def test_api_keys_are_read_from_bearer_and_hashed() -> None:
    assert api_key_of("Bearer sk-abc") == "sk-abc"
    assert api_key_of(None) == api_key_of("Basic x") == api_key_of("Bearer  ") == "anonymous"
    assert "sk-abc" not in key_id("sk-abc") and len(key_id("sk-abc")) == 16


async def test_token_budget_refuses_once_spent_and_resets_with_the_window() -> None:
    budget = TokenBudget(InMemoryStore(), tokens=100, window_s=60)
    await budget.check("k1", now=120.0)
    assert await budget.charge("k1", 99, now=121.0) == 99
    await budget.check("k1", now=122.0)  # under the budget: admitted, however much this answer will cost
    assert await budget.charge("k1", 50, now=123.0) == 149  # soft: the admitted answer is charged in full
    with pytest.raises(TokenLimitExceeded) as refused:
        await budget.check("k1", now=150.5)
    assert refused.value.status_code == 429 and refused.value.retry_after_s == 30
    body = refused.value.to_body()["error"]
    assert body["type"] == "tokens" and body["code"] == "rate_limit_exceeded" and "149 used" in body["message"]
    await budget.check("k2", now=150.5)  # another key has its own budget
    await budget.check("k1", now=180.0)  # a new window


async def test_two_replicas_over_one_redis_share_a_keys_token_budget(redis_server) -> None:
    """Two SharedStates (two ingress replicas, each its own Redis client) spend one budget per key."""
    from tests.unit.api.test_token_limits import BUDGET, chat, one_window, replica, used

    (a, shared_a), (b, shared_b) = replica(redis_url=redis_server.url), replica(redis_url=redis_server.url)
    window = await one_window()
    for _ in range(2):  # 6 tokens each, both on replica A: 12 of 10
        assert (await chat(a, "sk-shared", "a b c")).status_code == 200
        await shared_a.settled()
    refused = await chat(b, "sk-shared", "a b c")  # replica B sees what A charged
    assert refused.status_code == 429 and refused.json()["error"]["type"] == "tokens"
    assert f"{BUDGET} tokens" in refused.json()["error"]["message"]
    assert (await chat(b, "sk-other", "a b c")).status_code == 200
    assert await used(shared_b, "sk-shared", window) == 12 and await used(shared_b, "sk-other", window) == 6
    assert redis_server.keys("coe:ratelimit-tokens:*") and all(
        "sk-" not in k for k in redis_server.keys())  # hashed keys only
    for client, shared in ((a, shared_a), (b, shared_b)):
        await client.aclose()
        await shared.store.close()
