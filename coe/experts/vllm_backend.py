"""A local expert: one vLLM async engine serving one checkpoint.

The backend tokenizes the prompt itself (with the engine's own tokenizer) so that it can refuse an
oversized prompt with a clear 400 before the engine sees it, and hands vLLM token ids. The same code
runs on vLLM-CPU and on GPU vLLM: nothing here is device-specific.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from coe.config import EngineOptions, PromptFormat
from coe.errors import ContextLengthExceeded, ExpertUnavailable
from coe.experts.base import ExpertBackend
from coe.experts.engine_cores import started_on_engine_cpus
from coe.experts.lora import LoRASet
from coe.experts.priority import started_at_nice
from coe.experts.prompts import render_prompt, stop_strings
from coe.experts.shared_engine import EngineLink, SharedEngine, SharedEngineUnsupported, attach, launch
from coe.protocol import GenerationDelta, GenerationRequest, GenerationResult, Usage, elapsed_ms

log = logging.getLogger(__name__)

ENGINE_DEAD = "engine_dead"  # the code of ExpertUnavailable when the engine process is gone
LORA_WORKER_EXTENSION = "coe.experts.lora_cpu.LoRAWorkerExtension"  # CPU multi-LoRA ops, see coe/experts/lora_cpu.py


def engine_env(options: EngineOptions) -> dict[str, str]:
    """Environment an engine process needs; vLLM reads these when it starts, not per call."""
    env = {"VLLM_CPU_KVCACHE_SPACE": f"{options.kv_cache_gib:g}"}
    if options.cpu_bind is not None:
        env["VLLM_CPU_OMP_THREADS_BIND"] = options.cpu_bind
    return env


def require_vllm() -> Any:
    try:
        import vllm
    except ImportError as err:  # pragma: no cover - depends on the install
        raise ExpertUnavailable(
            "vLLM is not installed: install CoE with the 'cpu' extra (pip install -e '.[cpu]') "
            "or the 'gpu' extra on a CUDA machine"
        ) from err
    return vllm


class VLLMBackend(ExpertBackend):
    """Owns an `AsyncLLM`; one instance per Expert replica."""

    def __init__(
        self,
        checkpoint: Path,
        options: EngineOptions,
        prompt_format: PromptFormat,
        served_name: str,
        worker_extension_cls: str | None = None,
        adapters: dict[str, Path] | None = None,
        spare_frontends: int = 0,
        link: EngineLink | None = None,
    ) -> None:
        """`spare_frontends`: frontend slots for other processes on this engine (coe/experts/shared_engine.py);
        `link`: attach to the running engine behind it instead of starting one (its owner passes the
        same checkpoint, options and adapters)."""
        self.checkpoint = checkpoint
        self.adapters = LoRASet(adapters or {})
        if self.adapters.names and worker_extension_cls is not None:
            raise ValueError("an engine with adapters runs CoE's LoRA worker extension; it cannot take another")
        self.worker_extension_cls = LORA_WORKER_EXTENSION if self.adapters.names else worker_extension_cls
        self.options = options
        self.prompt_format = prompt_format
        self.served_name = served_name
        self.spare_frontends = spare_frontends
        self.link = link
        self._engine: Any = None
        self._shared: SharedEngine | None = None
        self._tokenizer: Any = None

    async def start(self) -> None:
        if self._engine is not None:
            return
        require_vllm()
        from vllm.v1.engine.async_llm import AsyncLLM

        args = self._engine_args()
        if self.link is not None:  # the engine, its adapters and their checks belong to its owner
            # Off the event loop: the attach reads files and waits for the engine (seconds at worst),
            # and the ingress that attaches keeps serving meanwhile.
            self._engine = await asyncio.to_thread(attach, args, self.link)
            self._tokenizer = self._engine.get_tokenizer()
            return
        os.environ.update(engine_env(self.options))
        # Ray's workers run at nice 15, and under `coe serve` off the engines' cores: the engine gets neither
        with started_at_nice(self.options.nice, f"expert '{self.served_name}'"), started_on_engine_cpus():
            if self.spare_frontends:
                try:
                    self._shared = launch(args, self.spare_frontends)
                    self._engine = self._shared.engine
                except SharedEngineUnsupported as err:
                    log.warning("expert '%s': %s; other processes reach it through its replica only", self.served_name, err)
            if self._engine is None:
                self._engine = AsyncLLM.from_engine_args(self._engine_args())  # fresh: `launch` marked the other one shared
        self._tokenizer = self._engine.get_tokenizer()
        if self.adapters.names:
            await self._check_lora_ops()
        for lora in self.adapters.preload(self.options):  # a bad adapter fails the boot, not its first request
            await self._engine.add_lora(lora)

    def _engine_args(self) -> Any:
        from vllm.engine.arg_utils import AsyncEngineArgs

        return AsyncEngineArgs(
            model=str(self.checkpoint),
            served_model_name=self.served_name,
            dtype=self.options.dtype,
            max_model_len=self.options.max_model_len,
            max_num_seqs=self.options.max_num_seqs,
            enforce_eager=self.options.enforce_eager,
            seed=self.options.seed,
            disable_log_stats=True,
            worker_extension_cls=self.worker_extension_cls or "",
            **self.adapters.engine_args(self.options),
        )

    def take_link(self) -> EngineLink | None:
        """A spare frontend slot of this engine, each handed out once; None when none is left (or the
        engine was started without any)."""
        return self._shared.take_link() if self._shared is not None else None

    async def _check_lora_ops(self) -> None:
        """On CPU, vLLM's own LoRA ops give base requests of a mixed batch the wrong weights: refuse to
        serve adapters unless CoE's replacement is in the engine process."""
        from vllm.platforms import current_platform

        if current_platform.is_cpu() and not all(await self._engine.collective_rpc("coe_lora_cpu_installed")):
            self.close()
            raise ExpertUnavailable(f"expert '{self.served_name}': CoE's CPU LoRA ops are not installed in the engine "
                                    "(coe/experts/lora_cpu.py); adapters are not served without them")

    @property
    def engine(self) -> Any:
        return self._engine_or_raise()

    def _engine_or_raise(self) -> Any:
        if self._engine is None:
            raise ExpertUnavailable(f"expert '{self.served_name}' has not started")
        if self._engine.errored:
            raise ExpertUnavailable(f"expert '{self.served_name}': engine died: {self._engine.dead_error}", code=ENGINE_DEAD)
        return self._engine

    @property
    def engine_errored(self) -> bool:
        return self._engine is None or bool(self._engine.errored)

    def encode(self, request: GenerationRequest) -> tuple[list[int], int]:
        """Token ids of the rendered prompt and the completion budget; refuses what cannot fit."""
        text = render_prompt(self._tokenizer, request.messages, self.prompt_format, request.continue_final)
        # Chat templates write their own special tokens; a plain transcript needs the tokenizer's BOS.
        add_special = self.prompt_format is PromptFormat.completion
        ids = self._tokenizer.encode(text, add_special_tokens=add_special)
        window = self.options.max_model_len
        room = window - len(ids)
        wanted = request.sampling.max_tokens
        if room < 1:
            raise ContextLengthExceeded(
                f"this expert's context window is {window} tokens; the prompt alone has {len(ids)} tokens"
            )
        if wanted is not None and wanted > room:
            raise ContextLengthExceeded(
                f"this expert's context window is {window} tokens; the prompt has {len(ids)} tokens "
                f"and max_tokens asks for {wanted} more (at most {room} fit)",
                param="max_tokens",
            )
        budget = wanted if wanted is not None else min(room, self.options.default_max_tokens)
        return ids, budget

    def _sampling_params(self, request: GenerationRequest, budget: int, streaming: bool) -> Any:
        from vllm.sampling_params import RequestOutputKind, SamplingParams

        s = request.sampling
        return SamplingParams(
            temperature=s.temperature,
            top_p=s.top_p,
            max_tokens=budget,
            stop=stop_strings(self.prompt_format, s.stop) or None,
            seed=s.seed,
            presence_penalty=s.presence_penalty,
            frequency_penalty=s.frequency_penalty,
            ignore_eos=s.ignore_eos,
            output_kind=RequestOutputKind.DELTA if streaming else RequestOutputKind.FINAL_ONLY,
        )

    async def chat(self, request: GenerationRequest) -> GenerationResult:
        started = time.perf_counter()
        text = ""
        finish, usage = "stop", Usage(0, 0)
        async for delta in self._generate(request, streaming=False):
            text += delta.text
            finish = delta.finish_reason or finish
            usage = delta.usage or usage
        return GenerationResult(text=text, finish_reason=finish, usage=usage, timings={"expert": elapsed_ms(started)})

    def chat_stream(self, request: GenerationRequest) -> AsyncIterator[GenerationDelta]:
        return self._generate(request, streaming=True)

    async def _generate(self, request: GenerationRequest, streaming: bool) -> AsyncIterator[GenerationDelta]:
        engine = self._engine_or_raise()
        ids, budget = self.encode(request)
        params = self._sampling_params(request, budget, streaming)
        produced = 0
        # A base model continues "A:" with a space; a chat answer should not start with one.
        strip_leading = self.prompt_format is PromptFormat.completion
        lora = self.adapters.request_for(request.adapter, self.served_name)
        # Closed explicitly, so a client that leaves aborts its engine request now, not at garbage collection.
        outputs = engine.generate({"prompt_token_ids": ids}, params, request.request_id, lora_request=lora)
        async with contextlib.aclosing(outputs):
            async for output in outputs:
                completion = output.outputs[0]
                if completion.finish_reason == "abort":  # the engine stopped it (shutting down): not an answer
                    raise ExpertUnavailable(f"expert '{self.served_name}': its engine stopped the request "
                                            f"(shutting down)", code=ENGINE_DEAD)
                produced += len(completion.token_ids)
                finished = output.finished
                text = completion.text
                if strip_leading:
                    text = text.lstrip()
                    strip_leading = not text
                yield GenerationDelta(
                    text=text,
                    finish_reason=(completion.finish_reason or "stop") if finished else None,
                    usage=Usage(len(ids), produced) if finished else None,
                )

    async def check_health(self) -> None:
        engine = self._engine_or_raise()
        await engine.check_health()

    async def adapter_tiers(self) -> dict[str, str]:
        """Each adapter's tier on this engine: 'warm' (in its LoRA cache) or 'cold' (on disk); see coe/experts/lora.py."""
        if not self.adapters.names:
            return {}
        loaded = await self._engine_or_raise().list_loras()
        return self.adapters.tiers(loaded)

    async def shutdown(self) -> None:
        self.close()

    def close(self) -> None:
        """Synchronous shutdown, for `__del__` paths where no event loop can be awaited."""
        engine, self._engine = self._engine, None
        shared, self._shared = self._shared, None
        if shared is not None:
            shared.close()
        elif engine is not None:
            engine.shutdown()
