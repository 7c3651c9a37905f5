"""The chat-completions service: model name -> expert, wire request -> expert call -> wire response.

Streaming pulls the first piece from the expert before the HTTP status is sent, so a request the
expert refuses (an oversized prompt, say) still gets a proper 4xx instead of a 200 with a broken
stream. Errors after the first byte are sent as an SSE error event followed by `[DONE]`.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import AsyncIterator

from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import ValidationError

from coe.api.errors import validation_to_error
from coe.api.state import ApiState
from coe.errors import CoEError, InvalidRequest, ModelNotFound
from coe.experts.base import ExpertBackend
from coe.protocol import (
    ChatCompletionRequest,
    CompletionIds,
    GenerationDelta,
    GenerationRequest,
    chunk_body,
    completion_body,
)

log = logging.getLogger(__name__)

ROUTING_MODELS = ("coe",)


def parse_request(raw: bytes) -> ChatCompletionRequest:
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise InvalidRequest(f"body is not valid JSON: {err}", code="invalid_json") from None
    if not isinstance(data, dict):
        raise InvalidRequest("body must be a JSON object")
    try:
        return ChatCompletionRequest.model_validate(data)
    except ValidationError as err:
        raise validation_to_error(err) from None


def resolve_expert(state: ApiState, model: str) -> ExpertBackend:
    if model in ROUTING_MODELS or model.startswith("coe:"):
        raise ModelNotFound(
            f"automatic routing (model '{model}') is not enabled on this server yet; "
            f"name an expert instead: {', '.join(sorted(state.experts))}"
        )
    expert = state.experts.get(model)
    if expert is None:
        raise ModelNotFound(
            f"unknown model '{model}'; this server has: {', '.join(sorted(state.experts))}"
        )
    return expert


def _sse(payload: dict | str) -> bytes:
    text = payload if isinstance(payload, str) else json.dumps(payload, separators=(",", ":"))
    return f"data: {text}\n\n".encode()


async def complete(state: ApiState, req: ChatCompletionRequest) -> JSONResponse | StreamingResponse:
    expert = resolve_expert(state, req.model)
    generation = GenerationRequest.from_wire(req, request_id=f"coe-{uuid.uuid4().hex}")
    ids = CompletionIds(model=req.model)
    headers = {"x-coe-expert": req.model}
    if not req.stream:
        result = await expert.chat(generation)
        return JSONResponse(completion_body(ids, result), headers=headers)

    pieces = expert.chat_stream(generation).__aiter__()
    first = await pieces.__anext__()  # raises here, before any byte is sent, if the expert refuses
    include_usage = bool(req.stream_options and req.stream_options.include_usage)
    return StreamingResponse(
        _sse_events(ids, first, pieces, include_usage),
        media_type="text/event-stream",
        headers={**headers, "cache-control": "no-cache"},
    )


async def _sse_events(
    ids: CompletionIds,
    first: GenerationDelta,
    rest: AsyncIterator[GenerationDelta],
    include_usage: bool,
) -> AsyncIterator[bytes]:
    yield _sse(chunk_body(ids, {"role": "assistant", "content": ""}))
    delta: GenerationDelta | None = first
    try:
        while delta is not None:
            if delta.finish_reason is not None:
                if delta.text:
                    yield _sse(chunk_body(ids, {"content": delta.text}))
                yield _sse(chunk_body(ids, {}, delta.finish_reason, delta.usage))
                if include_usage and delta.usage is not None:
                    yield _sse(chunk_body(ids, {}, usage=delta.usage, with_choice=False))
                break
            if delta.text:
                yield _sse(chunk_body(ids, {"content": delta.text}))
            delta = await anext(rest, None)
    except CoEError as err:
        log.warning("stream %s ended by error: %s", ids.id, err.message)
        yield _sse(err.to_body())
    yield _sse("[DONE]")
