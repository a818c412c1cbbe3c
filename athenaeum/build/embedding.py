"""Build-side embedding: load a sentence-transformers model, embed chunks, export the query encoder.

The query encoder ships in the bundle as ONNX (pooling and normalisation inside the graph) with a
tokenizer.json that truncates at the model's max_seq_length and pads to the longest input, so the
serve side needs neither torch nor sentence-transformers and embeds queries exactly as the
documents were embedded. On CPU the documents are embedded by onnxruntime running that same fp32
graph: it gives the same vectors (cosine >= 0.999, checked at export) and is faster on CPU (see
benchmarks/bench_embedding.py). On CUDA or MPS sentence-transformers embeds them.

On CPU a BERT model (all-MiniLM-L6-v2 is one) is not loaded with torch at all: its graph is
written from the folder's files (athenaeum.build.bert_export), and torch, transformers and
sentence-transformers are never imported, which keeps `athenaeum index` under 1 GB (docs/
benchmarks.md, "Memory"). Any other model is loaded with sentence-transformers and traced.

The shipped query encoder may instead be an int8 copy of that graph (onnxruntime's dynamic
quantization): a quarter of the size, faster per query, slightly less exact. Documents are always
embedded in fp32; only the query side is quantized.

torch and sentence-transformers are imported inside functions: importing this module is cheap.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import shutil
import socket
import sys
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args
from urllib.parse import urlsplit

import numpy as np
import numpy.typing as npt

from athenaeum.build.bert_export import (
    WEIGHTS_FILE,
    BertFolder,
    export_bert_onnx,
    read_bert_folder,
)
from athenaeum.build.model_folder import (
    ModelFolder,
    commit_in_path,
    default_prefixes,
    files_fingerprint,
    locate,
)
from athenaeum.build.onnx_encoder import (
    DEFAULT_BATCH_SIZE,
    ONNX_OUTPUT,
    ModelIds,
    ProgressCallback,
    TokenFeeds,
    TokenIds,
    cpu_session,
    embed_in_batches,
)
from athenaeum.bundle.format import ENCODER_MODEL_FILE, ENCODER_TOKENIZER_FILE
from athenaeum.bundle.manifest import EmbeddingInfo
from athenaeum.errors import InvalidInputError, MissingDependencyError

if TYPE_CHECKING:
    import onnxruntime  # type: ignore[import-untyped]
    from sentence_transformers import SentenceTransformer
    from tokenizers import Tokenizer

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
# On a GPU a batch is one kernel launch per layer: bigger batches keep it busy (measured on an
# H100: docs/benchmarks.md, "Embedding on a GPU").
DEFAULT_GPU_BATCH_SIZE = 256
ONNX_OPSET = 17
# An export whose vectors differ more than this from sentence-transformers' is refused.
PARITY_MIN_COSINE = 0.999
# An int8 encoder whose query vectors differ more than this from the fp32 encoder's is refused.
# A guard against a broken quantization, not a quality bar: all-MiniLM-L6-v2 quantized per
# channel gives mean 0.992, lowest 0.984 over SciFact's 1,109 queries (per tensor: 0.958, 0.901).
INT8_MIN_COSINE = 0.95

Device = Literal["auto", "cpu", "cuda", "mps"]
Backend = Literal["auto", "onnx", "torch"]
Pooling = Literal["mean", "cls", "max", "mean_sqrt_len_tokens"]
EncoderPrecision = Literal["fp32", "int8"]
ENCODER_PRECISIONS: tuple[str, ...] = get_args(EncoderPrecision)

_SUPPORTED_POOLING: tuple[str, ...] = ("mean", "cls", "max", "mean_sqrt_len_tokens")
_COMMIT_RE = re.compile(r"^[0-9a-f]{40}$")
_PARITY_PROBES = (
    "What is the boiling point of water at sea level?",
    "Athenaeum turns a folder of PDFs into a searchable library.",
    "Mitochondrial DNA is inherited maternally in most animals, including humans.",
    "short",
)


@dataclass(frozen=True)
class ModelInfo:
    """What the manifest records about the model, and what decides whether vectors are reusable."""

    model_id: str
    revision: str | None
    fingerprint: str  # changes whenever the weights may have: the hub commit, or a files hash
    dimension: int
    max_seq_length: int
    pooling: str
    normalize: bool
    query_prefix: str
    document_prefix: str
    special_tokens: int  # tokens the tokenizer adds to every input ([CLS] and [SEP] for BERT)

    def embedding_info(self, encoder_precision: str = "fp32") -> EmbeddingInfo:
        """The bundle manifest's record of this model, with the query encoder's precision."""
        return EmbeddingInfo(
            model_id=self.model_id,
            revision=self.revision,
            dimension=self.dimension,
            pooling=self.pooling,
            normalize=self.normalize,
            max_seq_length=self.max_seq_length,
            query_prefix=self.query_prefix,
            document_prefix=self.document_prefix,
            encoder_precision=encoder_precision,
        )


def _import_st() -> Any:
    try:
        import sentence_transformers
        import torch  # noqa: F401 (sentence-transformers needs it; fail here with a clear message)
    except ImportError as exc:
        raise MissingDependencyError("sentence_transformers", "build") from exc
    return sentence_transformers


def resolve_device(device: Device | str = "auto") -> str:
    """`auto` picks CUDA, then Apple MPS, then CPU; an explicit device must be available."""
    _import_st()
    import torch

    if device == "auto":
        if torch.cuda.is_available():
            return "cuda"
        if torch.backends.mps.is_available():
            return "mps"
        return "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise InvalidInputError("--device cuda: no CUDA GPU is available to torch", param="device")
    if device == "mps" and not torch.backends.mps.is_available():
        raise InvalidInputError("--device mps: Apple MPS is not available", param="device")
    if device not in ("cpu", "cuda", "mps"):
        raise InvalidInputError(
            f"unknown device {device!r}; use auto, cpu, cuda or mps", param="device"
        )
    return device


def _weights_fingerprint(model: SentenceTransformer) -> str:
    """sha256 of the loaded weights. Bundles written before the files fingerprint
    (athenaeum.build.model_folder) recorded it for local folders, and for hub models whenever
    transformers did not report the commit; it remains the fingerprint of a hub model whose
    commit is unknown."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return "sha256:" + digest.hexdigest()


def _revision(model: SentenceTransformer, model_id: str) -> str | None:
    """The hub commit the weights came from: transformers 4 records it on the config,
    sentence-transformers on its model card (the snapshot folder it loaded from), and a local
    path inside the Hugging Face cache (`.../snapshots/<commit>/`) names it."""
    transformer: Any = model[0]
    card: Any = getattr(model, "model_card_data", None)
    for commit in (
        getattr(transformer.auto_model.config, "_commit_hash", None),
        getattr(card, "base_model_revision", None),
    ):
        if isinstance(commit, str) and _COMMIT_RE.match(commit):
            return commit
    return commit_in_path(Path(model_id))


def _pooling_of(model: SentenceTransformer) -> tuple[str, bool]:
    pooling: str | None = None
    normalize = False
    module: Any
    for index, module in enumerate(model):
        kind = type(module).__name__
        if index == 0:
            if kind != "Transformer":
                raise InvalidInputError(
                    f"embedding model's first module is {kind}, not a Transformer; "
                    "athenaeum can only export text transformer models"
                )
        elif kind == "Pooling":
            modes = module.pooling_mode
            mode = modes if isinstance(modes, str) else "+".join(modes)
            if mode not in _SUPPORTED_POOLING:
                raise InvalidInputError(
                    f"embedding model uses {mode!r} pooling; athenaeum exports "
                    f"{', '.join(_SUPPORTED_POOLING)}"
                )
            if not getattr(module, "include_prompt", True):
                raise InvalidInputError(
                    "embedding model excludes its prompt from pooling, which the ONNX export "
                    "does not reproduce"
                )
            pooling = mode
        elif kind == "Normalize":
            normalize = True
        elif kind != "Dense":
            raise InvalidInputError(
                f"embedding model has a {kind} module, which the ONNX export does not support"
            )
    if pooling is None:
        raise InvalidInputError("embedding model has no Pooling module")
    return pooling, normalize


def _fast_tokenizer(model: SentenceTransformer, max_seq_length: int) -> Tokenizer:
    """A copy of the model's Rust tokenizer that truncates at max_seq_length and pads only to
    the longest input (the files shipped with many models truncate and pad at 128)."""
    backend = getattr(model.tokenizer, "backend_tokenizer", None)
    if backend is None:
        raise InvalidInputError(
            "embedding model has no fast (Rust) tokenizer; athenaeum needs one to ship the "
            "query tokenizer in the bundle"
        )
    pad_token = str(getattr(model.tokenizer, "pad_token", None) or "[PAD]")
    return _bundle_tokenizer(backend.to_str(), max_seq_length, pad_token)


def _bundle_tokenizer(spec: str, max_seq_length: int, pad_token: str) -> Tokenizer:
    """The tokenizer serialised as `spec`, truncating at max_seq_length and padding to the
    longest input with `pad_token`."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_str(spec)
    tokenizer.enable_truncation(max_length=max_seq_length)
    pad_id = tokenizer.token_to_id(pad_token)
    tokenizer.enable_padding(pad_id=pad_id if pad_id is not None else 0, pad_token=pad_token)
    return tokenizer


class Embedder:
    """A loaded model: counts tokens, embeds documents and queries, exports the query encoder.

    Build one with `load_embedder`. Given the model's files (`source`) instead of a loaded
    model, it exports and embeds without torch; `model` then loads it with sentence-transformers
    on first use (only to compare with it).
    """

    def __init__(
        self,
        model: SentenceTransformer | None,
        info: ModelInfo,
        *,
        device: str,
        batch_size: int,
        backend: Literal["onnx", "torch"],
        source: BertFolder | None = None,
    ) -> None:
        self._model = model
        self._source = source
        self.info = info
        self.device = device
        self.batch_size = batch_size
        self.backend = backend
        if source is not None:
            self.tokenizer = _bundle_tokenizer(
                source.tokenizer_json, info.max_seq_length, source.pad_token
            )
            self._input_names = source.input_names
        elif model is not None:
            self.tokenizer = _fast_tokenizer(model, info.max_seq_length)
            self._input_names = [
                name
                for name in ("input_ids", "attention_mask", "token_type_ids")
                if name in model.tokenizer.model_input_names
            ]
        else:
            raise ValueError("an Embedder needs a loaded model or the model's files")
        self._feeds = TokenFeeds(self.tokenizer, self._input_names)
        self._session: onnxruntime.InferenceSession | None = None
        self._torch_embedder: Any = None
        self._workdir: tempfile.TemporaryDirectory[str] | None = None
        self._encoder_dirs: dict[str, Path] = {}

    @property
    def model(self) -> SentenceTransformer:
        """The model loaded by sentence-transformers (loaded now if it was not: torch)."""
        if self._model is None:
            self._model = _load_sentence_transformer(self.info.model_id, self.device)
        return self._model

    # --- tokens

    def count_tokens(self, text: str) -> int:
        """Tokens in `text` as the model sees them, without special tokens and untruncated."""
        return self._feeds.count_tokens(text)

    def token_cap(self) -> int:
        """Most text tokens a chunk may have so the model reads all of it: max_seq_length less
        the special tokens and the document prefix."""
        prefix = self.count_tokens(self.info.document_prefix) if self.info.document_prefix else 0
        return self.info.max_seq_length - self.info.special_tokens - prefix

    # --- embedding

    def recording_tokens(self) -> contextlib.AbstractContextManager[ModelIds]:
        """Keep the tokens of the texts counted while it is open, and give their model input
        ids for `embed_documents` (TokenFeeds.recording)."""
        return self._feeds.recording()

    def embed_documents(
        self,
        texts: Sequence[str],
        progress: ProgressCallback | None = None,
        token_ids: TokenIds | None = None,
    ) -> npt.NDArray[np.float32]:
        """Vectors [len(texts), dim] (unit length when the model normalises), document prefix on.

        `token_ids[i]`, where given, are the model input ids of the document prefix + texts[i]
        as `recording_tokens` gives them: that text is not tokenized again.
        """
        prefixed = [self.info.document_prefix + t for t in texts]
        return self._embed(prefixed, progress, token_ids)

    def embed_queries(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        return self._embed([self.info.query_prefix + t for t in texts], None, None)

    def _embed(
        self,
        texts: list[str],
        progress: ProgressCallback | None,
        token_ids: TokenIds | None,
    ) -> npt.NDArray[np.float32]:
        out = np.zeros((len(texts), self.info.dimension), dtype=np.float32)
        if not texts:
            return out
        if self.backend == "onnx":
            return embed_in_batches(
                self._onnx_session(),
                self._feeds,
                texts,
                out,
                batch_size=self.batch_size,
                progress=progress,
                token_ids=token_ids,
            )
        ids = self._feeds.fill_ids(texts, token_ids)
        # Longest first, so each batch pads little and a too-large batch fails at once.
        order = sorted(range(len(texts)), key=lambda i: -len(ids[i]))
        done = 0
        # Vectors stay on the device for a slice of many batches, then come back at once.
        step = self.batch_size * 32
        for start in range(0, len(order), step):
            rows = order[start : start + step]
            out[rows] = self._embed_torch([texts[i] for i in rows], [ids[i] for i in rows])
            done += len(rows)
            if progress is not None:
                progress(done, len(texts))
        return out

    def _embed_torch(
        self, texts: list[str], ids: list[npt.NDArray[np.int32]]
    ) -> npt.NDArray[np.float32]:
        """Embed with the model's own modules (transformer, pooling, normalisation) on its
        device: fp16 on CUDA, fp32 elsewhere.

        Not `SentenceTransformer.encode`: that tokenizes each batch in Python and waits for each
        batch's vectors to reach the CPU, so the GPU idles while the next batch is prepared.
        Here the texts come tokenized (by the chunker, TokenFeeds.recording, or in one pass
        before), each batch is padded in numpy into pinned memory, copies to the GPU do not
        block, and vectors stay on the device until the whole slice is done: the GPU computes
        batch i while batch i+1 is padded and copied.
        """
        import torch

        model = self._torch_model()
        device = torch.device(self.device)
        cuda = device.type == "cuda"
        outputs = []
        with torch.inference_mode():
            for start in range(0, len(texts), self.batch_size):
                end = start + self.batch_size
                features = self._feeds.padded(ids[start:end], texts[start:end])
                on_device = {
                    name: (
                        torch.from_numpy(column).pin_memory().to(device, non_blocking=True)
                        if cuda
                        else torch.from_numpy(column).to(device)
                    )
                    for name, column in features.items()
                }
                outputs.append(model(on_device)["sentence_embedding"].float())
            vectors = torch.cat(outputs).cpu().numpy()
        return np.asarray(vectors, dtype=np.float32)

    def _torch_model(self) -> Any:
        """The model that embeds documents on torch: a half-precision copy on CUDA (the fp32
        model stays for exporting the query encoder), the model itself elsewhere."""
        if self._torch_embedder is None:
            if self.device == "cuda":
                import copy

                self._torch_embedder = copy.deepcopy(self.model).half().eval()
            else:
                self._torch_embedder = self.model
        return self._torch_embedder

    def _run(
        self, texts: list[str], session: onnxruntime.InferenceSession | None = None
    ) -> npt.NDArray[np.float32]:
        """Embed with an exported graph: the fp32 encoder unless another session is given."""
        if session is None:
            session = self._onnx_session()
        feed = self._feeds.padded(self._feeds.token_ids(texts), texts)
        (vectors,) = session.run([ONNX_OUTPUT], feed)
        return np.asarray(vectors, dtype=np.float32)

    def _onnx_session(self) -> onnxruntime.InferenceSession:
        if self._session is None:
            self.encoder_dir()
        assert self._session is not None
        return self._session

    def encoder_dir(self, precision: EncoderPrecision = "fp32") -> Path:
        """A private directory holding this model's query encoder at `precision` (model.onnx and
        tokenizer.json), exported or quantized once per embedder."""
        if precision not in ENCODER_PRECISIONS:
            raise InvalidInputError(
                f"unknown encoder precision {precision!r}; use fp32 or int8",
                param="encoder_precision",
            )
        cached = self._encoder_dirs.get(precision)
        if cached is not None:
            return cached
        if self._workdir is None:
            self._workdir = tempfile.TemporaryDirectory(prefix="athenaeum-encoder-")
        root = Path(self._workdir.name)
        if precision == "int8":
            directory = self._export_int8(self.encoder_dir("fp32"), root / "int8")
        else:
            directory = self.export_query_encoder(root / "fp32")
        self._encoder_dirs[precision] = directory
        return directory

    # --- ONNX export

    def export_query_encoder(self, directory: Path) -> Path:
        """Write `model.onnx` and `tokenizer.json` into `directory` and check the graph gives
        sentence-transformers' vectors; returns the directory.

        Written from the model's files, the graph is not compared at export: that would load
        the model with torch, which is what this path avoids. tests/build/test_bert_export.py
        compares it with sentence-transformers, and bert_export exports only what it rebuilds
        exactly."""
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / ENCODER_MODEL_FILE
        if self._source is not None:
            export_bert_onnx(self._source, path, output=ONNX_OUTPUT, opset=ONNX_OPSET)
        else:
            _export_onnx(self.model, self.info, self._input_names, path)
        self.tokenizer.save(str(directory / ENCODER_TOKENIZER_FILE))
        self._session = cpu_session(path)
        if self._source is not None:
            return directory
        probes = list(_PARITY_PROBES)
        reference = np.asarray(
            self.model.encode(probes, convert_to_numpy=True, show_progress_bar=False),
            dtype=np.float32,
        )
        cosine = float(np.min(_cosine_rows(self._run(probes), reference)))
        if cosine < PARITY_MIN_COSINE:
            self._session = None
            raise InvalidInputError(
                f"the ONNX export of {self.info.model_id} does not reproduce its vectors "
                f"(lowest cosine {cosine:.5f} < {PARITY_MIN_COSINE})"
            )
        return directory

    def _export_int8(self, source: Path, target: Path) -> Path:
        """Quantize the fp32 encoder in `source` into `target` and check it still agrees."""
        quantize_query_encoder(source, target)
        session = cpu_session(target / ENCODER_MODEL_FILE)
        probes = list(_PARITY_PROBES)
        # One at a time, as queries are served: activations are quantized with one scale per
        # batch, so a batch's padding and its other inputs would change each vector a little.
        quantized = np.concatenate([self._run([probe], session) for probe in probes])
        cosine = float(np.min(_cosine_rows(quantized, self._run(probes))))
        if cosine < INT8_MIN_COSINE:
            raise InvalidInputError(
                f"the int8 query encoder of {self.info.model_id} strays too far from the fp32 one "
                f"(lowest cosine {cosine:.4f} < {INT8_MIN_COSINE}); use --encoder-precision fp32",
                param="encoder_precision",
            )
        return target

    def weights_fingerprint(self) -> str:
        """The fingerprint bundles recorded for a local folder before the files fingerprint
        (`sha256:` of the loaded weights), to recognise the same model in such a bundle."""
        return _weights_fingerprint(self.model)

    def close(self) -> None:
        self._session = None
        self._encoder_dirs.clear()
        if self._workdir is not None:
            self._workdir.cleanup()
            self._workdir = None


def quantize_query_encoder(source: Path, target: Path) -> Path:
    """Write an int8 copy of the query encoder in `source` (model.onnx, tokenizer.json) to
    `target`, with onnxruntime's dynamic quantization; returns `target`.

    The weights of MatMul and Gather (the token embeddings) become 8-bit, one scale per output
    channel; activations are quantized at run time, one scale per batch. Per channel because
    per tensor loses more than it needs to: on SciFact with all-MiniLM-L6-v2, mean cosine to
    the fp32 query vectors 0.992 against 0.958 and dense nDCG@10 0.6639 against 0.6604 (fp32:
    0.6635), for the same size and speed. The quantizer lives in onnxruntime's `quantization`
    package, which the Lambda layer leaves out: only the build side imports it.
    """
    try:
        from onnxruntime.quantization import (  # type: ignore[import-untyped]
            QuantType,
            quantize_dynamic,
        )
    except ImportError as exc:  # it needs the `onnx` package, from the build extra
        raise MissingDependencyError("onnx", "build") from exc

    target.mkdir(parents=True, exist_ok=True)
    with _without_preprocessing_advice():
        quantize_dynamic(
            source / ENCODER_MODEL_FILE,
            target / ENCODER_MODEL_FILE,
            weight_type=QuantType.QInt8,
            per_channel=True,
        )
    shutil.copyfile(source / ENCODER_TOKENIZER_FILE, target / ENCODER_TOKENIZER_FILE)
    return target


@contextlib.contextmanager
def _without_preprocessing_advice() -> Iterator[None]:
    """Drop quantize_dynamic's "consider pre-processing" warning, and only that.

    Pre-processing (onnxruntime's quant_pre_process) does not fit this graph: its symbolic shape
    inference fails on the traced transformer ("Incomplete symbolic shape inference"), and with
    that step skipped it changed no query vector of MiniLM's (SciFact's 1,109 queries). The
    warning goes through `logging.warning`, which would also configure an unconfigured root
    logger as a side effect; a NullHandler prevents that.
    """
    root = logging.getLogger()

    def keep(record: logging.LogRecord) -> bool:
        return "pre-processing before quantization" not in record.getMessage()

    guard = logging.NullHandler()
    root.addHandler(guard)
    root.addFilter(keep)
    try:
        yield
    finally:
        root.removeFilter(keep)
        root.removeHandler(guard)


def _cosine_rows(a: npt.NDArray[np.float32], b: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    result: npt.NDArray[np.float32] = (a * b).sum(axis=1) / np.maximum(norms, 1e-12)
    return result


def _export_onnx(
    model: SentenceTransformer, info: ModelInfo, input_names: list[str], path: Path
) -> None:
    import torch

    transformer: Any = model[0]
    transformer = transformer.auto_model
    tail = [m for m in list(model)[2:] if type(m).__name__ == "Dense"]

    class SentenceEncoder(torch.nn.Module):
        """Transformer + pooling (+ Dense) + normalisation, as one traceable graph."""

        def __init__(self) -> None:
            super().__init__()
            self.transformer: Any = transformer
            self.tail: Any = torch.nn.ModuleList(tail)

        def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
            kwargs = dict(zip(input_names, inputs, strict=True))
            hidden: torch.Tensor = self.transformer(**kwargs)[0]
            mask = kwargs["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            if info.pooling == "cls":
                pooled = hidden[:, 0]
            elif info.pooling == "max":
                pooled = hidden.masked_fill(mask == 0, float("-inf")).max(dim=1).values
            else:
                counts = mask.sum(dim=1).clamp(min=1e-9)
                if info.pooling == "mean_sqrt_len_tokens":
                    counts = counts.sqrt()
                pooled = (hidden * mask).sum(dim=1) / counts
            for module in self.tail:
                pooled = module({"sentence_embedding": pooled})["sentence_embedding"]
            if info.normalize:
                pooled = torch.nn.functional.normalize(pooled, p=2.0, dim=1)
            return pooled

    device = next(transformer.parameters()).device
    encoder = SentenceEncoder().eval()
    dummy = torch.ones(2, 8, dtype=torch.int64, device=device)
    sample = tuple(
        dummy if name != "token_type_ids" else torch.zeros_like(dummy) for name in input_names
    )
    axes = {0: "batch", 1: "sequence"}
    # The tracer warns about Python branches on shapes in transformers' masking code; they are
    # constant for an encoder, and the parity check in export_query_encoder proves the graph.
    with torch.no_grad(), warnings.catch_warnings(), _eager_attention(transformer):
        warnings.simplefilter("ignore", torch.jit._trace.TracerWarning)
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("ignore", DeprecationWarning)  # dynamo=False is deliberate
        torch.onnx.export(
            encoder,
            sample,
            str(path),
            input_names=input_names,
            output_names=[ONNX_OUTPUT],
            dynamic_axes={**{name: axes for name in input_names}, ONNX_OUTPUT: {0: "batch"}},
            opset_version=ONNX_OPSET,
            dynamo=False,
        )
    # The tracer leaves the output's width symbolic; state it, so a loader can read the
    # dimension from the graph without running it.
    import onnx

    graph = onnx.load(str(path))
    graph.graph.output[0].type.tensor_type.shape.dim[1].dim_value = info.dimension
    onnx.checker.check_model(graph)
    onnx.save(graph, str(path))


@contextlib.contextmanager
def _eager_attention(transformer: Any) -> Iterator[None]:
    """Trace the model with transformers' plain ("eager") attention, then put back its own.

    Traced, SDPA attention guards every layer's softmax against fully masked rows with IsNaN
    and Where nodes: a sixth of onnxruntime's time on a batch, and two more [batch, heads, seq,
    seq] tensors held. Eager attention computes the same vectors (the parity check proves it)
    as MatMul, Softmax, MatMul.
    """
    config = getattr(transformer, "config", None)
    before = getattr(config, "_attn_implementation", None)
    setter = getattr(transformer, "set_attn_implementation", None)
    if setter is None or not isinstance(before, str) or before == "eager":
        yield
        return
    try:
        setter("eager")
    except (ValueError, ImportError):  # a model that cannot switch: export it as it is
        yield
        return
    try:
        yield
    finally:
        setter(before)


_HUB_PROBE_TIMEOUT_S = 3.0


# What a model folder holds at its top: a sentence-transformers folder, or a transformers one.
_MODEL_FOLDER_FILES = ("modules.json", "config_sentence_transformers.json", "config.json")


def _check_local_folder(model: str) -> None:
    """Refuse at once a model given as a path (./x, ../x, /x, ~/x, or x/y/z) that is not a model
    folder: the Hub would otherwise be asked for it as a model id, and the error would blame the
    network or the id; an empty folder would get as far as importing torch."""
    path = Path(model).expanduser()
    looks_like_path = model.startswith((".", "/", "~", "\\")) or model.count("/") > 1
    if not path.exists():
        if looks_like_path:
            raise InvalidInputError(
                f"cannot load embedding model {model!r}: there is no folder "
                f"{path.absolute()}. Give the folder of a sentence-transformers model, or a "
                "Hugging Face model id "
                "(for example sentence-transformers/all-MiniLM-L6-v2)",
                param="embed_model",
            )
        return
    if not path.is_dir():
        raise InvalidInputError(
            f"cannot load embedding model {model!r}: {path} is a file; give the model's folder",
            param="embed_model",
        )
    if not any((path / name).is_file() for name in _MODEL_FOLDER_FILES):
        raise InvalidInputError(
            f"cannot load embedding model {model!r}: {path} is not a model folder (it has none "
            f"of {', '.join(_MODEL_FOLDER_FILES)}); give the folder a sentence-transformers "
            "model was saved to",
            param="embed_model",
        )


def _check_hub_reachable(model: str) -> None:
    """Fail in seconds, saying what to do, when `model` is a hub id and the hub cannot be
    reached: the Hub client would otherwise retry for a minute and a half and then blame the
    model's name. A local folder, and HF_HUB_OFFLINE=1 (the local cache only), need no hub."""
    if Path(model).expanduser().exists() or os.environ.get("HF_HUB_OFFLINE", "") in ("1", "true"):
        return
    endpoint = urlsplit(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    host = endpoint.hostname or "huggingface.co"
    port = endpoint.port or (80 if endpoint.scheme == "http" else 443)
    try:
        with socket.create_connection((host, port), timeout=_HUB_PROBE_TIMEOUT_S):
            return
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
    raise InvalidInputError(
        f"cannot load embedding model {model!r}: the Hugging Face Hub ({host}) cannot be "
        f"reached ({reason}). The first `athenaeum index` downloads the model from it; without "
        "a network, give a local sentence-transformers folder (--embed-model PATH), or set "
        "HF_HUB_OFFLINE=1 to use a copy already in the Hugging Face cache",
        param="embed_model",
    )


def load_embedder(
    model: str = DEFAULT_MODEL,
    *,
    device: Device | str = "auto",
    batch_size: int | None = None,
    query_prefix: str | None = None,
    document_prefix: str | None = None,
    backend: Backend = "auto",
    torch_export: bool = False,
) -> Embedder:
    """Load a sentence-transformers model by Hugging Face id or local folder.

    Prefixes default to the model's own `query`/`document` prompts (empty when it has none).
    `backend="auto"` embeds documents with onnxruntime on CPU and with the model's torch modules
    on a GPU (in half precision on CUDA). `batch_size` defaults to DEFAULT_BATCH_SIZE on CPU and
    DEFAULT_GPU_BATCH_SIZE on a GPU.

    On CPU a BERT model whose files athenaeum.build.bert_export rebuilds exactly is read from
    them without importing torch; `torch_export=True` loads it with sentence-transformers and
    traces it all the same.
    """
    if batch_size is not None and batch_size < 1:
        raise InvalidInputError(
            f"batch size must be at least 1, got {batch_size}", param="batch_size"
        )
    _check_local_folder(model)
    _check_hub_reachable(model)
    if not torch_export and backend != "torch" and _cpu_without_torch(device):
        embedder = _load_without_torch(
            model,
            batch_size=batch_size or DEFAULT_BATCH_SIZE,
            query_prefix=query_prefix,
            document_prefix=document_prefix,
        )
        if embedder is not None:
            return embedder
    resolved = resolve_device(device)
    loaded = _load_sentence_transformer(model, resolved)
    pooling, normalize = _pooling_of(loaded)
    prompts: dict[str, str] = dict(getattr(loaded, "prompts", None) or {})
    if query_prefix is None:
        query_prefix = prompts.get("query", "")
    if document_prefix is None:
        document_prefix = prompts.get("document", prompts.get("passage", ""))
    dimension = loaded.get_embedding_dimension()
    max_seq_length = loaded.max_seq_length
    if not dimension or not max_seq_length:
        raise InvalidInputError(f"embedding model {model!r} reports no dimension or max length")
    revision = _revision(loaded, model)
    # The same fingerprint that athenaeum.build.model_folder.locate gives without loading the
    # model, so that a run with nothing to do can tell so without torch.
    if revision:
        fingerprint = f"{model}@{revision}"
    elif Path(model).is_dir():
        fingerprint = files_fingerprint(Path(model))
    else:
        fingerprint = _weights_fingerprint(loaded)
    special = len(_fast_tokenizer(loaded, max_seq_length).encode("", add_special_tokens=True).ids)
    info = ModelInfo(
        model_id=model,
        revision=revision,
        fingerprint=fingerprint,
        dimension=int(dimension),
        max_seq_length=int(max_seq_length),
        pooling=pooling,
        normalize=normalize,
        query_prefix=query_prefix,
        document_prefix=document_prefix,
        special_tokens=special,
    )
    chosen: Literal["onnx", "torch"] = (
        backend if backend != "auto" else ("onnx" if resolved == "cpu" else "torch")
    )
    if batch_size is None:
        batch_size = DEFAULT_BATCH_SIZE if resolved == "cpu" else DEFAULT_GPU_BATCH_SIZE
    return Embedder(loaded, info, device=resolved, batch_size=batch_size, backend=chosen)


def _load_sentence_transformer(model: str, device: str) -> SentenceTransformer:
    st = _import_st()
    # transformers' own "Loading weights" bar would cut through the caller's progress display;
    # build_index reports the loading as its "model" stage.
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    try:
        loaded: SentenceTransformer = st.SentenceTransformer(model, device=device)
    except (OSError, ValueError) as exc:
        raise InvalidInputError(
            f"cannot load embedding model {model!r}: it is neither a sentence-transformers "
            f"folder nor a model the Hugging Face Hub (or its local cache) has ({exc})",
            param="embed_model",
        ) from exc
    loaded.eval()
    return loaded


def _cpu_without_torch(device: Device | str) -> bool:
    """Whether `device` is the CPU, told without importing torch: "cpu", or "auto" on a Linux
    machine with no NVIDIA, AMD or WSL GPU device, where torch finds neither CUDA nor MPS."""
    if device == "cpu":
        return True
    if device != "auto" or not sys.platform.startswith("linux"):
        return False
    dev = Path("/dev")
    return not (any(dev.glob("nvidia[0-9]*")) or (dev / "kfd").exists() or (dev / "dxg").exists())


# What athenaeum.build.bert_export reads from a model on the Hub: configs and tokenizer (JSON)
# and the weights, at the top or in a module's folder.
_HUB_FILES = ["*.json", WEIGHTS_FILE, f"*/{WEIGHTS_FILE}"]


def _model_files(model: str) -> ModelFolder | None:
    """The folder of `model` (a local folder, or a Hub id fetched or found in the cache as
    sentence-transformers would) and its identity, or None when it cannot be had."""
    if Path(model).is_dir():
        return locate(model)
    try:
        from huggingface_hub import snapshot_download

        snapshot = Path(
            snapshot_download(
                model,
                allow_patterns=_HUB_FILES,
                cache_dir=os.environ.get("SENTENCE_TRANSFORMERS_HOME") or None,
            )
        )
    except Exception:  # not a Hub id, not cached while offline...: sentence-transformers says
        return None
    commit = commit_in_path(snapshot)
    if commit is None:
        return None
    return ModelFolder(path=snapshot, revision=commit, fingerprint=f"{model}@{commit}")


def _load_without_torch(
    model: str, *, batch_size: int, query_prefix: str | None, document_prefix: str | None
) -> Embedder | None:
    """The CPU embedder of a BERT model read from its files, or None when only loading it with
    sentence-transformers can tell what it is (another kind of model, prefixes the files leave
    open)."""
    folder = _model_files(model)
    source = read_bert_folder(folder.path) if folder is not None else None
    if folder is None or source is None:
        return None
    if query_prefix is None or document_prefix is None:
        defaults = default_prefixes(folder.path)
        if defaults is None:
            return None
        query_prefix = defaults[0] if query_prefix is None else query_prefix
        document_prefix = defaults[1] if document_prefix is None else document_prefix
    tokenizer = _bundle_tokenizer(source.tokenizer_json, source.max_seq_length, source.pad_token)
    info = ModelInfo(
        model_id=model,
        revision=folder.revision,
        fingerprint=folder.fingerprint,
        dimension=source.dimension,
        max_seq_length=source.max_seq_length,
        pooling=source.pooling,
        normalize=source.normalize,
        query_prefix=query_prefix,
        document_prefix=document_prefix,
        special_tokens=len(tokenizer.encode("", add_special_tokens=True).ids),
    )
    return Embedder(None, info, device="cpu", batch_size=batch_size, backend="onnx", source=source)
