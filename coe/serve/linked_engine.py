"""A local expert reached from the ingress without the expert replica in the way.

The ingress replica asks the expert replica on its node for a frontend slot of its engine
(`ExpertDeployment.engine_link`, coe/experts/shared_engine.py) and runs a `VLLMBackend` of its own on
it: tokenizing, the engine round trip and detokenizing happen here, exactly as in the replica, minus
the Ray Serve handle hop and the replica's process. The replica still owns the engine: Ray Serve
places it, health-checks it and restarts it.

Until the link is made (at start-up, in the background), when the replica is on another node or has
no slot left, past the replica's own request limit, and after its engine went away (until the
restarted replica hands out a new slot), requests take the handle path as before, so nothing is lost
to the link: a request that fails on a dead engine before its first piece is sent through the
handle, and one that fails after raises ExpertUnavailable mid-stream as any expert would (the failover
layer continues it elsewhere).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from coe.config import ExpertConfig
from coe.errors import ExpertUnavailable
from coe.experts.base import ExpertBackend
from coe.experts.shared_engine import EngineLink, EngineNotAnswering, node_id, watch_engine
from coe.protocol import GenerationDelta, GenerationRequest, GenerationResult, elapsed_ms
from coe.serve.gc_heap import freeze_gc_heap, long_pauses_expected
from coe.serve.handle_client import ServeHandleClient

log = logging.getLogger(__name__)

RELINK_AFTER_S = 5.0  # after the engine went away: its replica restarts (tens of seconds), then a new link
FIRST_LINK_WAIT_S = 60.0  # how long an ingress's start-up waits for its first links (engines boot meanwhile)


class LinkedEngine:
    """The ingress's own frontend on one expert replica's engine, (re)linked in the background."""

    def __init__(self, engine: ExpertConfig, handle: Any, limit: int) -> None:
        """`limit`: requests in flight through the link at most (the replica's own limit); the rest
        take the handle path, which queues and refuses as it always did."""
        self.engine = engine
        self.handle = handle
        self.limit = limit
        self.in_flight = 0
        self.backend: Any = None  # a linked VLLMBackend while its engine is up
        self._task: asyncio.Task | None = None
        self._settled = asyncio.Event()  # the first attempt ended: linked, or the replica's path it is

    async def start(self) -> None:
        """Links in the background; waits (at most FIRST_LINK_WAIT_S) for the first attempt, so an ingress
        that starts beside booting engines takes traffic on the path it will keep."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._keep_linked(), name=f"link-{self.engine.id}")
        try:
            await asyncio.wait_for(self._settled.wait(), FIRST_LINK_WAIT_S)
        except asyncio.TimeoutError:
            log.warning("expert '%s': not linked after %.0f s; requests go through its replica meanwhile",
                        self.engine.id, FIRST_LINK_WAIT_S)

    def usable(self) -> Any:
        """The linked backend when a request may go through it now, else None."""
        backend = self.backend
        if backend is None or self.in_flight >= self.limit or backend.engine_errored:
            return None
        return backend

    async def _keep_linked(self) -> None:
        try:
            await self._link_while_offered()
        finally:
            self._settled.set()

    async def _link_while_offered(self) -> None:
        node = node_id()
        if node is None:
            return
        while True:
            try:
                offer = await self.handle.engine_link.remote(node)
            except Exception as err:  # the replica is down or restarting: ask again later
                log.info("expert '%s': no engine link yet (%s)", self.engine.id, err)
                await asyncio.sleep(RELINK_AFTER_S)
                continue
            if offer is None:
                log.info("expert '%s': its replica offers no engine link (another node, or no slot left); "
                         "requests go through the replica", self.engine.id)
                return
            try:
                backend = await self._attach(offer)
            except EngineNotAnswering as err:  # it died after the offer: its replica restarts, ask again
                log.warning("expert '%s': %s; requests go through its replica until it is linked again",
                            self.engine.id, err)
                await asyncio.sleep(RELINK_AFTER_S)
                continue
            if backend is None:
                return
            self.backend = backend
            self._settled.set()
            freeze_gc_heap(f"expert '{self.engine.id}' linked")  # vLLM's frontend was imported just now
            log.info("expert '%s': linked to its engine (frontend slot %d of %d)", self.engine.id,
                     backend.link.client_index, backend.link.client_count)
            try:
                await watch_engine(backend.engine)
            finally:
                self.backend = None
                backend.close()
            log.warning("expert '%s': its engine went away; requests go through the replica until it is linked again",
                        self.engine.id)
            await asyncio.sleep(RELINK_AFTER_S)

    async def _attach(self, offer: dict) -> Any:
        from coe.experts.vllm_backend import VLLMBackend

        backend = VLLMBackend(Path(offer["checkpoint"]), self.engine.engine, self.engine.prompt_format, self.engine.id,
                              adapters={name: Path(path) for name, path in offer["adapters"].items()},
                              link=EngineLink(**offer["link"]))
        try:
            with long_pauses_expected():
                await asyncio.to_thread(_import_vllm)  # seconds, the first time
                await backend.start()  # the attach runs off the event loop too
        except EngineNotAnswering:
            backend.close()
            raise
        except Exception as err:
            log.warning("expert '%s': could not attach to its engine (%s); requests go through the replica",
                        self.engine.id, err)
            backend.close()
            return None
        return backend

    async def stop(self) -> None:
        """Closes this frontend (never the engine: its replica owns it)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        backend, self.backend = self.backend, None
        if backend is not None:
            backend.close()


class LinkedExpertClient(ExpertBackend):
    """One expert (the engine's own weights, or one of its adapters) over a `LinkedEngine`, with the
    Ray Serve handle as the path whenever the link cannot take the request."""

    def __init__(self, via_handle: ServeHandleClient, linked: LinkedEngine) -> None:
        self.via_handle = via_handle
        self.linked = linked
        self.expert_id = via_handle.expert_id

    async def start(self) -> None:
        await self.via_handle.start()
        await self.linked.start()

    async def shutdown(self) -> None:
        await self.linked.stop()

    def _for_engine(self, request: GenerationRequest) -> GenerationRequest:
        adapter = self.via_handle.adapter
        return request if adapter == request.adapter else replace(request, adapter=adapter)

    async def chat(self, request: GenerationRequest) -> GenerationResult:
        backend = self.linked.usable()
        if backend is None:
            return await self.via_handle.chat(request)
        started = time.perf_counter()
        self.linked.in_flight += 1
        try:
            result = await backend.chat(self._for_engine(request))
        except Exception as err:
            if not _engine_gone(err):
                raise
            return await self.via_handle.chat(request)  # nothing was answered: the replica's path
        finally:
            self.linked.in_flight -= 1
        result.timings["linked"] = elapsed_ms(started)
        return result

    async def chat_stream(self, request: GenerationRequest) -> AsyncIterator[GenerationDelta]:
        backend = self.linked.usable()
        if backend is None:
            async for delta in self.via_handle.chat_stream(request):
                yield delta
            return
        sent = False
        self.linked.in_flight += 1
        pieces = backend.chat_stream(self._for_engine(request))
        try:
            async for delta in pieces:
                sent = True
                yield delta
        except Exception as err:
            if not _engine_gone(err):
                raise
            if sent:
                raise ExpertUnavailable(f"expert '{self.expert_id}': its engine went away mid-answer") from err
        else:
            return
        finally:
            self.linked.in_flight -= 1
            await pieces.aclose()  # a client that left: its engine request is aborted now
        async for delta in self.via_handle.chat_stream(request):  # nothing was sent: the replica's path
            yield delta

    async def check_health(self) -> None:
        await self.via_handle.check_health()  # the replica owns the engine and its health


def _engine_gone(err: BaseException) -> bool:
    """vLLM's EngineDeadError (from `watch_engine`, or vLLM's own), or the backend's refusal once it knows."""
    from coe.experts.vllm_backend import ENGINE_DEAD

    return type(err).__name__ == "EngineDeadError" or (isinstance(err, ExpertUnavailable) and err.code == ENGINE_DEAD)


def _import_vllm() -> None:
    import vllm.v1.engine.async_llm  # noqa: F401

