"""Build the FastAPI application; its state is wired in by the caller (see `coe.serve.ingress`)."""

from __future__ import annotations

from fastapi import FastAPI

from coe.api.errors import install_error_handlers
from coe.api.routes import router
from coe.api.state import ApiState


def build_app(state: ApiState) -> FastAPI:
    app = FastAPI(title="CoE", description="Composition of experts behind one OpenAI-compatible API")
    app.state.coe = state
    install_error_handlers(app)
    app.include_router(router)
    return app
