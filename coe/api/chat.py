"""The chat-completions service: model name -> expert, wire request -> expert call -> wire response.

Every call goes through the expert's failover chain (coe.failover: retries, breaker, fallbacks, the
router's next choices). Streaming pulls the first piece before the HTTP status is sent, so a request
every expert refuses (an oversized prompt, say) still gets a proper 4xx instead of a 200 with a broken
stream. A failure after the first byte is continued on the chain; if nothing can continue, the stream
ends with finish_reason "incomplete", an SSE error event and `[DONE]`.

`charge`, when given (the per-key token budget, coe.api.shared_state), is called once with the tokens
an answer used: right after a completion's body is built, and when a stream ends for any reason.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable

from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import ValidationError

from coe.api.errors import validation_to_error
from coe.api.server_timing import HEADER as TIMING_HEADER, header_value
from coe.api.state import ApiState
from coe.errors import CoEError, InvalidRequest, ModelNotFound
from coe.experts.base import ExpertBackend
from coe.failover.caller import Attempts
from coe.routing.knobs import is_routing_model
from coe.routing.router import RoutingDecision
from coe.protocol import (
    ChatCompletionRequest,
    CompletionIds,
    GenerationDelta,
    GenerationRequest,
    Usage,
    chunk_body,
    completion_body,
    elapsed_ms,
)

log = logging.getLogger(__name__)
INCOMPLETE = "incomplete"  # finish_reason of an answer cut short that no expert could continue


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


def routing_headers(expert_id: str, decision: RoutingDecision | None, attempts: Attempts | None = None) -> dict[str, str]:
    headers = {"x-coe-expert": expert_id}
    if decision is not None:
        headers["x-coe-category"] = decision.category
        headers["x-coe-confidence"] = f"{decision.confidence:.4f}"
        headers["x-coe-fallback"] = str(decision.fallback).lower()
    if attempts is not None and attempts.failed:
        headers["x-coe-failed-attempts"] = ",".join(f"{e}:{err.status_code}" for e, err in attempts.failed)
    return headers


def _sse(payload: dict | str) -> bytes:
    text = payload if isinstance(payload, str) else json.dumps(payload, separators=(",", ":"))
    return f"data: {text}\n\n".encode()


def _metadata(decision: RoutingDecision | None, attempts: Attempts) -> dict:
    coe = decision.to_metadata() if decision else {}
    if attempts.failed or decision:
        coe.update(attempts.to_metadata())
    return {"coe": coe} if coe else {}


async def complete(
    state: ApiState,
    req: ChatCompletionRequest,
    conversation_id: str | None = None,
    charge: Callable[[int], None] | None = None,
) -> JSONResponse | StreamingResponse:
    generation = GenerationRequest.from_wire(req, request_id=f"coe-{uuid.uuid4().hex}")
    timings: dict[str, float] = {}
    started = time.perf_counter()
    expert_id, decision = await choose_expert(state, req, generation.messages, conversation_id)
    if decision is not None:
        timings["route"] = elapsed_ms(started)
    resolve_expert(state, expert_id)
    caller = state.caller()
    chain = caller.chain(expert_id, decision.ranking if decision else ())
    attempts = Attempts()
    called = time.perf_counter()
    if not req.stream:
        answered_by, result = await caller.complete(chain, generation, attempts)
        timings["call"] = elapsed_ms(called)
        body = {**completion_body(CompletionIds(model=answered_by), result), **_metadata(decision, attempts)}
        if charge is not None:
            charge(result.usage.total_tokens)
        headers = {**routing_headers(answered_by, decision, attempts), TIMING_HEADER: header_value({**timings, **result.timings})}
        return JSONResponse(body, headers=headers)

    # The first piece is awaited before any byte is sent: a request every expert refuses still gets a 4xx.
    answered_by, first, rest = await caller.open_stream(chain, generation, attempts)
    timings["first"] = elapsed_ms(called)
    pieces = caller.stream(chain, generation, answered_by, first, rest, attempts)
    include_usage = bool(req.stream_options and req.stream_options.include_usage)
    return StreamingResponse(
        _sse_events(CompletionIds(model=answered_by), pieces, include_usage, decision, attempts, charge),
        media_type="text/event-stream",
        headers={**routing_headers(answered_by, decision, attempts), "cache-control": "no-cache",
                 TIMING_HEADER: header_value(timings)},
    )


async def _sse_events(
    ids: CompletionIds,
    pieces: AsyncIterator[GenerationDelta],
    include_usage: bool,
    decision: RoutingDecision | None,
    attempts: Attempts,
    charge: Callable[[int], None] | None = None,
) -> AsyncIterator[bytes]:
    usage: Usage | None = None
    sent = 0  # pieces of text generated: the cost of a stream cut short before its usage came
    try:
        yield _sse({**chunk_body(ids, {"role": "assistant", "content": ""}), **_metadata(decision, attempts)})
        try:
            async for delta in pieces:
                if delta.text:
                    sent += 1
                    yield _sse(chunk_body(ids, {"content": delta.text}))
                if delta.finish_reason is not None:
                    usage = delta.usage
                    final = chunk_body(ids, {}, delta.finish_reason, delta.usage)
                    if len(attempts.served_by) > 1 or attempts.failed:  # name every expert that served this answer
                        final.update(_metadata(None, attempts))
                    yield _sse(final)
                    if include_usage and delta.usage is not None:
                        yield _sse(chunk_body(ids, {}, usage=delta.usage, with_choice=False))
                    break
        except CoEError as err:
            # Nothing could finish the answer: say so, so a cut answer never looks complete.
            log.warning("stream %s ended by error: %s", ids.id, err.message)
            yield _sse({**chunk_body(ids, {}, INCOMPLETE), **_metadata(None, attempts)})
            yield _sse(err.to_body())
        yield _sse("[DONE]")
    finally:
        # Also when the client leaves mid-stream (the generator is closed). Without the engine's usage,
        # one piece is about one token (as coe.failover.caller.continuation counts) and the prompt is
        # unknown here, so a stream cut short is charged at least what it generated.
        if charge is not None:
            charge(usage.total_tokens if usage is not None else sent)
