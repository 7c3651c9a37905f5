"""One real vLLM engine core with two frontends (coe/experts/shared_engine.py): the owner's, as an
expert replica runs it, and an attached one, as an ingress replica runs it.

Both must give the same greedy text as each other (same engine, same prompt), run at the same time,
and an attached frontend must learn at once that the engine died, instead of waiting forever: vLLM
tells only the process that started the engine."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import time

import pytest

from coe import paths
from coe.config import EngineOptions, PromptFormat
from coe.experts import shared_engine
from coe.experts.shared_engine import watch_engine
from coe.errors import ExpertUnavailable
from coe.experts.vllm_backend import ENGINE_DEAD, VLLMBackend
from coe.protocol import GenerationRequest, SamplingSettings

pytestmark = pytest.mark.integration

SMOL = paths.model_cache_dir() / "smollm2-135m-instruct"  # prepared by `make test` (coe models prepare)
OPTIONS = EngineOptions(cpu_bind="0", max_model_len=512, kv_cache_gib=1)


IDS = itertools.count()


def request(content: str, max_tokens: int = 12) -> GenerationRequest:
    return GenerationRequest(f"shared-{next(IDS)}", ({"role": "user", "content": content},),
                             SamplingSettings(temperature=0.0, max_tokens=max_tokens))


def backend(**kwargs) -> VLLMBackend:
    return VLLMBackend(SMOL, OPTIONS, PromptFormat.chat, "smollm2", **kwargs)


async def test_an_attached_frontend_shares_the_engine_and_learns_when_it_dies(monkeypatch) -> None:
    owner = backend(spare_frontends=2)
    await owner.start()
    try:
        link = owner.take_link()
        assert link is not None and (link.client_index, link.client_count) == (1, 3)
        spare = owner.take_link()
        assert spare.client_index == 2 and owner.take_link() is None  # each slot once

        attached = backend(link=link)
        await attached.start()
        prompts = [f"Name a colour, then count to {n}." for n in range(4)]
        # Concurrently on both frontends: each answer arrives on the frontend that asked for it.
        mine = [owner.chat(request(p)) for p in prompts]
        theirs = [attached.chat(request(p)) for p in prompts]
        results = await asyncio.wait_for(asyncio.gather(*mine, *theirs), 120)
        assert all(r.usage.completion_tokens > 0 for r in results)
        alone = [(await owner.chat(request(p))).text for p in prompts[:2]]
        assert [(await attached.chat(request(p))).text for p in prompts[:2]] == alone  # same engine, same greedy text

        # The engine process dies mid-answer (as when its replica is killed): both frontends learn it at
        # once, the owner from vLLM's process monitor, the attached one from `watch_engine`.
        watcher = asyncio.create_task(watch_engine(attached.engine))
        answers = [asyncio.create_task(f.chat(request("Tell me a long story about a dragon.", 400))) for f in (owner, attached)]
        await asyncio.sleep(1.0)
        os.kill(owner._shared.engine.engine_core.resources.engine_manager.processes[0].pid, signal.SIGKILL)
        started = time.monotonic()
        for answer in answers:
            with pytest.raises(Exception) as failure:
                await asyncio.wait_for(answer, 60)
            assert type(failure.value).__name__ == "EngineDeadError", repr(failure.value)
        assert time.monotonic() - started < 30
        await asyncio.wait_for(watcher, 30)
        assert attached.engine_errored
        with pytest.raises(ExpertUnavailable) as refused:  # later requests are refused before reaching vLLM
            await attached.chat(request("Hello?"))
        assert refused.value.code == ENGINE_DEAD
        attached.close()

        # A slot handed out just before its engine died: the attach gives up after ATTACH_READY_TIMEOUT_S
        # (vLLM alone would wait 600 s), and the event loop keeps running meanwhile (an ingress attaches
        # while it serves other requests).
        monkeypatch.setattr(shared_engine, "ATTACH_READY_TIMEOUT_S", 2)
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.05)
                ticks += 1

        ticker, late = asyncio.create_task(tick()), backend(link=spare)
        started = time.monotonic()
        with pytest.raises(shared_engine.EngineNotAnswering):
            await asyncio.wait_for(late.start(), 60)
        waited = time.monotonic() - started
        ticker.cancel()
        assert 2 <= waited < 20 and ticks >= waited / 0.05 / 2, (waited, ticks)
        late.close()
    finally:
        owner.close()
