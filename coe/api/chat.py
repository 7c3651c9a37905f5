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
from coe.routing.knobs import is_routing_model
from coe.routing.router import RoutingDecision
from coe.protocol import (
    ChatCompletionRequest,
    CompletionIds,
    GenerationDelta,
    GenerationRequest,
    chunk_body,
    completion_body,
)

log = logging.getLogger(__name__)


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
    expert = state.experts.get(model)
    if expert is None:
        raise ModelNotFound(
            f"unknown model '{model}'; this server has: {', '.join(sorted(state.experts))}"
            + (" and 'coe' (automatic routing)" if state.router else "")
        )
    return expert


async def choose_expert(
    state: ApiState, req: ChatCompletionRequest, messages: tuple[dict[str, str], ...], conversation_id: str | None
) -> tuple[str, RoutingDecision | None]:
    if not is_routing_model(req.model):
        return req.model, None
    if state.router is None:
        raise ModelNotFound(
            f"automatic routing (model '{req.model}') needs a trained router: run `coe train-router` and set "
            f"router.artifact in coe.yaml; or name an expert: {', '.join(sorted(state.experts))}"
        )
    decision = await state.router.route(messages, req.model, conversation_id)
    return decision.expert, decision


def routing_headers(expert_id: str, decision: RoutingDecision | None) -> dict[str, str]:
    headers = {"x-coe-expert": expert_id}
    if decision is not None:
        headers["x-coe-category"] = decision.category
        headers["x-coe-confidence"] = f"{decision.confidence:.4f}"
        headers["x-coe-fallback"] = str(decision.fallback).lower()
    return headers


def _sse(payload: dict | str) -> bytes:
    text = payload if isinstance(payload, str) else json.dumps(payload, separators=(",", ":"))
    return f"data: {text}\n\n".encode()


async def complete(
    state: ApiState, req: ChatCompletionRequest, conversation_id: str | None = None
) -> JSONResponse | StreamingResponse:
    generation = GenerationRequest.from_wire(req, request_id=f"coe-{uuid.uuid4().hex}")
    expert_id, decision = await choose_expert(state, req, generation.messages, conversation_id)
    expert = resolve_expert(state, expert_id)
    ids = CompletionIds(model=expert_id)
    headers = routing_headers(expert_id, decision)
    metadata = {"coe": decision.to_metadata()} if decision else {}
    if not req.stream:
        result = await expert.chat(generation)
        return JSONResponse({**completion_body(ids, result), **metadata}, headers=headers)

    pieces = expert.chat_stream(generation).__aiter__()
    first = await pieces.__anext__()  # raises here, before any byte is sent, if the expert refuses
    include_usage = bool(req.stream_options and req.stream_options.include_usage)
    return StreamingResponse(
        _sse_events(ids, first, pieces, include_usage, metadata),
        media_type="text/event-stream",
        headers={**headers, "cache-control": "no-cache"},
    )


async def _sse_events(
    ids: CompletionIds,
    first: GenerationDelta,
    rest: AsyncIterator[GenerationDelta],
    include_usage: bool,
    metadata: dict,
) -> AsyncIterator[bytes]:
    yield _sse({**chunk_body(ids, {"role": "assistant", "content": ""}), **metadata})
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
