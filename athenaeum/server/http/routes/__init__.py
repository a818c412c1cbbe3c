"""The HTTP routes, one module per concern, and `mount`, which puts them on the app.

The OpenAI-compatible routes (models, search, chat) are one router mounted twice: at the root
and under `/v1`, the prefix the OpenAI SDK puts in front of every path. Operation ids are the
route names, with `V1` added under `/v1`, so both stay stable for generated clients.
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute
from starlette.routing import Route

from athenaeum.server.http.routes import chat, front, meta, oauth, search, sources
from athenaeum.server.http.routes.mcp import MCPEndpoint
from athenaeum.server.index.provider import EngineProvider
from athenaeum.server.settings import Settings

V1 = "/v1"

# Mounted at "" and at /v1.
openai_router = APIRouter()
openai_router.include_router(meta.models_router)
openai_router.include_router(search.router)
openai_router.include_router(chat.router)

# Mounted once, at the root.
root_router = APIRouter()
root_router.include_router(front.router)
root_router.include_router(meta.router)
root_router.include_router(search.chunks_router)
root_router.include_router(sources.router)
root_router.include_router(oauth.router)


def _operation_id(suffix: str) -> Callable[[APIRoute], str]:
    def operation_id(route: APIRoute) -> str:
        return route.name + suffix

    return operation_id


def mount(app: FastAPI, settings: Settings, provider: EngineProvider) -> None:
    app.include_router(openai_router, generate_unique_id_function=_operation_id(""))
    app.include_router(openai_router, prefix=V1, generate_unique_id_function=_operation_id("V1"))
    app.include_router(root_router, generate_unique_id_function=_operation_id(""))
    app.router.routes.append(
        Route(
            "/mcp",
            endpoint=MCPEndpoint(settings, provider, app.state.source_linker),
            include_in_schema=False,
        )
    )
