"""What the files of a sentence-transformers model say about it, read without torch.

`athenaeum index` run on inputs it has already indexed must answer in a moment, so it decides
"nothing changed" before loading the model: it compares the model's fingerprint here with the
one the bundle's manifest recorded. `load_embedder` records the fingerprint computed by this
module, so a full build followed by a run with nothing to do agrees on it.

A model named by a hub commit (a Hugging Face id, or a folder inside the Hugging Face cache,
`.../snapshots/<commit>/`) is that commit: `<model>@<commit>`. Any other local folder is its
files: a sha256 over every file's path, size and content (a folder path can be re-filled with
another model, and a file's time says nothing about its content). A hub id is looked up in the
local Hugging Face cache only, as `HF_HUB_OFFLINE=1` would: a run with nothing to do never asks
the Hub whether a newer commit exists.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from athenaeum.bundle.hashing import sha256_file

FILES_FINGERPRINT_PREFIX = "files-sha256:"
ST_CONFIG_FILE = "config_sentence_transformers.json"
_COMMIT_RE = re.compile(r"^[0-9a-f]{40}$")
# Files sentence-transformers may look for in a hub snapshot; the first one cached locates it.
_SNAPSHOT_PROBES = ("modules.json", "config.json", ST_CONFIG_FILE)


@dataclass(frozen=True)
class ModelFolder:
    """A model's folder on this machine and its identity, as `load_embedder` records it."""

    path: Path
    revision: str | None  # the hub commit, when the folder is a snapshot of one
    fingerprint: str


def commit_in_path(path: Path) -> str | None:
    """The hub commit a folder inside the Hugging Face cache (`.../snapshots/<commit>`) names,
    as given or once its links are resolved."""
    for part in (path.name, path.resolve().name):
        if _COMMIT_RE.match(part):
            return part
    return None


def files_fingerprint(folder: Path) -> str:
    """sha256 over the relative path, size and sha256 of every file under `folder`.

    Hidden files and folders are left out: `.git`, `.cache` (huggingface_hub's download
    metadata) and `.gitattributes` change without the model changing.
    """
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if any(part.startswith(".") for part in rel.parts) or not path.is_file():
            continue
        digest.update(
            f"{rel.as_posix()}\x00{path.stat().st_size}\x00{sha256_file(path)}\n".encode()
        )
    return FILES_FINGERPRINT_PREFIX + digest.hexdigest()


def cached_snapshot(model_id: str) -> Path | None:
    """The folder of `model_id`'s cached commit (the one the cache's `main` points to), or None
    when the Hugging Face cache does not hold it. Never reaches the network."""
    try:
        from huggingface_hub import try_to_load_from_cache
        from huggingface_hub.errors import HFValidationError
    except ImportError:
        return None
    # sentence-transformers keeps models in SENTENCE_TRANSFORMERS_HOME when it is set.
    cache_dir = os.environ.get("SENTENCE_TRANSFORMERS_HOME") or None
    for name in _SNAPSHOT_PROBES:
        try:
            found = try_to_load_from_cache(model_id, name, cache_dir=cache_dir)
        except (HFValidationError, ValueError):
            return None  # not a valid repository id
        if isinstance(found, str):
            folder = Path(found).parent
            return folder if _COMMIT_RE.match(folder.name) else None
    return None


def locate(model: str) -> ModelFolder | None:
    """The folder and identity of `model` (a local folder or a Hugging Face id), or None when
    it cannot be known without loading the model (a hub id that is not in the local cache)."""
    path = Path(model)
    if path.is_dir():
        commit = commit_in_path(path)
        fingerprint = f"{model}@{commit}" if commit else files_fingerprint(path)
        return ModelFolder(path=path, revision=commit, fingerprint=fingerprint)
    snapshot = cached_snapshot(model)
    if snapshot is None:
        return None
    return ModelFolder(
        path=snapshot, revision=snapshot.name, fingerprint=f"{model}@{snapshot.name}"
    )


def default_prefixes(folder: Path) -> tuple[str, str] | None:
    """The query and document prefixes `load_embedder` takes from the model's saved prompts
    when none are given, or None when they cannot be told from the files alone."""
    config = folder / ST_CONFIG_FILE
    if not config.is_file():
        return "", ""
    try:
        prompts = json.loads(config.read_text("utf-8")).get("prompts") or {}
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError):
        return None
    if not isinstance(prompts, dict) or not all(
        isinstance(v, str | None) for v in prompts.values()
    ):
        return None
    if "document" not in prompts and "passage" in prompts:
        # Which of the two becomes the document prefix depends on the sentence-transformers
        # version (6.x always has a "document" prompt, "" when unset); loading the model says.
        return None
    return prompts.get("query") or "", prompts.get("document") or ""
