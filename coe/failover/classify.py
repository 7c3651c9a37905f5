"""Which failures are worth another attempt, and where.

A retry can only help when the failure was the expert's state, not the request: a 429, a 5xx, an
unreachable or silent upstream. A request error (bad parameters, a content-policy refusal) fails the
same way everywhere, so it goes back to the client at once. A prompt past an expert's context window
is the one request error another expert may still answer (one with a longer window).
"""

from __future__ import annotations

import random

from coe.config import RetryPolicy
from coe.errors import CoEError, ContentFiltered, ContextLengthExceeded, InvalidRequest, ModelNotFound, Overloaded

RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})


def retryable(err: CoEError) -> bool:
    """Worth another attempt on the same expert. Not when no replica of a local expert accepted the
    call within its queue bound: it is restarting (or swamped) for longer than a retry's backoff."""
    return err.status_code in RETRYABLE_STATUS and not isinstance(err, Overloaded) and err.code != "replica_unavailable"


def another_expert_may_answer(err: CoEError) -> bool:
    """Worth trying the next expert in the chain (after this one's retries)."""
    if isinstance(err, ContextLengthExceeded):
        return True
    if isinstance(err, (ContentFiltered, InvalidRequest, ModelNotFound)):
        return False
    return err.status_code in RETRYABLE_STATUS


def counts_against_breaker(err: CoEError) -> bool:
    """A sign the expert is unhealthy: 5xx, unreachable, timeout. A 429 is the upstream protecting
    itself, and a full queue of our own is load, not sickness."""
    return err.status_code >= 500 and not isinstance(err, Overloaded)


def backoff_s(policy: RetryPolicy, attempt: int, err: CoEError, rng: random.Random) -> float | None:
    """Seconds to wait before retry number `attempt` (0-based), or None: do not retry here (the
    upstream asked for longer than the cap)."""
    if err.retry_after_s is not None:
        return err.retry_after_s if err.retry_after_s <= policy.retry_after_cap_s else None
    ceiling = min(policy.backoff_max_s, policy.backoff_s * (2 ** attempt))
    return rng.uniform(0, ceiling)  # full jitter: replicas that failed together do not retry together
