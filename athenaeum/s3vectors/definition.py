"""The S3 Vectors index a bundle is published into, defined once: what `athenaeum publish`
creates (and checks an existing index against) and what the CDK stack declares (infra/vectors),
so the two always agree.

- float32 vectors of the bundle's embedding dimension, compared by cosine;
- `text` (the chunk's text) full-text searchable, analysed in the language of the bundle's BM25
  stemmer, for `QueryVectors` with `queryTexts`;
- the metadata a result only shows (`NON_FILTERABLE`) kept out of the filterable metadata and its
  2 KB per vector; everything else publish writes (doc_id, pages, front matter) filterable.

Dimension, metric and non-filterable keys are fixed when an index is created; a text search
configuration can be added to an existing index (one in ENHANCED mode).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from athenaeum.bundle.manifest import Manifest

TEXT_KEY = "text"
# Shown with a result, never filtered on: kept out of the filterable metadata and its limit.
NON_FILTERABLE = (TEXT_KEY, "title", "headings", "source", "ordinal")
# Where a chunk is (athenaeum.bundle.chunk.ChunkRecord.location and .anchor); SECTION_LOCATION
# stands for the chunk's heading path.
LOCATION_KEY = "location"
ANCHOR_KEY = "anchor"
SECTION_LOCATION = "§"
MAX_PLACE = 256
# The collection of the chunk's document (athenaeum.bundle.manifest.DocumentInfo.collection),
# filterable: what confines a search to the collections a caller may read. A document at the
# library's root has ROOT_VALUE, which no folder can be called, so that a vector published
# without the key (before collections) matches no caller's collections: it fails closed.
COLLECTION_KEY = "collection"
ROOT_VALUE = "/"
DATA_TYPE = "float32"
DISTANCE_METRIC = "cosine"
# Full-text search and a text search configuration need an index in this mode (the default for
# indexes in vector buckets created since 30 September 2026).
INDEX_MODE = "ENHANCED"
# Text search analyzers the service offers, by the bundle's BM25 stemmer language.
LANGUAGES = {
    "english": "en",
    "french": "fr",
    "spanish": "es",
    "portuguese": "pt",
    "italian": "it",
    "german": "de",
    "dutch": "nl",
}
DEFAULT_LANGUAGE = "en"


@dataclass(frozen=True, kw_only=True)
class IndexDefinition:
    dimension: int
    language: str = DEFAULT_LANGUAGE
    data_type: str = DATA_TYPE
    distance_metric: str = DISTANCE_METRIC
    non_filterable: tuple[str, ...] = NON_FILTERABLE
    text_key: str = TEXT_KEY

    @classmethod
    def for_manifest(cls, manifest: Manifest) -> IndexDefinition:
        """The index for the bundle `manifest` describes."""
        language = LANGUAGES.get(manifest.bm25.stemmer_language, DEFAULT_LANGUAGE)
        return cls(dimension=manifest.embedding.dimension, language=language)

    @property
    def text_search(self) -> dict[str, str]:
        """The text search configuration of the full-text field, as the API takes it."""
        return {"metadataKey": self.text_key, "language": self.language}

    def create_index_parameters(self) -> dict[str, Any]:
        """`CreateIndex`'s parameters, but for the vector bucket and the index's name."""
        return {
            "dataType": self.data_type,
            "dimension": self.dimension,
            "distanceMetric": self.distance_metric,
            "metadataConfiguration": {
                "nonFilterableMetadataKeys": list(self.non_filterable),
                "textSearchConfigurations": [self.text_search],
            },
        }

    def mismatch(self, index: dict[str, Any]) -> str | None:
        """What an existing index (GetIndex's `index`) has that this definition cannot be
        given afterwards, or None: a different dimension, metric or set of non-filterable
        keys (a missing text search configuration can be added; see `needs_text_search`)."""
        configured = index.get("metadataConfiguration") or {}
        keys = sorted(configured.get("nonFilterableMetadataKeys") or [])
        if index.get("dimension") != self.dimension:
            return f"dimension {index.get('dimension')}; this bundle needs {self.dimension}"
        if index.get("distanceMetric") != self.distance_metric:
            return f"metric {index.get('distanceMetric')}; this bundle needs {self.distance_metric}"
        if keys != sorted(self.non_filterable):
            return (
                f"non-filterable metadata keys {keys or 'none'}; publishing needs exactly "
                f"{sorted(self.non_filterable)}"
            )
        return None

    def needs_text_search(self, index: dict[str, Any]) -> bool:
        """Whether the existing index lacks full-text search on the text field (an index
        CloudFormation created: AWS::S3Vectors::Index has no property for it)."""
        configured = (index.get("metadataConfiguration") or {}).get("textSearchConfigurations")
        return not any(c.get("metadataKey") == self.text_key for c in configured or [])
