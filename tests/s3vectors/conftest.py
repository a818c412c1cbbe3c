"""The S3 Vectors backend's fixtures: the SciFact slice published into the stand-in of the
service (tests/s3vectors/standin.py), and the query side a server in s3vectors mode reads."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from athenaeum.bundle import load_bundle, write_bundle
from athenaeum.bundle.query_side import copy_query_side
from athenaeum.retrieval.engine import SearchEngine
from athenaeum.s3vectors.publish import VectorIndex, publish
from tests.s3vectors.standin import MemoryState, S3VectorsStandIn

VECTOR_INDEX = "s3vectors://library-vectors/athenaeum"
TARGET = VectorIndex.parse(VECTOR_INDEX)


def published(engine: SearchEngine) -> S3VectorsStandIn:
    """A stand-in holding `engine`'s bundle, as `athenaeum publish` puts it there."""
    standin = S3VectorsStandIn()
    publish(engine.bundle, TARGET, client=standin, state=MemoryState())
    assert len(standin.vectors) == engine.facts.chunks
    return standin


@pytest.fixture(scope="session")
def shelved_bundle(scifact_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The SciFact slice with what SciFact lacks, so that every filter has something to tell
    apart: front matter (a year, a list of topics) and page spans. The same chunk texts,
    vectors, BM25 index and query encoder; nothing is embedded again."""
    source = load_bundle(scifact_bundle)
    manifest = source.manifest
    documents = [
        d.model_copy(
            update={
                "metadata": {
                    "year": 2019 + i % 3,
                    "topics": [["biology", "Medicine"], ["medicine"], ["biology"], ["biology"]][
                        i % 4
                    ],
                }
            }
        )
        for i, d in enumerate(manifest.documents)
    ]
    chunks = [
        dataclasses.replace(c, page_start=1 + i % 5, page_end=1 + i % 5 + i % 2)
        for i, c in enumerate(source.chunks)
    ]
    out = tmp_path_factory.mktemp("shelved") / "bundle"
    write_bundle(
        out,
        embedding=manifest.embedding,
        chunking=manifest.chunking,
        documents=documents,
        chunks=chunks,
        vectors=np.asarray(source.vectors),
        bm25_index=source.bm25,
        encoder_dir=source.encoder_dir,
    )
    return out


@pytest.fixture(scope="session")
def shelved_engine(shelved_bundle: Path) -> SearchEngine:
    return SearchEngine.load(shelved_bundle)


@pytest.fixture(scope="session")
def shelved_standin(shelved_engine: SearchEngine) -> S3VectorsStandIn:
    return published(shelved_engine)


@pytest.fixture(scope="session")
def query_side(shelved_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The query side of the shelved bundle alone: its manifest and query encoder."""
    return copy_query_side(shelved_bundle, tmp_path_factory.mktemp("query-side") / "index")
