"""The narrow interface every expert backend implements.

The ingress, and later the router and the swap manager, depend on this class only, never on vLLM or
LiteLLM directly: a local engine, a Ray Serve handle to one, and a hosted API all look the same.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator
from dataclasses import dataclass

from coe.protocol import GenerationDelta, GenerationRequest, GenerationResult


@dataclass(frozen=True)
class ExpertInfo:
    """What `GET /v1/models` and `coe models list` say about an expert."""

    id: str
    kind: str  # "local" or "remote"
    description: str = ""
    is_base_model: bool = False
    location: str = ""
    moe_routing: str | None = None  # in-model routing of an MoE checkpoint ("2 experts, top-1"); None if dense


class ExpertBackend(abc.ABC):
    """An expert that answers chat requests. Lifecycle: start -> chat/chat_stream* -> shutdown."""

    async def start(self) -> None:
        """Acquire what the backend needs (boot an engine, open a client). Idempotent."""

    @abc.abstractmethod
    async def chat(self, request: GenerationRequest) -> GenerationResult:
        """Answer a whole request. Raises `coe.errors.CoEError` for problems a client must see."""

    @abc.abstractmethod
    def chat_stream(self, request: GenerationRequest) -> AsyncIterator[GenerationDelta]:
        """Answer piece by piece; the last delta carries finish_reason and usage."""

    async def check_health(self) -> None:
        """Raise `ExpertUnavailable` if the backend cannot serve."""

    async def shutdown(self) -> None:
        """Release resources. Safe to call twice."""
