"""An `ExpertBackend` that forwards to an Expert deployment through a Ray Serve handle.

The ingress treats local experts (behind Serve handles) and remote ones (LiteLLM) alike through this
adapter. Errors raised in the replica arrive wrapped in Ray's task error; the original `CoEError` is
unwrapped here so the HTTP layer can answer with the right status.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any, NoReturn

from coe.errors import CoEError, ExpertUnavailable
from coe.experts.base import ExpertBackend
from coe.protocol import GenerationDelta, GenerationRequest, GenerationResult, elapsed_ms
from coe.serve.coalesce import coalesced


# COE_STREAM_COALESCE=0 passes every piece on as the replica sent it (an A/B in bench/vllm_side_by_side.py).
COALESCE_STREAMS = os.environ.get("COE_STREAM_COALESCE", "1") != "0"


def reraise_from_replica(err: BaseException, expert_id: str) -> NoReturn:
    cause = getattr(err, "cause", None)
    if isinstance(cause, CoEError):
        raise cause from None
    if isinstance(err, CoEError):
        raise _plain(err) from None
    raise ExpertUnavailable(f"expert '{expert_id}' failed: {type(err).__name__}: {err}") from err


def _plain(err: CoEError) -> CoEError:
    """Strip Ray's dynamic wrapper class so the error keeps its own type and message."""
    for cls in type(err).__mro__:
        if issubclass(cls, CoEError) and cls.__module__ == CoEError.__module__:
            plain = cls(err.message, param=err.param, code=err.code)
            plain.retry_after_s = err.retry_after_s
            return plain
    return err


class ServeHandleClient(ExpertBackend):
    def __init__(self, expert_id: str, handle: Any, queue_s: float | None = None, adapter: str | None = None) -> None:
        """`adapter`: the LoRA adapter this expert is on the engine behind `handle` (None: the engine's own weights)."""
        self.expert_id = expert_id
        self.handle = handle
        self.queue_s = queue_s
        self.adapter = adapter

    def _for_engine(self, request: GenerationRequest) -> GenerationRequest:
        return request if self.adapter == request.adapter else replace(request, adapter=self.adapter)

    async def _accepted(self, response: Any) -> None:
        """Wait until a replica has accepted the call, at most `queue_s`. Serve's handle otherwise holds a
        request for as long as the deployment has no running replica (about a minute while a crashed
        one restarts), which a fallback could have answered in that time."""
        assigned = getattr(response, "_fetch_future_result_async", None)
        if self.queue_s is None or assigned is None:  # a Ray without it: Serve's own unbounded wait
            return
        try:
            await asyncio.wait_for(assigned(), self.queue_s)
        except asyncio.TimeoutError:
            response.cancel()
            err = ExpertUnavailable(f"no replica of expert '{self.expert_id}' accepted the request within "
                                    f"{self.queue_s:g} s (restarting?)", code="replica_unavailable")
            err.retry_after_s = self.queue_s
            raise err from None

    async def chat(self, request: GenerationRequest) -> GenerationResult:
        started = time.perf_counter()
        response = self.handle.chat.remote(self._for_engine(request))
        await self._accepted(response)
        try:
            result = await response
        except Exception as err:
            reraise_from_replica(err, self.expert_id)
        result.timings["handle"] = elapsed_ms(started)
        return result

    async def chat_stream(self, request: GenerationRequest) -> AsyncIterator[GenerationDelta]:
        """One Ray message per engine output; the pieces that queue up while the ingress is busy are
        merged (coe.serve.coalesce). Closed or cancelled early, the replica's call is cancelled too."""
        response = self.handle.options(stream=True).chat_stream.remote(self._for_engine(request))
        await self._accepted(response)
        pieces = coalesced(response) if COALESCE_STREAMS else _passed_on(response)
        finished = False
        try:
            async for delta in pieces:
                yield delta
            finished = True
        except Exception as err:
            finished = True  # the replica's call already ended, with this error
            reraise_from_replica(err, self.expert_id)
        finally:
            await pieces.aclose()
            if not finished:
                response.cancel()

    async def check_health(self) -> None:
        try:
            await self.handle.check_health.remote()
        except Exception as err:
            reraise_from_replica(err, self.expert_id)


async def _passed_on(response: Any) -> AsyncIterator[GenerationDelta]:
    async for delta in response:
        yield delta
