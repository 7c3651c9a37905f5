"""Build the FastAPI application; its state is wired in by the caller (see `coe.serve.ingress`)."""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager

from fastapi import FastAPI

from coe.api.errors import install_error_handlers
from coe.api.routes import router
from coe.api.state import ApiState


def build_app(state: ApiState) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        # Clients get ready before the first request (Ray Serve runs this before the replica takes
        # traffic): a remote expert's first answer must not pay for importing its client library.
        await asyncio.gather(*(expert.start() for expert in state.experts.values()))
        yield
        await asyncio.gather(*(expert.shutdown() for expert in state.experts.values()), return_exceptions=True)

    app = FastAPI(title="CoE", description="Composition of experts behind one OpenAI-compatible API", lifespan=lifespan)
    app.state.coe = state
    install_error_handlers(app)
    app.include_router(router)
    return app
