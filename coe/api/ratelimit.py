"""Per-API-key rate limits, counted in the StateStore so every ingress replica enforces one budget.

Fixed windows: the counter `ratelimit:<key hash>:<window number>` is incremented per request and
expires with its window. Keys are hashed before they reach the store: Redis never holds an API key.
A refused request gets 429 with OpenAI's error body (`code: rate_limit_exceeded`) and `Retry-After`,
so OpenAI SDKs back off and retry on their own.
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
            retry_after = max(1, math.ceil((window + 1) * self.window_s - now))
            err = RateLimitExceeded(
                f"rate limit reached: {self.requests} requests per {self.window_s:g}s for this API key; "
                f"retry in {retry_after}s"
            )
            err.retry_after_s = retry_after  # type: ignore[attr-defined]
            raise err
