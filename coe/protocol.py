"""OpenAI chat-completions wire types, and the internal request/result types experts speak.

Wire models accept unknown fields (clients send many vendor extensions) and report them once in the
log instead of answering 422; the fields CoE does read are validated strictly, so a bad `temperature`
is a clear 400 rather than a surprise from an engine.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

log = logging.getLogger(__name__)

Role = Literal["system", "developer", "user", "assistant"]


class OpenAIModel(BaseModel):
    model_config = ConfigDict(extra="allow")

    @model_validator(mode="after")
    def _log_ignored(self) -> "OpenAIModel":
        if self.model_extra:
            log.info("ignoring unsupported fields: %s", sorted(self.model_extra))
        return self


class TextPart(BaseModel):
    type: Literal["text"]
    text: str


class ChatMessage(OpenAIModel):
    role: Role
    content: str | list[TextPart]
    name: str | None = None

    @field_validator("content", mode="wrap")
    @classmethod
    def _one_content_error(cls, value: Any, handler: Any) -> Any:
        # Without this, pydantic reports one error per union branch ("content.str", "content.list[...]").
        try:
            return handler(value)
        except ValueError:
            raise ValueError("content must be a string or a list of {'type': 'text', 'text': ...} parts") from None

    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content)


class StreamOptions(BaseModel):
    include_usage: bool = False


class ChatCompletionRequest(OpenAIModel):
    model: str = Field(..., min_length=1)
    messages: list[ChatMessage] = Field(..., min_length=1)
    temperature: float = Field(1.0, ge=0.0, le=2.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    stop: str | list[str] | None = None
    seed: int | None = None
    n: int = Field(1, ge=1, le=1, description="Only one choice per request is supported.")
    presence_penalty: float = Field(0.0, ge=-2.0, le=2.0)
    frequency_penalty: float = Field(0.0, ge=-2.0, le=2.0)
    ignore_eos: bool = Field(False, description="vLLM's extension: generate max_tokens even past end-of-sequence "
                             "(benchmarks: the same work per request); local experts only.")
    stream: bool = False
    stream_options: StreamOptions | None = None
    user: str | None = None

    @field_validator("stop")
    @classmethod
    def _stop_list(cls, value: str | list[str] | None) -> list[str] | None:
        if value is None:
            return None
        stops = [value] if isinstance(value, str) else value
        if len(stops) > 4 or any(not s for s in stops):
            raise ValueError("'stop' takes at most 4 non-empty strings")
        return stops

    @field_validator("messages")
    @classmethod
    def _has_a_user_turn(cls, messages: list[ChatMessage]) -> list[ChatMessage]:
        if not any(m.role == "user" for m in messages):
            raise ValueError("messages need at least one 'user' turn")
        return messages

    def token_budget(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens


@dataclass(frozen=True)
class SamplingSettings:
    temperature: float = 1.0
    top_p: float = 1.0
    max_tokens: int | None = None
    stop: tuple[str, ...] = ()
    seed: int | None = None
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    ignore_eos: bool = False


@dataclass(frozen=True)
class GenerationRequest:
    """What the ingress hands an expert: plain data, cheap to pickle across Ray processes."""

    request_id: str
    messages: tuple[dict[str, str], ...]
    sampling: SamplingSettings
    continue_final: bool = False
    """The last message is a partial assistant answer to continue, not a finished turn (a stream
    resumed on another expert after its first one failed mid-answer)."""
    adapter: str | None = None
    """The LoRA adapter expert that answers on the engine this goes to; None: the engine's own weights."""

    @classmethod
    def from_wire(cls, req: ChatCompletionRequest, request_id: str) -> "GenerationRequest":
        return cls(
            request_id=request_id,
            messages=tuple({"role": m.role, "content": m.text()} for m in req.messages),
            sampling=SamplingSettings(
                temperature=req.temperature,
                top_p=req.top_p,
                max_tokens=req.token_budget(),
                stop=tuple(req.stop or ()),
                seed=req.seed,
                presence_penalty=req.presence_penalty,
                frequency_penalty=req.frequency_penalty,
                ignore_eos=req.ignore_eos,
            ),
        )


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def to_wire(self) -> dict[str, int]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
        }


def elapsed_ms(since: float) -> float:
    """Milliseconds from a `time.perf_counter()` reading until now: the unit of GenerationResult.timings."""
    return (time.perf_counter() - since) * 1000.0


@dataclass(frozen=True)
class GenerationResult:
    text: str
    finish_reason: str
    usage: Usage
    # Milliseconds per hop, added by each layer the result passes on its way back ("expert", "handle"):
    # the answer's Server-Timing header (coe/api/server_timing.py). Not part of the answer's identity.
    timings: dict[str, float] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class GenerationDelta:
    """One streamed piece; the last one carries `finish_reason` and `usage`."""

    text: str
    finish_reason: str | None = None
    usage: Usage | None = None


@dataclass
class CompletionIds:
    """Identity shared by every chunk of one response."""

    model: str
    id: str = field(default_factory=lambda: f"chatcmpl-{uuid.uuid4().hex}")
    created: int = field(default_factory=lambda: int(time.time()))


def completion_body(ids: CompletionIds, result: GenerationResult) -> dict[str, Any]:
    return {
        "id": ids.id,
        "object": "chat.completion",
        "created": ids.created,
        "model": ids.model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": result.text},
                "finish_reason": result.finish_reason,
                "logprobs": None,
            }
        ],
        "usage": result.usage.to_wire(),
    }


def chunk_body(
    ids: CompletionIds,
    delta: dict[str, str],
    finish_reason: str | None = None,
    usage: Usage | None = None,
    *,
    with_choice: bool = True,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": ids.id,
        "object": "chat.completion.chunk",
        "created": ids.created,
        "model": ids.model,
        "choices": (
            [{"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}]
            if with_choice
            else []
        ),
    }
    if usage is not None:
        body["usage"] = usage.to_wire()
    return body
