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

