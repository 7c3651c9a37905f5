"""A remote expert: a hosted model (or any OpenAI-compatible server) reached through LiteLLM.

It runs inside the ingress process: there is no engine to own, so a Ray deployment would only add a
hop. Upstream failures are translated into CoE errors so a client sees a 4xx/5xx with a clear body,
never a LiteLLM stack trace.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import Any

from coe.config import RemoteExpert
from coe.errors import (
    CoEError,
    ContentFiltered,
    ContextLengthExceeded,
    ExpertUnavailable,
    InvalidRequest,
    UpstreamError,
    UpstreamRateLimited,
)
from coe.experts.base import ExpertBackend
from coe.protocol import GenerationDelta, GenerationRequest, GenerationResult, SamplingSettings, Usage


def import_litellm() -> Any:
    # Without this LiteLLM fetches its price map from the internet at import time.
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    litellm.suppress_debug_info = True
    return litellm


CONTENT_FILTER_CODES = ("content_filter", "content_policy_violation")


def translate_error(err: Exception, expert_id: str) -> CoEError:
    litellm = import_litellm()
    text = f"remote expert '{expert_id}': {getattr(err, 'message', None) or err}"
    if isinstance(err, litellm.ContextWindowExceededError):
        return ContextLengthExceeded(text)
    # LiteLLM maps some providers' refusals to ContentPolicyViolationError and leaves others (an
    # OpenAI-compatible server's 400 with code content_filter / content_policy_violation) as BadRequest.
    if isinstance(err, litellm.ContentPolicyViolationError) or getattr(err, "code", None) in CONTENT_FILTER_CODES:
        return ContentFiltered(text)
    if isinstance(err, litellm.RateLimitError):
        limited = UpstreamRateLimited(text)
        limited.retry_after_s = _retry_after(err)
        return limited
    if isinstance(err, (litellm.APIConnectionError, litellm.Timeout, litellm.ServiceUnavailableError)):
        return ExpertUnavailable(text)
    if isinstance(err, (litellm.BadRequestError, litellm.UnprocessableEntityError)):
        return InvalidRequest(text)
    return UpstreamError(text)


def _retry_after(err: Exception) -> float | None:
    """The upstream's Retry-After in seconds (a number of seconds; dates are rare and ignored)."""
    headers = getattr(getattr(err, "response", None), "headers", None) or {}
    try:
        value = float(headers.get("retry-after"))
    except (TypeError, ValueError):
        return None
    return value if value > 0 else None


class LiteLLMBackend(ExpertBackend):
    def __init__(self, expert_id: str, remote: RemoteExpert) -> None:
        self.expert_id = expert_id
        self.remote = remote
        self._started = False

    async def start(self) -> None:
        """Import LiteLLM and run one mocked call of each kind, so its lazily imported provider code
        is loaded at startup: the first real request is then as fast as the second (measured: importing
        LiteLLM takes 3-10 s on 2 busy cores, a first non-mocked call another 0.2 s). Nothing leaves
        the process: `mock_response` answers before any connection is made."""
        if self._started:
            return
        litellm = import_litellm()
        probe = GenerationRequest("coe-warm-up", ({"role": "user", "content": "warm-up"},), SamplingSettings(max_tokens=1))
        await litellm.acompletion(**self._kwargs(probe, stream=False), mock_response="ok")
        async for _ in await litellm.acompletion(**self._kwargs(probe, stream=True), mock_response="ok"):
            pass
        self._started = True

    def _kwargs(self, request: GenerationRequest, stream: bool) -> dict[str, Any]:
        s = request.sampling
        kwargs: dict[str, Any] = {
            "model": self.remote.model,
            "messages": [dict(m) for m in request.messages],
            "temperature": s.temperature,
            "top_p": s.top_p,
            "timeout": self.remote.timeout_s,
            "stream": stream,
            # No hidden retries inside LiteLLM or the OpenAI client: a retry is CoE's decision to make.
            "num_retries": 0,
            "max_retries": 0,
        }
        if self.remote.api_base:
            kwargs["api_base"] = self.remote.api_base
        # OpenAI-compatible servers without auth still need a non-empty key in the OpenAI client.
        kwargs["api_key"] = self.remote.api_key() or ("none" if self.remote.api_base else None)
        optional = {"max_tokens": s.max_tokens, "seed": s.seed, "stop": list(s.stop) or None}
        kwargs.update({k: v for k, v in optional.items() if v is not None})
        if s.presence_penalty:
            kwargs["presence_penalty"] = s.presence_penalty
        if s.frequency_penalty:
            kwargs["frequency_penalty"] = s.frequency_penalty
        if stream:
            kwargs["stream_options"] = {"include_usage": True}
        return kwargs

    async def chat(self, request: GenerationRequest) -> GenerationResult:
        litellm = import_litellm()
        try:
            response = await litellm.acompletion(**self._kwargs(request, stream=False))
        except Exception as err:
            raise translate_error(err, self.expert_id) from None
        choice = response.choices[0]
        usage = response.usage
        return GenerationResult(
            text=choice.message.content or "",
            finish_reason=choice.finish_reason or "stop",
            usage=Usage(usage.prompt_tokens, usage.completion_tokens),
        )

    async def chat_stream(self, request: GenerationRequest) -> AsyncIterator[GenerationDelta]:
        litellm = import_litellm()
        finish: str | None = None
        usage: Usage | None = None
        try:
            stream = await litellm.acompletion(**self._kwargs(request, stream=True))
            async for chunk in stream:
                if getattr(chunk, "usage", None):
                    usage = Usage(chunk.usage.prompt_tokens, chunk.usage.completion_tokens)
                if not chunk.choices:
                    continue
                choice = chunk.choices[0]
                finish = choice.finish_reason or finish
                if choice.delta.content:
                    yield GenerationDelta(text=choice.delta.content)
        except Exception as err:
            raise translate_error(err, self.expert_id) from None
        if finish is None:  # the upstream closed the stream early (no finish_reason, e.g. no [DONE])
            raise UpstreamError(f"remote expert '{self.expert_id}': the stream ended before the answer finished",
                                code="stream_incomplete")
        yield GenerationDelta(text="", finish_reason=finish, usage=usage or Usage(0, 0))
