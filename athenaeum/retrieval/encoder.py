"""The serve-side query encoder: the bundle's ONNX model and tokenizer, no torch.

The ONNX graph does pooling and normalisation itself (the build side exports it that way), so
this module only tokenizes, runs the session and returns its sentence vectors. The tokenizer is
forced to truncate at the model's max_seq_length and to pad to the longest input: the
tokenizer.json that ships with sentence-transformers models often truncates and pads at another
length, which would embed queries differently from the documents.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnxruntime as ort  # type: ignore[import-untyped]
from tokenizers import Tokenizer

from athenaeum.bundle.format import ENCODER_DIR, ENCODER_MODEL_FILE, ENCODER_TOKENIZER_FILE
from athenaeum.bundle.manifest import Manifest
from athenaeum.bundle.reader import corrupted
from athenaeum.errors import BundleError

# Beyond a few threads a single short query gets no faster and contends with the web server;
# on Lambda the function has 1 to 6 vCPUs depending on its memory size.
MAX_THREADS = 4

_ONNX_INT_TYPES: dict[str, type[np.integer[Any]]] = {
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
}


def available_cpus() -> int:
    """The CPUs this process may run on (its affinity where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def default_threads() -> int:
    return min(available_cpus(), MAX_THREADS)


class OnnxQueryEncoder:
    def __init__(
        self,
        model_dir: Path,
        *,
        max_seq_length: int,
        query_prefix: str = "",
        threads: int | None = None,
    ) -> None:
        model_dir = Path(model_dir)
        self.query_prefix = query_prefix
        self.max_seq_length = max_seq_length
        try:
            self.tokenizer = Tokenizer.from_file(str(model_dir / ENCODER_TOKENIZER_FILE))
        except Exception as exc:  # tokenizers raises a bare Exception on a bad file
            raise BundleError(
                f"query tokenizer {model_dir / ENCODER_TOKENIZER_FILE} cannot be loaded ({exc})"
            ) from exc
        self.tokenizer.enable_truncation(max_length=max_seq_length)
        pad = self.tokenizer.padding or {}
        pad_token = str(pad.get("pad_token", "[PAD]"))
        pad_id = self.tokenizer.token_to_id(pad_token)
        self.tokenizer.enable_padding(
            pad_id=int(pad.get("pad_id", pad_id if pad_id is not None else 0)),
            pad_token=pad_token,
            pad_type_id=int(pad.get("pad_type_id", 0)),
            length=None,  # pad to the longest input in the batch, not to a fixed length
        )

        self._model_file = model_dir / ENCODER_MODEL_FILE
        options = ort.SessionOptions()
        n_threads = threads or default_threads()
        options.intra_op_num_threads = n_threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        # ORT's spinning worker threads burn CPU between queries; a server idles most of the time.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(
                str(model_dir / ENCODER_MODEL_FILE),
                sess_options=options,
                providers=["CPUExecutionProvider"],
            )
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph classes
            raise BundleError(
                f"query encoder {model_dir / ENCODER_MODEL_FILE} cannot be loaded ({exc})"
            ) from exc
        self._inputs: list[tuple[str, type[np.integer[Any]]]] = []
        for inp in self.session.get_inputs():
            if inp.name not in ("input_ids", "attention_mask", "token_type_ids"):
                raise BundleError(
                    f"query encoder {model_dir / ENCODER_MODEL_FILE} expects an input "
                    f"{inp.name!r} this encoder cannot provide"
                )
            self._inputs.append((inp.name, _ONNX_INT_TYPES.get(inp.type, np.int64)))
        out = self.session.get_outputs()[0]
        self._output = out.name
        if len(out.shape) != 2:
            raise BundleError(
                f"query encoder {model_dir / ENCODER_MODEL_FILE} returns shape {out.shape}; "
                "expected pooled sentence vectors [batch, dimension]"
            )
        self.dimension = out.shape[1] if isinstance(out.shape[1], int) else None

    @classmethod
    def of_bundle(
        cls, bundle_dir: Path, manifest: Manifest, *, threads: int | None = None
    ) -> OnnxQueryEncoder:
        """The query encoder of the bundle (or query-side copy) at `bundle_dir`, as its manifest
        describes it; a BundleError when it cannot embed queries for that bundle's vectors."""
        embedding = manifest.embedding
        encoder = cls(
            Path(bundle_dir) / ENCODER_DIR,
            max_seq_length=embedding.max_seq_length,
            query_prefix=embedding.query_prefix,
            threads=threads,
        )
        if encoder.dimension is not None and encoder.dimension != embedding.dimension:
            raise corrupted(
                Path(bundle_dir),
                f"its query encoder returns {encoder.dimension}-d vectors but the documents "
                f"are {embedding.dimension}-d",
            )
        return encoder

    def encode(self, queries: Sequence[str]) -> npt.NDArray[np.float32]:
        """Unit vectors [len(queries), dim] for the queries, with the query prefix applied."""
        return self.run(self.feed(queries))

    def feed(self, queries: Sequence[str]) -> dict[str, npt.NDArray[np.integer[Any]]]:
        """The model's inputs for the queries: `encode`'s first half, tokenizing. The second,
        `run`, holds Python's lock only before and after the model's forward pass, so other
        threads' Python runs beside it."""
        if not queries:
            raise ValueError("no queries to encode")
        encodings = self.tokenizer.encode_batch([self.query_prefix + q for q in queries])
        columns = {
            "input_ids": [e.ids for e in encodings],
            "attention_mask": [e.attention_mask for e in encodings],
            "token_type_ids": [e.type_ids for e in encodings],
        }
        return {name: np.asarray(columns[name], dtype=dtype) for name, dtype in self._inputs}

    def run(self, feed: dict[str, npt.NDArray[np.integer[Any]]]) -> npt.NDArray[np.float32]:
        """Unit vectors for the inputs `feed` made."""
        (vectors,) = self.session.run([self._output], feed)
        out = np.asarray(vectors, dtype=np.float32)
        if not np.isfinite(out).all():
            # A NaN query vector matches nothing: dense search would answer with no passages.
            raise BundleError(
                f"query encoder {self._model_file} returned NaN or infinite values for a query; "
                "the encoder is damaged: rebuild the index with `athenaeum index`"
            )
        # The graph normalises already; doing it again is idempotent and keeps cosine = inner
        # product even for an exporter that forgot to.
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        unit: npt.NDArray[np.float32] = (out / np.maximum(norms, 1e-12)).astype(np.float32)
        return unit

    def encode_one(self, query: str) -> npt.NDArray[np.float32]:
        vector: npt.NDArray[np.float32] = self.encode([query])[0]
        return vector
