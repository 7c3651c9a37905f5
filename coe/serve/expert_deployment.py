"""The Ray Serve deployment that hosts one local expert engine.

It is a thin shell over `VLLMBackend`: Serve gives it a process, a queue (`max_ongoing_requests`) and
health checks (Serve calls `check_health` on its own schedule and restarts a replica whose engine
died); all serving logic stays in the backend so it can be tested and reused without Ray.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import asdict
from pathlib import Path

from coe.config import ExpertConfig
from coe.experts.shared_engine import node_id
from coe.experts.vllm_backend import VLLMBackend
from coe.protocol import GenerationDelta, GenerationRequest, GenerationResult
from coe.serve.gc_heap import freeze_gc_heap


class ExpertDeployment:
    async def __init__(self, expert: ExpertConfig, checkpoint: str, adapters: dict[str, str] | None = None,
                       spare_frontends: int = 0) -> None:
        """`adapters`: adapter expert id -> PEFT folder, served on this engine beside the base weights.
        `spare_frontends`: frontend slots for ingress replicas on this node (`engine_link`)."""
        self.expert_id = expert.id
        self.checkpoint, self.adapters = checkpoint, dict(adapters or {})
        self.backend = VLLMBackend(
            checkpoint=Path(checkpoint),
            options=expert.engine,
            prompt_format=expert.prompt_format,
            served_name=expert.id,
            adapters={name: Path(path) for name, path in self.adapters.items()},
            spare_frontends=spare_frontends,
        )
        await self.backend.start()
        self.node_id = node_id()
        freeze_gc_heap(f"expert '{expert.id}'")

    async def engine_link(self, node_id: str) -> dict | None:
        """A frontend slot of this replica's engine for an ingress on the same node, with what that
        ingress needs to build the same frontend (coe/experts/shared_engine.py); None when the caller is
        on another node or every slot was handed out."""
        link = self.backend.take_link() if node_id is not None and node_id == self.node_id else None
        if link is None:
            return None
        return {"link": asdict(link), "checkpoint": self.checkpoint, "adapters": self.adapters}

    async def adapter_tiers(self) -> dict[str, str]:
        return await self.backend.adapter_tiers()

    async def chat(self, request: GenerationRequest) -> GenerationResult:
        return await self.backend.chat(request)

    async def chat_stream(self, request: GenerationRequest) -> AsyncIterator[GenerationDelta]:
        async for delta in self.backend.chat_stream(request):
            yield delta

    async def check_health(self) -> None:
        await self.backend.check_health()

    def __del__(self) -> None:
        # Serve calls this on replica shutdown and garbage collection may call it again: close() is
        # idempotent. Shutting the engine down explicitly avoids vLLM's noisy interpreter-exit path.
        self.backend.close()

