"""`/sources/{key}`: the original file behind a citation, through a signed, expiring link
(athenaeum.server.http.sources). Public: the signature is the credential, so a browser opens it."""

from __future__ import annotations

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from starlette.responses import Response

from athenaeum.server.http.deps import IndexBackendDep, index_links
from athenaeum.server.http.schemas import error_responses
from athenaeum.server.http.sources import SOURCES_ROUTE

router = APIRouter(tags=["sources"])


@router.get(
    SOURCES_ROUTE,
    name="getSourceFile",
    summary="Open a cited document's original file",
    description="The file a search result's `source_url` names, while the link is valid: the "
    "file itself (`athenaeum serve`), or a redirect to a short-lived S3 presigned URL (on AWS). "
    "Needs no bearer token: the link's signature and expiry are its credential.",
    response_class=Response,
    responses={
        200: {"content": {"application/pdf": {}}, "description": "The file."},
        302: {"description": "On AWS: where to download the file (an S3 presigned URL)."},
        **error_responses(403, 404),
    },
)
async def get_source_file(
    key: str,
    request: Request,
    backend: IndexBackendDep,
    expires: str = Query(
        default="", description="Links of the earlier form: when it expires (Unix seconds)."
    ),
    signature: str = Query(default="", description="Links of the earlier form: its signature."),
) -> Response:
    # In the thread pool: checking the file hashes it (locally) or asks the bucket (S3).
    return await run_in_threadpool(index_links(request, backend).open_path, key, expires, signature)
