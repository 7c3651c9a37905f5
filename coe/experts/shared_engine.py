"""One vLLM engine core, several frontends: the expert replica owns the engine, the ingress talks to it.

Why: a request to a local expert used to cross two processes before the engine (ingress replica ->
Ray Serve handle -> expert replica -> engine core), where vLLM's own server crosses one (API server ->
engine core). On 2 cores the extra hop cost about 5 ms per request and a busy process beside the
engine. vLLM runs several API-server processes against one engine core itself (`vllm serve
--api-server-count N`): the engine core takes a fixed list of frontend socket pairs when it starts and
answers each request on the pair it came in on. CoE does the same: the expert replica starts the engine
with its own frontend in slot 0 and spare slots for ingress replicas; an ingress on the same node asks
the replica for a slot (`EngineLink`, plain strings: it travels through a Ray call) and builds its own
`AsyncLLM` on it. Ray Serve still places, health-checks and restarts the replica, and the engine dies
with it.

What the engine cannot do: take a new frontend after it started (a slot whose frontend went away
cannot be reused, so a replica has a few spare ones), or tell a frontend in another process that it
died. `watch_engine` closes that gap: the frontend's input socket has one peer, the engine, and when
that connection drops every waiting request fails with vLLM's EngineDeadError at once, as it does in
the process that owns the engine.

Only ipc:// sockets (the node's /tmp): an ingress on another node keeps using the Ray Serve handle.
The calls below are vLLM 0.32's (`launch_core_engines`, `EngineZmqAddresses`, `client_addresses`);
`launch` raises `SharedEngineUnsupported` where they differ, and the caller starts a plain engine.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

# A running engine answers an attach in milliseconds. One that died after handing out the slot never
# answers, and vLLM would wait for it VLLM_ENGINE_READY_TIMEOUT_S (600 s by default: it is sized for an
# engine that is still loading its model, which an attach never waits for).
ATTACH_READY_TIMEOUT_S = 30
_ATTACH_WAIT = threading.Lock()  # attaches change vLLM's ready timeout one at a time


class EngineNotAnswering(RuntimeError):
    """The engine behind a link did not say it was ready: it died after handing the link out."""


class SharedEngineUnsupported(RuntimeError):
    """This vLLM cannot start an engine core for several frontends the way CoE does it."""


@dataclass(frozen=True)
class EngineLink:
    """What a frontend in another process of the same node needs to reach a running engine core."""

    input_address: str
    output_address: str
    client_count: int
    client_index: int


def node_id() -> str | None:
    """The Ray node this process runs on (an engine link only works within one node); None outside Ray."""
    try:
        import ray

        return ray.get_runtime_context().get_node_id()
    except Exception:
        return None


def mark_shared(args: Any, frontends: int) -> None:
    """What `vllm serve --api-server-count N` sets on the engine arguments of every frontend."""
    args._api_process_count = frontends
    args._api_process_rank = -1


@dataclass
class SharedEngine:
    engine: Any  # this process's AsyncLLM, slot 0, owning the engine process
    links: list[EngineLink]  # the spare slots, each handed out once
    socket_files: list[str]  # slot 0's ipc files: libzmq does not unlink sockets it adopted

    def take_link(self) -> EngineLink | None:
        return self.links.pop(0) if self.links else None

    def close(self) -> None:
        engine, self.engine = self.engine, None
        if engine is not None:
            engine.shutdown()
        for address in self.socket_files:
            try:
                os.unlink(address.removeprefix("ipc://"))
            except OSError:
                pass
        self.socket_files = []


def launch(args: Any, spare_slots: int) -> SharedEngine:
    """Start an engine core with `1 + spare_slots` frontend slots: this process's AsyncLLM in slot 0,
    owning the engine process as a plain AsyncLLM does, and a link per spare slot."""
    try:
        import zmq
        from vllm.usage.usage_lib import UsageContext
        from vllm.utils.network_utils import get_open_zmq_ipc_path, make_zmq_listener
        from vllm.v1.engine.async_llm import AsyncLLM
        from vllm.v1.engine.utils import EngineZmqAddresses, launch_core_engines
        from vllm.v1.executor import Executor
    except ImportError as err:
        raise SharedEngineUnsupported(f"this vLLM lacks what a shared engine needs: {err}") from err
    count = 1 + spare_slots
    mark_shared(args, count)
    vllm_config = args.create_engine_config(UsageContext.ENGINE_CONTEXT)
    executor_class = Executor.get_class(vllm_config)
    own_in = make_zmq_listener(get_open_zmq_ipc_path(), zmq.ROUTER)
    own_out = make_zmq_listener(get_open_zmq_ipc_path(), zmq.PULL)
    spare = [(get_open_zmq_ipc_path(), get_open_zmq_ipc_path()) for _ in range(spare_slots)]
    try:
        addresses = EngineZmqAddresses(inputs=[own_in.address, *(i for i, _ in spare)],
                                       outputs=[own_out.address, *(o for _, o in spare)])
        # Starts the engine core, hands it every slot's addresses, returns once the model is loaded. The
        # spare slots' sockets are bound later by their frontends; the engine's connects retry until then.
        with launch_core_engines(vllm_config, executor_class, False, addresses) as launched:
            pass
    except (TypeError, AttributeError) as err:  # another vLLM's signatures: no engine was started
        raise SharedEngineUnsupported(f"this vLLM's engine launch differs ({err})") from err
    try:
        engine = AsyncLLM(vllm_config=vllm_config, executor_class=executor_class, log_stats=False,
                          client_addresses={"input_address": own_in.address, "output_address": own_out.address,
                                            "input_listener": own_in.socket, "output_listener": own_out.socket},
                          client_count=count, client_index=0)
        # Ownership, as a plain AsyncLLM has it: its death noticed here, its shutdown stopping the engine.
        engine.engine_core.resources.engine_manager = launched.engine_manager
        engine.engine_core.start_engine_core_monitor()
    except BaseException as err:
        launched.engine_manager.shutdown()  # never leave an engine without its owner
        if isinstance(err, (TypeError, AttributeError)):
            raise SharedEngineUnsupported(f"this vLLM's frontend differs ({err})") from err
        raise
    return SharedEngine(engine, [EngineLink(i, o, count, k + 1) for k, (i, o) in enumerate(spare)],
                        [a for a in (own_in.address, own_out.address) if a.startswith("ipc://")])


def attach(args: Any, link: EngineLink) -> Any:
    """This process's AsyncLLM on the engine core behind `link` (started with the same `args`).

    Blocking (reads config and tokenizer files, then waits for the engine's hello): call it off the
    event loop. A running engine says hello in milliseconds; one that died after handing out `link`
    never does, and this raises EngineNotAnswering after ATTACH_READY_TIMEOUT_S instead of vLLM's 600 s.
    vLLM reads that timeout from a module global, so it is lowered here for the attach alone; a
    process that attaches must not be launching an engine of its own at the same moment (CoE's
    ingress, the only one that attaches, launches none)."""
    from vllm.usage.usage_lib import UsageContext
    from vllm.v1.engine import core_client
    from vllm.v1.engine.async_llm import AsyncLLM

    mark_shared(args, link.client_count)
    vllm_config = args.create_engine_config(UsageContext.ENGINE_CONTEXT)  # reads config and tokenizer files only
    with _ATTACH_WAIT:
        vllm_timeout = core_client.VLLM_ENGINE_READY_TIMEOUT_S
        core_client.VLLM_ENGINE_READY_TIMEOUT_S = ATTACH_READY_TIMEOUT_S
        try:
            return AsyncLLM.from_vllm_config(
                vllm_config, disable_log_stats=True,
                client_addresses={"input_address": link.input_address, "output_address": link.output_address},
                client_count=link.client_count, client_index=link.client_index)
        except TimeoutError as err:
            raise EngineNotAnswering(f"the engine behind {link.input_address} did not answer within "
                                     f"{ATTACH_READY_TIMEOUT_S} s; it has gone away") from err
        finally:
            core_client.VLLM_ENGINE_READY_TIMEOUT_S = vllm_timeout


async def watch_engine(engine: Any) -> None:
    """Returns when the engine behind an attached AsyncLLM goes away, after failing every waiting
    request (and later ones) with EngineDeadError. Cancel it to stop watching."""
    import zmq
    from vllm.v1.engine.exceptions import EngineDeadError
    from zmq.utils.monitor import parse_monitor_message

    client = engine.engine_core
    monitor = client.input_socket.get_monitor_socket(zmq.EVENT_DISCONNECTED)
    try:
        while True:
            event = parse_monitor_message(await monitor.recv_multipart())
            if event["event"] == zmq.EVENT_DISCONNECTED:
                client.resources.engine_dead = True
                client.outputs_queue.put_nowait(EngineDeadError())
                return
    finally:
        client.input_socket.disable_monitor()
        monitor.close(linger=0)

