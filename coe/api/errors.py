"""The single path from any exception to an OpenAI-style error response."""

from __future__ import annotations

import logging
import math

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException

from coe.errors import CoEError, InvalidRequest

log = logging.getLogger(__name__)


def error_response(err: CoEError) -> JSONResponse:
    headers = {"retry-after": str(max(1, math.ceil(err.retry_after_s)))} if err.retry_after_s else None
    return JSONResponse(err.to_body(), status_code=err.status_code, headers=headers)


def validation_to_error(err: ValidationError | RequestValidationError) -> InvalidRequest:
    """Name the first bad field the way OpenAI does (`param`), and list every problem in the message."""
    problems = []
    first_param: str | None = None
    for item in err.errors():
        loc = [str(p) for p in item.get("loc", ()) if p != "body"]
        where = ".".join(loc) or "body"
        first_param = first_param or where
        problems.append(f"{where}: {item.get('msg', 'invalid')}")
    return InvalidRequest("invalid request: " + "; ".join(problems), param=first_param)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(CoEError)
    async def _coe(_: Request, err: CoEError) -> JSONResponse:
        return error_response(err)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, err: RequestValidationError) -> JSONResponse:
        return error_response(validation_to_error(err))

    @app.exception_handler(HTTPException)
    async def _http(_: Request, err: HTTPException) -> JSONResponse:
        kind = CoEError(str(err.detail))
        kind.status_code = err.status_code
        kind.error_type = "invalid_request_error" if err.status_code < 500 else "internal_error"
        return error_response(kind)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, err: Exception) -> JSONResponse:
        log.exception("unhandled error")
        return error_response(CoEError(f"internal error: {type(err).__name__}"))
