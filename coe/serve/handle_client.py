"""An `ExpertBackend` that forwards to an Expert deployment through a Ray Serve handle.

The ingress treats local experts (behind Serve handles) and remote ones (LiteLLM) alike through this
adapter. Errors raised in the replica arrive wrapped in Ray's task error; the original `CoEError` is
unwrapped here so the HTTP layer can answer with the right status.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, NoReturn

from coe.errors import CoEError, ExpertUnavailable
from coe.experts.base import ExpertBackend
from coe.protocol import GenerationDelta, GenerationRequest, GenerationResult


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
    def __init__(self, expert_id: str, handle: Any) -> None:
        self.expert_id = expert_id
        self.handle = handle

    async def chat(self, request: GenerationRequest) -> GenerationResult:
        try:
            return await self.handle.chat.remote(request)
        except Exception as err:
            reraise_from_replica(err, self.expert_id)

    async def chat_stream(self, request: GenerationRequest) -> AsyncIterator[GenerationDelta]:
        try:
            async for delta in self.handle.options(stream=True).chat_stream.remote(request):
                yield delta
        except Exception as err:
            reraise_from_replica(err, self.expert_id)

    async def check_health(self) -> None:
        try:
            await self.handle.check_health.remote()
        except Exception as err:
            reraise_from_replica(err, self.expert_id)
