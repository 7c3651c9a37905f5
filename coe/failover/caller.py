"""Calling an expert so that one misbehaving expert does not fail the request.

For a request the ingress builds a chain: the expert the client named (or the router chose), its
configured `fallbacks`, then, for `model="coe"`, the rest of the router's preference order. Each expert
in turn gets its retry policy (coe.failover.classify) behind its circuit breaker (coe.failover.breaker);
the first answer wins. A request error goes back at once, except a context-length refusal, which the
next expert may still answer. When every expert fails, the client gets the named expert's own error
(its 429 and Retry-After, its 503), so errors keep their meaning.

Streams: the chain is walked until one expert yields its first piece (within `first_token_s`); after
that, a failure or a silence longer than `stall_s` continues the same client stream on the next
experts of the chain (a replica that just died mid-answer is rarely back within a retry), the text so
far sent as an assistant prefill the expert continues (`GenerationRequest.continue_final`), so the
client receives one answer.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from coe.config import BreakerPolicy, CoEConfig, RetryPolicy, StreamTimeouts
from coe.errors import CoEError, ExpertUnavailable
from coe.experts.base import ExpertBackend
from coe.failover.breaker import CircuitBreaker
from coe.failover.classify import another_expert_may_answer, backoff_s, counts_against_breaker, retryable
from coe.protocol import GenerationDelta, GenerationRequest, GenerationResult, SamplingSettings
from coe.state.store import InMemoryStore, StateStore

log = logging.getLogger(__name__)
T = TypeVar("T")
MAX_CONTINUATIONS = 3  # per stream: an expert that fails at the same place every time must not loop forever


@dataclass(frozen=True)
class ExpertPolicy:
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    breaker: BreakerPolicy = field(default_factory=BreakerPolicy)
    timeouts: StreamTimeouts = field(default_factory=StreamTimeouts)
    fallbacks: tuple[str, ...] = ()


@dataclass
class Attempts:
    """What the chain did for one request: every failed attempt, and who answered."""

    failed: list[tuple[str, CoEError]] = field(default_factory=list)
    served_by: list[str] = field(default_factory=list)

    def to_metadata(self) -> dict[str, Any]:
        return {"served_by": list(self.served_by),
                "failed_attempts": [{"expert": e, "status": err.status_code, "code": err.code, "message": err.message[:200]}
                                    for e, err in self.failed]}


class FailoverCaller:
    def __init__(self, experts: dict[str, ExpertBackend], policies: dict[str, ExpertPolicy] | None = None,
                 store: StateStore | None = None, seed: int | None = None,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self.experts = experts
        self.policies = policies or {}
        self.store = store if store is not None else InMemoryStore()
        self._rng = random.Random(seed)
        self._sleep = sleep
        self._breakers: dict[str, CircuitBreaker] = {}

    @classmethod
    def from_config(cls, config: CoEConfig, experts: dict[str, ExpertBackend], store: StateStore | None) -> "FailoverCaller":
        policies = {e.id: ExpertPolicy(e.retry, e.breaker, e.timeouts, tuple(e.fallbacks)) for e in config.experts}
        return cls(experts, policies, store)

    def policy(self, expert_id: str) -> ExpertPolicy:
        return self.policies.get(expert_id) or ExpertPolicy()

    def breaker(self, expert_id: str) -> CircuitBreaker:
        if expert_id not in self._breakers:
            self._breakers[expert_id] = CircuitBreaker(expert_id, self.policy(expert_id).breaker, self.store)
        return self._breakers[expert_id]

    def chain(self, expert_id: str, ranking: Sequence[str] = ()) -> list[str]:
        """The named expert, its fallbacks, then the router's next choices; each once, served ones only."""
        ordered = [expert_id, *self.policy(expert_id).fallbacks, *ranking]
        return [e for e in dict.fromkeys(ordered) if e in self.experts]

    async def _walk(self, chain: Sequence[str], call: Callable[[str, ExpertBackend], Awaitable[T]],
                    attempts: Attempts) -> tuple[str, T]:
        primary_error: CoEError | None = None
        for expert_id in chain:
            wait = await self.breaker(expert_id).retry_after_s()
            if wait is not None:
                err = ExpertUnavailable(f"expert '{expert_id}' is failing (circuit breaker open); try again shortly",
                                        code="circuit_open")
                err.retry_after_s = wait
                attempts.failed.append((expert_id, err))
                primary_error = primary_error or err
                continue
            policy, started = self.policy(expert_id).retry, time.monotonic()
            for attempt in range(policy.max_retries + 1):
                try:
                    result = await call(expert_id, self.experts[expert_id])
                except CoEError as err:
                    attempts.failed.append((expert_id, err))
                    if counts_against_breaker(err):
                        await self.breaker(expert_id).failed()
                    if not retryable(err) or attempt == policy.max_retries:
                        break
                    delay = backoff_s(policy, attempt, err, self._rng)
                    if delay is None or time.monotonic() - started + delay > policy.deadline_s:
                        break
                    log.info("expert %s: %s; retry %d in %.2f s", expert_id, err.message, attempt + 1, delay)
                    await self._sleep(delay)
                else:
                    await self.breaker(expert_id).succeeded()
                    attempts.served_by.append(expert_id)
                    return expert_id, result
            last = attempts.failed[-1][1]
            primary_error = primary_error or last
            if not another_expert_may_answer(last):
                raise last
        raise primary_error or ExpertUnavailable("no expert could answer")

    async def complete(self, chain: Sequence[str], request: GenerationRequest,
                       attempts: Attempts) -> tuple[str, GenerationResult]:
        return await self._walk(chain, lambda _eid, backend: backend.chat(request), attempts)

    async def open_stream(self, chain: Sequence[str], request: GenerationRequest,
                          attempts: Attempts) -> tuple[str, GenerationDelta, AsyncIterator[GenerationDelta]]:
        """The first expert in `chain` to yield a first piece, that piece, and the rest of its stream."""

        async def first_piece(expert_id: str, backend: ExpertBackend) -> tuple[GenerationDelta, AsyncIterator[GenerationDelta]]:
            pieces = backend.chat_stream(request).__aiter__()
            limit = self.policy(expert_id).timeouts.first_token_s
            return await _next_within(pieces, limit, expert_id, "first token"), pieces

        expert_id, (first, rest) = await self._walk(chain, first_piece, attempts)
        return expert_id, first, rest

    async def stream(self, chain: Sequence[str], request: GenerationRequest, expert_id: str,
                     first: GenerationDelta, rest: AsyncIterator[GenerationDelta],
                     attempts: Attempts) -> AsyncIterator[GenerationDelta]:
        """The pieces of one answer, from `first` to the piece with finish_reason, continued on the
        chain when the serving expert fails or stalls mid-answer."""
        sent: list[str] = []
        delta: GenerationDelta | None = first
        continuations = 0
        while True:
            try:
                while delta is not None:
                    sent.append(delta.text)
                    yield delta
                    if delta.finish_reason is not None:
                        return
                    delta = await _next_within(rest, self.policy(expert_id).timeouts.stall_s, expert_id, "next token")
                raise ExpertUnavailable(f"expert '{expert_id}' ended its stream without finishing the answer",
                                        code="stream_incomplete")
            except CoEError as err:
                attempts.failed.append((expert_id, err))
                if counts_against_breaker(err):
                    await self.breaker(expert_id).failed()
                if not another_expert_may_answer(err) or continuations >= MAX_CONTINUATIONS:
                    raise
                continuations += 1
                remaining = list(chain[chain.index(expert_id) + 1:]) if expert_id in chain else []
                if not remaining:
                    raise
                log.warning("stream from %s failed mid-answer (%s); continuing on %s", expert_id, err.message, remaining)
                expert_id, delta, rest = await self.open_stream(remaining, continuation(request, "".join(sent), len(sent)),
                                                                attempts)


async def _next_within(pieces: AsyncIterator[GenerationDelta], limit_s: float, expert_id: str, what: str) -> GenerationDelta | None:
    """The next piece within `limit_s` (None at the end of the stream); a silent expert is an error
    (and its stream is closed, which aborts the engine's work)."""
    try:
        return await asyncio.wait_for(anext(pieces, None), limit_s)
    except asyncio.TimeoutError:
        closer = getattr(pieces, "aclose", None)
        if closer is not None:
            try:
                await closer()
            except Exception:  # noqa: BLE001 - the stream is being abandoned
                pass
        raise ExpertUnavailable(f"expert '{expert_id}' sent no {what} within {limit_s:g} s", code="timeout") from None


def continuation(request: GenerationRequest, text_so_far: str, pieces_sent: int) -> GenerationRequest:
    """The same conversation with the answer so far as an assistant prefill to continue, and the
    completion budget reduced by what was sent (one piece is about one token)."""
    sampling: SamplingSettings = request.sampling
    budget = None if sampling.max_tokens is None else max(1, sampling.max_tokens - pieces_sent)
    messages = (*request.messages, {"role": "assistant", "content": text_so_far})
    return replace(request, messages=messages, sampling=replace(sampling, max_tokens=budget), continue_final=True)
