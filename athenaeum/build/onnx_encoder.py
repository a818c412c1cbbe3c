"""Embedding documents with an exported encoder (model.onnx + tokenizer.json), without torch.

`athenaeum index` exports a model's fp32 encoder once and embeds documents on CPU with it; the
ingest function (athenaeum.ingest) embeds new documents with the encoder a bundle carries, with
neither torch nor sentence-transformers installed. Both go through this module, so a document
gets the same vector either way.

Batching: every text is tokenized once, then texts of about the same token count run together
(longest first, so a too-large batch fails at once), padded in numpy to their longest text. The
attention mask comes from each text's length and the token types are zeros (what a model's
template gives one text; checked when the tokenizer is loaded), so only the ids come from the
tokenizer.

Imports only numpy, onnxruntime and tokenizers.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from athenaeum.errors import InvalidInputError

if TYPE_CHECKING:
    import onnxruntime  # type: ignore[import-untyped]
    from tokenizers import Tokenizer

ONNX_OUTPUT = "embeddings"
# On CPU the matrices of 8 texts of similar length ([8 x tokens, 384] per layer) already keep
# onnxruntime's matrix multiplication busy; more texts only hold more activations, costing CPU
# time per chunk and memory (docs/benchmarks.md, "Building an index on CPU").
DEFAULT_BATCH_SIZE = 8
# Texts tokenized at a time before only their ids are kept.
_TOKENIZE_SLICE = 1024
_INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")

ProgressCallback = Callable[[int, int], None]
"""Called as `progress(done, total)` after each batch of texts is embedded."""

ModelIds = Callable[[str], "npt.NDArray[np.int32] | None"]
"""A counted text's model input ids, or None (TokenFeeds.recording)."""
TokenIds = Sequence["npt.NDArray[np.int32] | None"]
"""Model input ids given for some of the texts to embed (None: tokenize that text)."""


class TokenFeeds:
    """A model's tokenizer as the encoder reads it: token counts, and padded model inputs.

    `tokenizer` truncates at the model's max_seq_length and pads (as the bundle's
    tokenizer.json does); `input_names` are the encoder graph's inputs.
    """

    def __init__(self, tokenizer: Tokenizer, input_names: Sequence[str]) -> None:
        from tokenizers import Tokenizer

        unknown = [name for name in input_names if name not in _INPUT_NAMES]
        if unknown:
            raise InvalidInputError(f"the encoder takes inputs athenaeum does not feed: {unknown}")
        self.input_names = list(input_names)
        self.pad_id = int((tokenizer.padding or {}).get("pad_id", 0))
        # Without padding: batches are padded in numpy.
        self._unpadded = Tokenizer.from_str(tokenizer.to_str())
        self._unpadded.no_padding()
        sample = self._unpadded.encode("A sample, to see the template's token types.")
        self._types_are_zero = not any(sample.type_ids)
        # Neither truncating nor padding: what the chunker measures text with.
        self._counter = Tokenizer.from_str(tokenizer.to_str())
        self._counter.no_truncation()
        self._counter.no_padding()
        self.special_tokens = len(tokenizer.encode("", add_special_tokens=True).ids)
        self._template = self._special_template()
        self._recorded: dict[str, list[int]] | None = None

    def count_tokens(self, text: str) -> int:
        """Tokens in `text` as the model sees them, without special tokens and untruncated."""
        recorded = self._recorded
        if recorded is not None:
            ids = recorded.get(text)
            if ids is None:
                ids = recorded[text] = self._bare_ids(text)
            return len(ids)
        return len(self._bare_ids(text))

    def _bare_ids(self, text: str) -> list[int]:
        # The batch call without offsets: the same ids for a seventh less time, and the chunker
        # counts about eleven strings per chunk it makes.
        ids: list[int] = self._counter.encode_batch_fast([text], add_special_tokens=False)[0].ids
        return ids

    @contextlib.contextmanager
    def recording(self) -> Iterator[ModelIds]:
        """While open, the tokens of every text counted are kept, and the function it yields
        gives a counted text's model input ids (special tokens added, truncated as the
        tokenizer truncates) without tokenizing it again.

        `athenaeum index` counts every chunk's text while it chunks, so with these its embedding
        stage tokenizes nothing: on a GPU, tokenizing the chunks took longer than the model's
        forward passes (docs/benchmarks.md). The function gives None for a text that was not
        counted, and for every text when the tokenizer's template cannot be rebuilt from the
        bare tokens (checked when the tokenizer is loaded). Close it to free the tokens.
        """
        if self._recorded is not None:
            raise RuntimeError("token counts are already being recorded")
        self._recorded = {}
        try:
            yield self._model_ids
        finally:
            self._recorded = None

    def _model_ids(self, text: str) -> npt.NDArray[np.int32] | None:
        bare = self._recorded.get(text) if self._recorded is not None else None
        if bare is None or self._template is None:
            return None
        head, tail, room = self._template
        return np.asarray([*head, *bare[:room], *tail], dtype=np.int32)

    def _special_template(self) -> tuple[list[int], list[int], int] | None:
        """The special tokens the tokenizer puts before and after one text's tokens, and how
        many of the text's tokens it keeps; None unless that rebuilds exactly what it gives for
        a short text and for one longer than its truncation."""
        truncation = self._unpadded.truncation
        limit = int(truncation["max_length"]) if truncation else None
        sample = "A sample, to see the template's special tokens: 3.5 km/h (ok)."
        full = self._unpadded.encode(sample).ids
        bare = self._bare_ids(sample)
        for start in range(len(full) - len(bare) + 1):
            if full[start : start + len(bare)] == bare:
                head, tail = full[:start], full[start + len(bare) :]
                break
        else:
            return None
        room = (limit - len(head) - len(tail)) if limit is not None else 1 << 30
        if room < 1:
            return None
        longer = " ".join([sample] * (2 + (limit or 0) // max(1, len(bare))))
        rebuilt = [*head, *self._bare_ids(longer)[:room], *tail]
        if rebuilt != self._unpadded.encode(longer).ids:
            return None
        return head, tail, room

    def token_ids(self, texts: Sequence[str]) -> list[npt.NDArray[np.int32]]:
        """Each text's input ids as the model reads them (special tokens added, truncated at
        max_seq_length), unpadded. Tokenized a slice at a time: the tokenizer's encodings carry
        every token's string and offsets, twenty times the size of the ids kept."""
        ids: list[npt.NDArray[np.int32]] = []
        for start in range(0, len(texts), _TOKENIZE_SLICE):
            piece = list(texts[start : start + _TOKENIZE_SLICE])
            encodings = self._unpadded.encode_batch_fast(piece)
            ids.extend(np.asarray(e.ids, dtype=np.int32) for e in encodings)
        return ids

    def fill_ids(self, texts: Sequence[str], given: TokenIds | None) -> list[npt.NDArray[np.int32]]:
        """Each text's input ids: those `given` (as TokenFeeds.recording gives them), and the
        rest tokenized now, in one pass."""
        if given is None:
            return self.token_ids(texts)
        if len(given) != len(texts):
            raise ValueError(f"{len(given)} token id arrays given for {len(texts)} texts")
        missing = [i for i, ids in enumerate(given) if ids is None]
        fresh = iter(self.token_ids([texts[i] for i in missing]))
        return [ids if ids is not None else next(fresh) for ids in given]

    def padded(
        self, ids: Sequence[npt.NDArray[np.int32]], texts: Sequence[str]
    ) -> dict[str, npt.NDArray[np.int64]]:
        """The model inputs of one batch, padded to its longest text: exactly what the padded
        tokenizer gives for `texts`."""
        lengths = np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))
        width = int(lengths.max())
        matrix = np.full((len(ids), width), self.pad_id, dtype=np.int64)
        for row, (seq, length) in enumerate(zip(ids, lengths, strict=True)):
            matrix[row, :length] = seq
        mask = (np.arange(width) < lengths[:, None]).astype(np.int64)
        columns = {"input_ids": matrix, "attention_mask": mask}
        if "token_type_ids" in self.input_names:
            types = np.zeros_like(matrix)
            if not self._types_are_zero:  # a template that marks a single text's tokens
                for row, encoding in enumerate(self._unpadded.encode_batch_fast(list(texts))):
                    types[row, : lengths[row]] = encoding.type_ids
            columns["token_type_ids"] = types
        return {name: columns[name] for name in self.input_names}


def cpu_session(path: Path, *, threads: int | None = None) -> onnxruntime.InferenceSession:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    # Spinning worker threads win only on idle cores; on a shared machine they burn the CPU
    # time the other threads need (measured slower than torch with it on, under load).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if threads is not None:
        options.intra_op_num_threads = threads
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def embed_in_batches(
    session: onnxruntime.InferenceSession,
    feeds: TokenFeeds,
    texts: Sequence[str],
    out: npt.NDArray[np.float32],
    *,
    batch_size: int,
    progress: ProgressCallback | None = None,
    token_ids: TokenIds | None = None,
) -> npt.NDArray[np.float32]:
    """Fill `out` [len(texts), dim] with the encoder's vectors of `texts`, batched by tokens;
    `token_ids` may give the texts' input ids (TokenFeeds.fill_ids).

    Ordered by tokens, not characters: a batch is padded to its longest text, and ordering
    SciFact's chunks by characters left a quarter of the tokens in a batch of 32 as padding
    (0.2% by tokens; docs/benchmarks.md). Longest first, so a too-large batch fails at once.
    """
    ids = feeds.fill_ids(texts, token_ids)
    order = sorted(range(len(texts)), key=lambda i: -len(ids[i]))
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        feed = feeds.padded([ids[i] for i in rows], [texts[i] for i in rows])
        (vectors,) = session.run([ONNX_OUTPUT], feed)
        out[rows] = vectors
        if progress is not None:
            progress(start + len(rows), len(texts))
    return out


class OnnxDocumentEncoder:
    """Embeds documents with an exported fp32 encoder: the graph does pooling and normalisation,
    and `tokenizer_path` is the tokenizer.json exported beside it (truncating at the model's
    max_seq_length)."""

    def __init__(
        self,
        model_path: Path,
        tokenizer_path: Path,
        *,
        max_seq_length: int,
        document_prefix: str = "",
        batch_size: int = DEFAULT_BATCH_SIZE,
        threads: int | None = None,
    ) -> None:
        from tokenizers import Tokenizer

        if batch_size < 1:
            raise InvalidInputError(f"batch size must be at least 1, got {batch_size}")
        self.session = cpu_session(Path(model_path), threads=threads)
        tokenizer = Tokenizer.from_file(str(tokenizer_path))
        tokenizer.enable_truncation(max_length=max_seq_length)
        self.feeds = TokenFeeds(tokenizer, [i.name for i in self.session.get_inputs()])
        self.max_seq_length = max_seq_length
        self.document_prefix = document_prefix
        self.batch_size = batch_size
        width = self.session.get_outputs()[0].shape[-1]
        if not isinstance(width, int):
            raise InvalidInputError(f"the encoder {model_path} does not state its output width")
        self.dimension = width

    def count_tokens(self, text: str) -> int:
        return self.feeds.count_tokens(text)

    def token_cap(self) -> int:
        """Most text tokens a chunk may have so the model reads all of it: max_seq_length less
        the special tokens and the document prefix."""
        prefix = self.count_tokens(self.document_prefix) if self.document_prefix else 0
        return self.max_seq_length - self.feeds.special_tokens - prefix

    def embed_documents(
        self, texts: Sequence[str], progress: ProgressCallback | None = None
    ) -> npt.NDArray[np.float32]:
        """Vectors [len(texts), dim], document prefix on."""
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        if not texts:
            return out
        prefixed = [self.document_prefix + t for t in texts]
        return embed_in_batches(
            self.session, self.feeds, prefixed, out, batch_size=self.batch_size, progress=progress
        )
