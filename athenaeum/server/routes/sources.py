"""`/sources/{key}/{name}`: the original file behind a citation, through a signed, expiring link
(athenaeum.server.sources). Public: the signature is the credential, so a browser opens it."""

from __future__ import annotations

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse

from athenaeum.errors import NotFoundError
from athenaeum.server.deps import EngineDep, source_links
from athenaeum.server.schemas import error_responses
from athenaeum.server.sources import SOURCES_ROUTE, LocalSources, content_disposition

router = APIRouter(tags=["sources"])


@router.api_route(
    SOURCES_ROUTE,
    methods=["GET"],
    name="getSourceFile",
    summary="Open a cited document's original file",
    description="The file a search result's `source_url` names, while its link is valid. Needs "
    "no bearer token: the link's signature and expiry are the credential.",
    response_class=FileResponse,
    responses={
        200: {"content": {"application/pdf": {}}, "description": "The file."},
        **error_responses(403, 404),
    },
)
async def get_source_file(
    key: str,
    name: str,
    request: Request,
    engine: EngineDep,
    expires: str = Query(default="", description="When the link expires (Unix seconds)."),
    signature: str = Query(default="", description="The link's signature."),
) -> FileResponse:
    links = source_links(request, engine)
    if not isinstance(links, LocalSources):
        raise NotFoundError("this server links to source files elsewhere, not through /sources")
    source, path = await run_in_threadpool(links.open, key, expires, signature)
    if name != source.name:
        raise NotFoundError("the link names another file")
    return FileResponse(
        path,
        media_type=source.media_type,
        headers={
            "Content-Disposition": content_disposition(source.name),
            "Cache-Control": "private, no-store",
            "X-Content-Type-Options": "nosniff",
        },
    )
