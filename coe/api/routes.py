"""HTTP routes: each only translates HTTP to a service call and back."""

from __future__ import annotations

import asyncio
import time

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from coe.api.chat import complete, parse_request
from coe.api.server_timing import HEADER as TIMING_HEADER, appended
from coe.api.state import ApiState
from coe.errors import CoEError, ModelNotFound, RequestTooLarge
from coe.experts.base import ExpertInfo
from coe.protocol import elapsed_ms

router = APIRouter()
STARTED = int(time.time())


def _state(request: Request) -> ApiState:
    return request.app.state.coe


async def _read_limited(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise RequestTooLarge(f"request body is {declared} bytes; the limit is {limit}")
    body = bytearray()
    async for part in request.stream():
        body += part
        if len(body) > limit:
            raise RequestTooLarge(f"request body exceeds the limit of {limit} bytes")
    return bytes(body)


@router.post("/v1/chat/completions")
async def chat_completions(request: Request) -> Response:
    started = time.perf_counter()
    state = _state(request)
    gate = state.admission()
    gate.enter()
    try:
        raw = await _read_limited(request, state.server.max_request_bytes)
        response = await complete(state, parse_request(raw), request.headers.get("x-coe-conversation-id"),
                                  getattr(request.state, "charge_tokens", None))  # set by SharedState
        response.headers[TIMING_HEADER] = appended(response.headers.get(TIMING_HEADER), "ingress", elapsed_ms(started))
    except BaseException:
        gate.leave()
        raise
    if isinstance(response, StreamingResponse):
        response.body_iterator = gate.hold_while(response.body_iterator)
    else:
        gate.leave()
    return response


def _model_card(info: ExpertInfo, tier: str | None = None) -> dict:
    if tier is None:  # not pooled: a dedicated engine always holds it
        tier = "remote" if info.kind == "remote" else "hot"
    return {
        "id": info.id,
        "object": "model",
        "created": STARTED,
        "owned_by": "coe",
        "coe": {
            "kind": info.kind,
            "description": info.description,
            "is_base_model": info.is_base_model,
            "location": info.location,
            "tier": tier,
            **({"moe_routing": info.moe_routing} if info.moe_routing else {}),
        },
    }


@router.get("/v1/models")
async def list_models(request: Request) -> JSONResponse:
    state = _state(request)
    tiers = await state.tiers()
    cards = [_model_card(info, tiers.get(info.id)) for info in state.infos.values()]
    if state.router is not None:
        artifact = state.router.router.artifact
        cards.insert(0, {"id": "coe", "object": "model", "created": STARTED, "owned_by": "coe",
                         "coe": {"kind": "router", "version": artifact.version, "categories": artifact.categories,
                                 "modes": sorted(artifact.maps), "general_expert": artifact.general_expert}})
    return JSONResponse({"object": "list", "data": cards})


@router.get("/v1/models/{model_id:path}")
async def retrieve_model(model_id: str, request: Request) -> JSONResponse:
    state = _state(request)
    info = state.infos.get(model_id)
    if info is None:
        raise ModelNotFound(f"unknown model '{model_id}'")
    return JSONResponse(_model_card(info, (await state.tiers()).get(model_id)))


@router.get("/health")
async def health(request: Request) -> JSONResponse:
    state = _state(request)

    async def probe(expert_id: str) -> tuple[str, str]:
        try:
            await asyncio.wait_for(state.experts[expert_id].check_health(), timeout=10)
            return expert_id, "ok"
        except (CoEError, asyncio.TimeoutError) as err:
            return expert_id, f"unavailable: {getattr(err, 'message', 'health check timed out')}"

    results = dict(await asyncio.gather(*(probe(e) for e in state.experts)))
    healthy = all(v == "ok" for v in results.values())
    return JSONResponse(
        {"status": "ok" if healthy else "degraded", "experts": results},
        status_code=200 if healthy else 503,
    )
