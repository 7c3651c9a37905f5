"""Per-API-key rate limits, counted in the StateStore so every ingress replica enforces one budget.

Fixed windows: the counter `ratelimit:<key hash>:<window number>` is incremented per request and
expires with its window. Keys are hashed before they reach the store: Redis never holds an API key.
A refused request gets 429 with OpenAI's error body (`code: rate_limit_exceeded`) and `Retry-After`,
so OpenAI SDKs back off and retry on their own.

Token budgets (`TokenBudget`) use the same windows with a second counter, `ratelimit-tokens:<key hash>:
<window number>`, which answers add their prompt + completion tokens to once they are done.
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass

from coe.errors import CoEError
from coe.state.store import StateStore

ANONYMOUS = "anonymous"


class RateLimitExceeded(CoEError):
    status_code = 429
    error_type = "requests"

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message, param=param, code=code or "rate_limit_exceeded")


class TokenLimitExceeded(RateLimitExceeded):
    """OpenAI's 429 for a spent token budget: same code, `type: tokens` (as its TPM limits say)."""

    error_type = "tokens"


def api_key_of(authorization: str | None) -> str:
    """The bearer token of an `Authorization` header; requests without one share one budget."""
    if authorization and authorization.lower().startswith("bearer "):
        token = authorization[7:].strip()
        if token:
            return token
    return ANONYMOUS


def key_id(api_key: str) -> str:
    return hashlib.sha256(api_key.encode()).hexdigest()[:16]


@dataclass
class RateLimiter:
    store: StateStore
    requests: int
    window_s: float = 60.0

    async def check(self, api_key: str, now: float | None = None) -> None:
        """Counts one request for `api_key`; raises RateLimitExceeded past the window's budget."""
        now = time.time() if now is None else now
        window = int(now // self.window_s)
        count = await self.store.incr(f"ratelimit:{key_id(api_key)}:{window}", 1, ttl_s=self.window_s)
        if count > self.requests:
            retry_after = _retry_after(window, self.window_s, now)
            err = RateLimitExceeded(
                f"rate limit reached: {self.requests} requests per {self.window_s:g}s for this API key; "
                f"retry in {retry_after}s"
            )
            err.retry_after_s = retry_after  # type: ignore[attr-defined]
            raise err


def _retry_after(window: int, window_s: float, now: float) -> int:
    """Whole seconds to the end of `window`, at least 1 (what `Retry-After` carries)."""
    return max(1, math.ceil((window + 1) * window_s - now))


@dataclass
class TokenBudget:
    """Prompt + completion tokens per API key per fixed window, shared through the StateStore.

    A soft limit, at window granularity: the cost of an answer is known only once it is generated,
    so a request is admitted while the key's window total is under the budget and runs to completion
    even if it takes the total past it; the next request of that key in the window is refused. An
    answer is charged to the window it finishes in. One GET before a request, one INCR after it.
    """

    store: StateStore
    tokens: int
    window_s: float = 60.0

    def _key(self, api_key: str, window: int) -> str:
        return f"ratelimit-tokens:{key_id(api_key)}:{window}"

    async def check(self, api_key: str, now: float | None = None) -> None:
        """Raises TokenLimitExceeded if `api_key` has used its budget in the current window."""
        now = time.time() if now is None else now
        window = int(now // self.window_s)
        used = int(await self.store.get(self._key(api_key, window)) or 0)
        if used >= self.tokens:
            retry_after = _retry_after(window, self.window_s, now)
            err = TokenLimitExceeded(
                f"token limit reached: {self.tokens} tokens per {self.window_s:g}s for this API key "
                f"({used} used); retry in {retry_after}s"
            )
            err.retry_after_s = retry_after
            raise err

    async def charge(self, api_key: str, tokens: int, now: float | None = None) -> int:
        """Adds an answer's tokens to `api_key`'s current window; returns the window's new total."""
        now = time.time() if now is None else now
        window = int(now // self.window_s)
        return await self.store.incr(self._key(api_key, window), tokens, ttl_s=self.window_s)
