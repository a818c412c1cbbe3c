"""The ONNX export of a BERT sentence-transformers model, written from its files without torch.

On CPU `athenaeum index` embeds documents with onnxruntime; torch was there only to load the model
and trace it into ONNX, and torch, sentence-transformers and the model held most of the process's
memory before any work (docs/benchmarks.md, "Memory"). For a BERT model (all-MiniLM-L6-v2 is one)
this module reads the folder's files (config.json, the sentence-transformers module configs,
tokenizer.json and the safetensors weights) and writes the graph `torch.onnx.export` traces from
the model with eager attention: the same inputs, operators in the same order, weights and output
(pooled and, where the model normalises, unit vectors).

Only what it reproduces exactly is read. `read_bert_folder` returns None, and the caller loads
the model with sentence-transformers and exports it with torch, for anything else: another
architecture, relative positions, another activation, a Dense module, a pooling mode or a
tokenizer it does not rebuild, weights that are not fp32 safetensors in one file.
"""

from __future__ import annotations

import json
import logging
import math
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    import onnx

logger = logging.getLogger(__name__)

POOLING_MODES: tuple[str, ...] = ("mean", "cls", "max", "mean_sqrt_len_tokens")
INPUT_NAMES: tuple[str, ...] = ("input_ids", "attention_mask", "token_type_ids")
WEIGHTS_FILE = "model.safetensors"
# A protobuf message cannot exceed 2 GiB, and the graph is written as one.
_MAX_WEIGHT_BYTES = 1_800_000_000
# What sentence-transformers writes in sentence_bert_config.json for a plain text encoder
# (besides max_seq_length and do_lower_case), as given or at its defaults.
_TRANSFORMER_DEFAULTS: dict[str, object] = {
    "transformer_task": "feature-extraction",
    "modality_config": {"text": {"method": "forward", "method_output_name": "last_hidden_state"}},
    "module_output_name": "token_embeddings",
    "backend": "torch",
    "model_args": {},
    "tokenizer_args": {},
    "config_args": {},
    "model_kwargs": {},
    "processor_kwargs": {},
    "config_kwargs": {},
}
_LEGACY_POOLING = {
    "pooling_mode_cls_token": "cls",
    "pooling_mode_max_tokens": "max",
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len_tokens",
    "pooling_mode_weightedmean_tokens": "weightedmean",
    "pooling_mode_lasttoken": "lasttoken",
}
# BertTokenizer's special tokens and their defaults.
_SPECIAL_TOKENS = {
    "unk_token": "[UNK]",
    "sep_token": "[SEP]",
    "pad_token": "[PAD]",
    "cls_token": "[CLS]",
    "mask_token": "[MASK]",
}


class _Unsupported(Exception):
    """The folder holds something this module does not rebuild exactly."""


@dataclass(frozen=True)
class BertConfig:
    vocab_size: int
    hidden_size: int
    layers: int
    heads: int
    intermediate_size: int
    max_position_embeddings: int
    type_vocab_size: int
    layer_norm_eps: float


@dataclass(frozen=True)
class BertFolder:
    """What a sentence-transformers BERT folder says, read and checked without torch."""

    folder: Path
    config: BertConfig
    weights: Path
    weight_prefix: str  # "" for a BertModel checkpoint, "bert." for one saved with a head
    pooling: str
    normalize: bool
    max_seq_length: int
    tokenizer_json: str  # tokenizer.json as shipped: the tokenizer transformers builds from it
    pad_token: str

    @property
    def dimension(self) -> int:
        return self.config.hidden_size

    @property
    def input_names(self) -> list[str]:
        return list(INPUT_NAMES)


def read_bert_folder(folder: Path) -> BertFolder | None:
    """The model in `folder` if this module exports it exactly, else None (and the reason,
    logged at INFO)."""
    try:
        return _read(folder)
    except _Unsupported as exc:
        logger.info("%s is exported with torch: %s", folder, exc)
        return None


def _read(folder: Path) -> BertFolder:
    modules = _json(folder / "modules.json")
    if not isinstance(modules, list) or not all(isinstance(m, dict) for m in modules):
        raise _Unsupported("modules.json is not a list of modules")
    kinds = [str(m.get("type", "")).rsplit(".", 1)[-1] for m in modules]
    if kinds not in (["Transformer", "Pooling"], ["Transformer", "Pooling", "Normalize"]):
        raise _Unsupported(f"modules {kinds}, not Transformer, Pooling (and Normalize)")
    root = folder / str(modules[0].get("path", ""))
    config = _bert_config(_json_object(root / "config.json"))
    pooling = _pooling(_json_object(folder / str(modules[1].get("path", "")) / "config.json"))
    if pooling[1] != config.hidden_size:
        raise _Unsupported(f"pooling dimension {pooling[1]} is not the hidden size")
    max_seq_length = _max_seq_length(root, config)
    st_config = folder / "config_sentence_transformers.json"
    if st_config.is_file():
        saved = _json_object(st_config)
        if saved.get("default_prompt_name") is not None:
            raise _Unsupported("a default prompt is set")
        if saved.get("model_type", "SentenceTransformer") != "SentenceTransformer":
            raise _Unsupported(f"model type {saved.get('model_type')!r}")
    tokenizer_json, pad_token = _tokenizer(root)
    weights, prefix = _weights(root / WEIGHTS_FILE, config)
    return BertFolder(
        folder=folder,
        config=config,
        weights=weights,
        weight_prefix=prefix,
        pooling=pooling[0],
        normalize=len(kinds) == 3,
        max_seq_length=max_seq_length,
        tokenizer_json=tokenizer_json,
        pad_token=pad_token,
    )


def _json(path: Path) -> Any:
    try:
        return json.loads(path.read_text("utf-8"))
    except FileNotFoundError as exc:
        raise _Unsupported(f"no {path.name}") from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _Unsupported(f"{path.name} cannot be read ({exc})") from exc


def _json_object(path: Path) -> dict[str, Any]:
    value = _json(path)
    if not isinstance(value, dict):
        raise _Unsupported(f"{path.name} is not a JSON object")
    return value


def _bert_config(raw: Mapping[str, Any]) -> BertConfig:
    checks = {
        "model_type": (raw.get("model_type"), "bert"),
        "position_embedding_type": (raw.get("position_embedding_type", "absolute"), "absolute"),
        "hidden_act": (raw.get("hidden_act", "gelu"), "gelu"),
        "is_decoder": (bool(raw.get("is_decoder", False)), False),
        "add_cross_attention": (bool(raw.get("add_cross_attention", False)), False),
        "torch_dtype": (raw.get("torch_dtype") or "float32", "float32"),
        "dtype": (raw.get("dtype") or "float32", "float32"),
    }
    for key, (value, wanted) in checks.items():
        if value != wanted:
            raise _Unsupported(f"config.json {key} is {value!r}, not {wanted!r}")
    try:
        config = BertConfig(
            vocab_size=int(raw["vocab_size"]),
            hidden_size=int(raw["hidden_size"]),
            layers=int(raw["num_hidden_layers"]),
            heads=int(raw["num_attention_heads"]),
            intermediate_size=int(raw["intermediate_size"]),
            max_position_embeddings=int(raw.get("max_position_embeddings", 512)),
            type_vocab_size=int(raw.get("type_vocab_size", 2)),
            layer_norm_eps=float(raw.get("layer_norm_eps", 1e-12)),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise _Unsupported(f"config.json lacks or garbles {exc}") from exc
    if config.heads < 1 or config.hidden_size % config.heads:
        raise _Unsupported("the hidden size is not a multiple of the attention heads")
    return config


def _pooling(raw: Mapping[str, Any]) -> tuple[str, int]:
    """The pooling mode and input dimension, read as sentence-transformers reads them."""
    mode: object = raw.get("pooling_mode")
    if mode is None:
        active = [name for key, name in _LEGACY_POOLING.items() if raw.get(key)]
        mode = active or ["mean"]
    if isinstance(mode, list) and len(mode) == 1:
        mode = mode[0]
    if mode not in POOLING_MODES:
        raise _Unsupported(f"pooling {mode!r}")
    if not raw.get("include_prompt", True):
        raise _Unsupported("the prompt is excluded from pooling")
    dimension = raw.get("embedding_dimension", raw.get("word_embedding_dimension"))
    if not isinstance(dimension, int):
        raise _Unsupported("the pooling config gives no dimension")
    return str(mode), dimension


def _max_seq_length(root: Path, config: BertConfig) -> int:
    """sentence_bert_config.json's max_seq_length: without it sentence-transformers takes the
    tokenizer's, which this module does not work out."""
    raw = _json_object(root / "sentence_bert_config.json")
    length = raw.get("max_seq_length")
    if not isinstance(length, int) or not 0 < length <= config.max_position_embeddings:
        raise _Unsupported(f"max_seq_length {length!r}")
    if raw.get("do_lower_case", False):
        raise _Unsupported("sentence-transformers lowercases the input itself")
    for key, value in raw.items():
        if key in ("max_seq_length", "do_lower_case"):
            continue
        default = _TRANSFORMER_DEFAULTS.get(key, KeyError)
        if value != default and not (default == {} and value is None):
            raise _Unsupported(f"sentence_bert_config.json sets {key}")
    return length


def _tokenizer(root: Path) -> tuple[str, str]:
    """tokenizer.json, checked to be the tokenizer transformers' BertTokenizer builds from the
    folder: the same normalizer, pre-tokenizer, WordPiece settings, template and special tokens
    that tokenizer_config.json asks for (transformers 5 rebuilds all but the vocabulary from
    them; 4 loads the file and corrects the normalizer). Returns the file and the pad token."""
    text = _text(root / "tokenizer.json")
    try:
        spec = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _Unsupported(f"tokenizer.json cannot be read ({exc})") from exc
    settings = _json_object(root / "tokenizer_config.json")
    special_map = (
        _json_object(root / "special_tokens_map.json")
        if (root / "special_tokens_map.json").is_file()
        else {}
    )
    if settings.get("tokenizer_class", "BertTokenizer") not in (
        "BertTokenizer",
        "BertTokenizerFast",
    ):
        raise _Unsupported(f"tokenizer class {settings.get('tokenizer_class')!r}")
    for key in ("additional_special_tokens", "extra_special_tokens", "never_split"):
        if settings.get(key) or special_map.get(key):
            raise _Unsupported(f"tokenizer_config.json sets {key}")
    if not settings.get("do_basic_tokenize", True):
        raise _Unsupported("the basic tokenizer is switched off")
    tokens: dict[str, str] = {}
    for key, default in _SPECIAL_TOKENS.items():
        given = {
            token
            for token in (_token(settings.get(key)), _token(special_map.get(key)))
            if token is not None
        }
        if len(given) > 1:
            raise _Unsupported(
                f"tokenizer_config.json and special_tokens_map.json disagree on {key}"
            )
        tokens[key] = given.pop() if given else default
    model = spec.get("model") or {}
    vocab = model.get("vocab")
    if not isinstance(vocab, dict) or not all(t in vocab for t in tokens.values()):
        raise _Unsupported("the vocabulary lacks a special token")
    wanted: dict[str, object] = {
        "normalizer": {
            "type": "BertNormalizer",
            "clean_text": True,
            "handle_chinese_chars": settings.get("tokenize_chinese_chars", True),
            "strip_accents": settings.get("strip_accents"),
            "lowercase": settings.get("do_lower_case", True),
        },
        "pre_tokenizer": {"type": "BertPreTokenizer"},
        "model": {
            "type": "WordPiece",
            "unk_token": tokens["unk_token"],
            "continuing_subword_prefix": "##",
            "max_input_chars_per_word": 100,
        },
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [
                {"SpecialToken": {"id": tokens["cls_token"], "type_id": 0}},
                {"Sequence": {"id": "A", "type_id": 0}},
                {"SpecialToken": {"id": tokens["sep_token"], "type_id": 0}},
            ],
            "special_tokens": {
                token: {"id": token, "ids": [vocab[token]], "tokens": [token]}
                for token in (tokens["cls_token"], tokens["sep_token"])
            },
        },
    }
    for part, want in wanted.items():
        have = spec.get(part) or {}
        assert isinstance(want, dict)
        if not isinstance(have, dict) or any(have.get(k) != v for k, v in want.items()):
            raise _Unsupported(f"tokenizer.json's {part} is not BertTokenizer's")
    added = spec.get("added_tokens") or []
    plain = {"special": True, "single_word": False, "lstrip": False, "rstrip": False}
    if {a.get("content") for a in added} != set(tokens.values()) or any(
        any(a.get(k) != v for k, v in plain.items())
        or a.get("normalized", False)
        or vocab.get(a.get("content")) != a.get("id")
        for a in added
    ):
        raise _Unsupported("tokenizer.json's added tokens are not the special tokens alone")
    declared = settings.get("added_tokens_decoder") or {}
    if not isinstance(declared, dict) or any(
        not isinstance(v, dict) or v.get("content") not in tokens.values()
        for v in declared.values()
    ):
        raise _Unsupported("tokenizer_config.json adds tokens")
    return text, tokens["pad_token"]


def _token(value: object) -> str | None:
    if isinstance(value, dict):
        value = value.get("content")
    return value if isinstance(value, str) else None


def _text(path: Path) -> str:
    try:
        return path.read_text("utf-8")
    except FileNotFoundError as exc:
        raise _Unsupported(f"no {path.name}") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise _Unsupported(f"{path.name} cannot be read ({exc})") from exc


# --- weights ------------------------------------------------------------------------------------


def _required_weights(config: BertConfig) -> dict[str, tuple[int, ...]]:
    """Every tensor the encoder uses and its shape, named as in a BertModel checkpoint."""
    h, i = config.hidden_size, config.intermediate_size
    shapes: dict[str, tuple[int, ...]] = {
        "embeddings.word_embeddings.weight": (config.vocab_size, h),
        "embeddings.position_embeddings.weight": (config.max_position_embeddings, h),
        "embeddings.token_type_embeddings.weight": (config.type_vocab_size, h),
        "embeddings.LayerNorm.weight": (h,),
        "embeddings.LayerNorm.bias": (h,),
    }
    for n in range(config.layers):
        layer = f"encoder.layer.{n}."
        linear = {
            "attention.self.query": (h, h),
            "attention.self.key": (h, h),
            "attention.self.value": (h, h),
            "attention.output.dense": (h, h),
            "intermediate.dense": (i, h),
            "output.dense": (h, i),
        }
        for name, (rows, columns) in linear.items():
            shapes[f"{layer}{name}.weight"] = (rows, columns)
            shapes[f"{layer}{name}.bias"] = (rows,)
        for name in ("attention.output.LayerNorm", "output.LayerNorm"):
            shapes[f"{layer}{name}.weight"] = (h,)
            shapes[f"{layer}{name}.bias"] = (h,)
    return shapes


def _weights(path: Path, config: BertConfig) -> tuple[Path, str]:
    """The weights file and its name prefix, once every tensor the encoder needs is in it as
    fp32 with the shape the config implies."""
    header = _safetensors_header(path)
    prefix = "bert." if "bert.embeddings.word_embeddings.weight" in header else ""
    total = 0
    for name, shape in _required_weights(config).items():
        entry = header.get(prefix + name)
        if not isinstance(entry, dict):
            raise _Unsupported(f"the weights lack {prefix + name}")
        if entry.get("dtype") != "F32" or tuple(entry.get("shape", ())) != shape:
            raise _Unsupported(f"{prefix + name} is not fp32 of shape {shape}")
        total += 4 * math.prod(shape)
    if total > _MAX_WEIGHT_BYTES:
        raise _Unsupported("the weights are too large for one ONNX file")
    return path, prefix


def _safetensors_header(path: Path) -> dict[str, Any]:
    """The JSON header of a safetensors file: 8 bytes of little-endian length, then the JSON."""
    try:
        with path.open("rb") as f:
            (length,) = struct.unpack("<Q", f.read(8))
            if length > 100_000_000:
                raise _Unsupported(f"{path.name} has a {length}-byte header")
            header = json.loads(f.read(length))
    except FileNotFoundError as exc:
        raise _Unsupported(
            f"no {path.name} (sharded or .bin weights are exported with torch)"
        ) from exc
    except (OSError, struct.error, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _Unsupported(f"{path.name} cannot be read ({exc})") from exc
    if not isinstance(header, dict):
        raise _Unsupported(f"{path.name} has no header")
    return header


def read_safetensors(path: Path) -> dict[str, npt.NDArray[Any]]:
    """Every tensor of a safetensors file whose dtype numpy has, as read-only arrays mapped from
    the file (nothing is read until used)."""
    header = _safetensors_header(path)
    with path.open("rb") as f:
        (length,) = struct.unpack("<Q", f.read(8))
    data = np.memmap(path, dtype=np.uint8, mode="r", offset=8 + length)
    dtypes = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4", "U8": "u1"}
    tensors: dict[str, npt.NDArray[Any]] = {}
    for name, entry in header.items():
        if name == "__metadata__" or entry.get("dtype") not in dtypes:
            continue
        start, end = entry["data_offsets"]
        dtype = np.dtype(dtypes[entry["dtype"]])
        shape = tuple(int(d) for d in entry["shape"])
        if end - start != dtype.itemsize * math.prod(shape) or end > data.size:
            raise ValueError(f"{path}: {name} does not match its recorded size")
        tensors[name] = data[start:end].view(dtype).reshape(shape)
    return tensors


# --- the graph ----------------------------------------------------------------------------------


class _Graph:
    """Nodes and initializers in the order they are added, each output named after its node."""

    def __init__(self) -> None:
        from onnx import helper, numpy_helper

        self._helper = helper
        self._numpy = numpy_helper
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._count = 0

    def tensor(self, name: str, array: npt.NDArray[Any]) -> str:
        self.initializers.append(self._numpy.from_array(np.asarray(array, order="C"), name))
        return name

    def constant(self, value: object, dtype: type[np.generic] = np.float32) -> str:
        self._count += 1
        return self.tensor(f"const_{self._count}", np.asarray(value, dtype=dtype))

    def op(self, op_type: str, *inputs: str, output: str | None = None, **attrs: Any) -> str:
        self._count += 1
        name = f"/{op_type}_{self._count}"
        out = output or name + "_output"
        self.nodes.append(self._helper.make_node(op_type, list(inputs), [out], name, **attrs))
        return out


def export_bert_onnx(model: BertFolder, path: Path, *, output: str, opset: int) -> None:
    """Write `model` to `path` as one ONNX graph: inputs input_ids, attention_mask and
    token_type_ids (int64, [batch, sequence]), output `output` ([batch, dimension] float32)."""
    import onnx

    proto = _encoder(model, output, opset)
    onnx.checker.check_model(proto)
    onnx.save(proto, str(path))


def _encoder(model: BertFolder, output: str, opset: int) -> onnx.ModelProto:
    from onnx import TensorProto, helper

    config = model.config
    weights = read_safetensors(model.weights)
    g = _Graph()
    i64 = np.int64

    def weight(name: str) -> str:
        return g.tensor(name, weights[model.weight_prefix + name])

    def linear(x: str, name: str) -> str:
        transposed = g.tensor(name + ".weight", weights[model.weight_prefix + name + ".weight"].T)
        return g.op("Add", weight(name + ".bias"), g.op("MatMul", x, transposed))

    def layer_norm(x: str, name: str) -> str:
        return g.op(
            "LayerNormalization",
            x,
            weight(name + ".weight"),
            weight(name + ".bias"),
            axis=-1,
            epsilon=config.layer_norm_eps,
        )

    ids, mask, types = INPUT_NAMES
    # Position ids 0..sequence-1, sliced from a constant [1, max positions] row as
    # transformers' own position_ids buffer is.
    positions = g.op(
        "Slice",
        g.constant(np.arange(config.max_position_embeddings)[None, :], i64),
        g.constant([0], i64),
        g.op("Shape", ids, start=1, end=2),
        g.constant([1], i64),
    )
    x = g.op(
        "Add",
        g.op(
            "Add",
            g.op("Gather", weight("embeddings.word_embeddings.weight"), ids),
            g.op("Gather", weight("embeddings.token_type_embeddings.weight"), types),
        ),
        g.op("Gather", weight("embeddings.position_embeddings.weight"), positions),
    )
    x = layer_norm(x, "embeddings.LayerNorm")

    # transformers' eager attention mask: 0 where attended, the lowest float32 where not,
    # [batch, 1, 1, sequence] against scores of [batch, heads, sequence, sequence].
    lowest = float(np.finfo(np.float32).min)
    bias = g.op(
        "Where", g.op("Cast", mask, to=TensorProto.BOOL), g.constant(0.0), g.constant(lowest)
    )
    bias = g.op("Unsqueeze", bias, g.constant([1, 2], i64))
    head_size = config.hidden_size // config.heads
    split = g.constant([0, 0, config.heads, head_size], i64)
    merge = g.constant([0, 0, config.hidden_size], i64)
    scale = g.constant(head_size**-0.5)
    sqrt2, one, half = g.constant(math.sqrt(2.0)), g.constant(1.0), g.constant(0.5)
    for n in range(config.layers):
        layer = f"encoder.layer.{n}."
        heads = {
            part: g.op("Reshape", linear(x, f"{layer}attention.self.{part}"), split)
            for part in ("query", "key", "value")
        }
        query = g.op("Transpose", heads["query"], perm=[0, 2, 1, 3])
        key = g.op("Transpose", heads["key"], perm=[0, 2, 3, 1])
        value = g.op("Transpose", heads["value"], perm=[0, 2, 1, 3])
        scores = g.op("Add", g.op("Mul", g.op("MatMul", query, key), scale), bias)
        context = g.op("MatMul", g.op("Softmax", scores, axis=-1), value)
        context = g.op("Reshape", g.op("Transpose", context, perm=[0, 2, 1, 3]), merge)
        attended = g.op("Add", linear(context, f"{layer}attention.output.dense"), x)
        x = layer_norm(attended, f"{layer}attention.output.LayerNorm")
        inner = linear(x, f"{layer}intermediate.dense")
        # gelu(h) = h * (1 + erf(h / sqrt 2)) / 2, in the order torch's exporter writes it
        gelu = g.op("Add", g.op("Erf", g.op("Div", inner, sqrt2)), one)
        gelu = g.op("Mul", g.op("Mul", inner, gelu), half)
        x = layer_norm(
            g.op("Add", linear(gelu, f"{layer}output.dense"), x), f"{layer}output.LayerNorm"
        )

    last = output if not model.normalize else None
    weights_mask = g.op(
        "Cast", g.op("Unsqueeze", mask, g.constant([-1], i64)), to=TensorProto.FLOAT
    )
    if model.pooling == "cls":
        pooled = g.op("Gather", x, g.constant(0, i64), axis=1, output=last)
    elif model.pooling == "max":
        masked = g.op(
            "Where",
            g.op("Equal", weights_mask, g.constant(0.0)),
            g.constant(float("-inf")),
            x,
        )
        pooled = g.op("ReduceMax", masked, axes=[1], keepdims=0, output=last)
    else:
        sequence_axis = g.constant([1], i64)
        counts = g.op(
            "Clip", g.op("ReduceSum", weights_mask, sequence_axis, keepdims=0), g.constant(1e-9)
        )
        if model.pooling == "mean_sqrt_len_tokens":
            counts = g.op("Sqrt", counts)
        summed = g.op("ReduceSum", g.op("Mul", x, weights_mask), sequence_axis, keepdims=0)
        pooled = g.op("Div", summed, counts, output=last)
    if model.normalize:
        norm = g.op("ReduceL2", pooled, axes=[1], keepdims=1)
        g.op("Div", pooled, g.op("Clip", norm, g.constant(1e-12)), output=output)

    dims = ["batch", "sequence"]
    graph = helper.make_graph(
        g.nodes,
        "sentence_encoder",
        [helper.make_tensor_value_info(name, TensorProto.INT64, dims) for name in INPUT_NAMES],
        [helper.make_tensor_value_info(output, TensorProto.FLOAT, ["batch", model.dimension])],
        initializer=g.initializers,
    )
    # IR 8 is what torch.onnx.export writes at opset 17: older onnxruntime releases read it.
    return helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", opset)],
        producer_name="athenaeum",
        ir_version=8,
    )
