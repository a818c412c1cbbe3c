#!/usr/bin/env bash
# Builds a Lambda dependency layer without Docker: wheels for the Lambda platform (manylinux
# up to 2_34, CPython 3.12), trimmed, with bytecode compiled by a real Python 3.12.
#
#   layer/build.sh [--profile api|ingest] [--arch x86_64|arm64] [--out DIR]
#
# --profile api (the default): the API function's and the authorizer's layer (requirements.txt),
# into build/layer. --profile ingest: the ingest function's layer (ingest-requirements.txt:
# PyMuPDF, onnxruntime, FAISS, tokenizers; no web stack, no PyTorch), into build/ingest-layer.
# Output: OUT/python/... (the layout Lambda expects), and a size report. Warns over the 180 MiB
# goal (api: it leaves room for a packaged index) and refuses a layer over LAYER_MAX_MIB (default
# 245: Lambda's hard limit is 250 MiB for layers and code together, unzipped). On a host of the
# same architecture it then imports the profile's stack from the layer alone with Python 3.12.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
arch="x86_64"
profile="api"
out=""
max_mib="${LAYER_MAX_MIB:-245}"
goal_mib=180

while [[ $# -gt 0 ]]; do
  case "$1" in
    --profile) profile="$2"; shift 2 ;;
    --arch) arch="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "layer/build.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done

case "$profile" in
  api)
    requirements="$here/requirements.txt"
    out="${out:-$root/build/layer}"
    no_deps=(tokenizers)
    lock_extras=() ;;
  ingest)
    requirements="$here/ingest-requirements.txt"
    out="${out:-$root/build/ingest-layer}"
    no_deps=(tokenizers pymupdf)
    # PyMuPDF and PyYAML are pinned in uv.lock by the build extra.
    lock_extras=(--extra build) ;;
  *) echo "layer/build.sh: --profile must be api or ingest, not $profile" >&2; exit 2 ;;
esac

# Absolute: the import checks below run from inside the layer's folder.
if [[ "$out" != /* ]]; then out="$PWD/$out"; fi

case "$arch" in
  x86_64) platform="x86_64-manylinux_2_34" ;;
  arm64) platform="aarch64-manylinux_2_34" ;;
  *) echo "layer/build.sh: --arch must be x86_64 or arm64, not $arch" >&2; exit 2 ;;
esac

# Bytecode must be written by 3.12: a .pyc from another version is dead weight on Lambda.
py312="${PYTHON312:-}"
if [[ -z "$py312" ]]; then
  for candidate in python3.12 "$HOME/.pyenv/versions/3.12.1/bin/python3.12" \
      "$(uv python find 3.12 2>/dev/null || true)"; do
    if [[ -n "$candidate" ]] && command -v "$candidate" >/dev/null 2>&1; then
      py312="$(command -v "$candidate")"; break
    fi
  done
fi
if [[ -z "$py312" ]] || ! "$py312" -c 'import sys; assert sys.version_info[:2] == (3, 12)' 2>/dev/null; then
  echo "layer/build.sh: needs a Python 3.12 interpreter to compile bytecode;" \
       "install one with 'uv python install 3.12' or set PYTHON312" >&2
  exit 1
fi

command -v uv >/dev/null || { echo "layer/build.sh: needs uv (https://docs.astral.sh/uv/)" >&2; exit 1; }

target="$out/python"
rm -rf "$out"
mkdir -p "$target"
constraints="$(mktemp)"
trap 'rm -f "$constraints"' EXIT

# Pin every package to the versions in uv.lock (base dependencies, and the build extra's for the
# ingest profile).
(cd "$root" && uv export --frozen --no-default-groups "${lock_extras[@]}" --no-hashes \
  --no-emit-project --no-annotate --no-header --format requirements-txt) >"$constraints"

# --link-mode copy: uv would otherwise hard-link the files from its cache (and so share them
# with every virtual environment made from it); the trims below rewrite files in place.
common=(--python-platform "$platform" --python-version 3.12 --only-binary :all:
        --target "$target" --no-compile --quiet
        --link-mode copy)
echo "layer: installing the $profile stack for $platform into $target"
uv pip install "${common[@]}" -r "$requirements" -c "$constraints"
uv pip install "${common[@]}" --no-deps -c "$constraints" "${no_deps[@]}"
# A package the constraints do not name would be resolved from the registry as it is today.
"$py312" -I "$here/lock_check.py" "$root/uv.lock" "$target"

# --- trims (docs/benchmarks.md has what each one saves) ----------------------------------------
file_bytes() { find "$1" -type f -printf '%s\n' | awk '{ s += $1 } END { print s + 0 }'; }
before="$(file_bytes "$target")"
# onnxruntime: the Python binding loads onnxruntime_pybind11_state.so, not this second copy.
rm -f "$target"/onnxruntime/capi/libonnxruntime.so*
rm -rf "$target"/onnxruntime/{tools,quantization,transformers}
# Test suites, type stubs, C headers and static libraries never run on Lambda.
find "$target" -depth -type d \( -name tests -o -name testing -o -name __pycache__ \) \
  -path "$target/*" -prune -exec rm -rf {} +
find "$target" \( -name '*.pyi' -o -name '*.pxd' -o -name '*.h' -o -name '*.a' \) -delete
rm -rf "$target"/numpy/_core/include "$target"/numpy/f2py "$target"/numpy/_pyinstaller \
  "$target"/numpy/_core/_simd.* "$target"/numpy/_core/_*_tests.* "$target"/bin
# numpy's subpackages that load only when touched (np.random, np.fft, np.ma, np.polynomial):
# the engine does dot products, norms and sorting and touches none of them.
rm -rf "$target"/numpy/{random,fft,ma,polynomial}
# Installed as dependencies, never imported by the functions:
#  - protobuf (google/) and flatbuffers: onnxruntime needs them only in its tools (removed above);
#  - jsonschema and its dependencies: mcp validates tool results with it in its client only;
#  - cffi's Python package and pycparser: they build bindings; compiled bindings (cryptography's)
#    need only the _cffi_backend extension, which stays;
#  - faiss.contrib: dataset, clustering and evaluation helpers for notebooks.
# layer/serve_modules.py below imports the stack from the trimmed layer, so a wrong entry here
# fails the build.
# pymupdf 2 (ingest) carries its layout model (pymupdf/layout, ONNX, 52 MiB) and pymupdf4llm in
# its own wheel; the converter blocks both (athenaeum/build/convert.py) and never loads them.
rm -rf "$target"/pymupdf/layout "$target"/pymupdf4llm
unused=(google protobuf flatbuffers jsonschema jsonschema_specifications referencing rpds \
  attr attrs pycparser cffi faiss/contrib)
for name in "${unused[@]}"; do
  rm -rf "${target:?}/$name" "$target/$name"-*.dist-info "$target/${name//_/-}"-*.dist-info
done
# Installers' file lists (pip uninstall reads them; nothing installs into a layer). Metadata and
# licences stay.
rm -f "$target"/*.dist-info/RECORD "$target"/*.dist-info/INSTALLER "$target"/*.dist-info/REQUESTED
rm -rf "$target"/*.dist-info/sboms
# olefile (msoffcrypto-tool's) ships its Python 2 module beside its own; nothing imports it, and
# Python 3 cannot compile it.
rm -f "$target"/olefile/olefile2.py
# Already in the Lambda runtime.
rm -rf "$target"/boto3 "$target"/botocore "$target"/s3transfer "$target"/boto3-* \
  "$target"/botocore-* "$target"/s3transfer-*
# ...but the runtime's botocore may predate what the S3 Vectors backend calls (QueryVectors'
# queryTexts). The locked botocore's model of that one service (about 30 KiB) goes into the layer;
# with index_backend=s3vectors the stack sets AWS_DATA_PATH to it, and botocore reads a model
# found there before its own.
if [[ "$profile" == api ]]; then
  models="$(mktemp -d)"
  # The base constraints do not pin botocore (the serve side does not depend on it); the s3
  # extra's do, through boto3.
  botocore_constraints="$(mktemp)"
  (cd "$root" && uv export --frozen --no-default-groups --extra s3 --no-hashes \
    --no-emit-project --no-annotate --no-header --format requirements-txt) >"$botocore_constraints"
  grep -q '^botocore==' "$botocore_constraints" \
    || { echo "layer/build.sh: uv.lock pins no botocore for the s3 extra" >&2; exit 1; }
  uv pip install --python-platform "$platform" --python-version 3.12 --target "$models" \
    --no-compile --quiet --no-deps -c "$botocore_constraints" botocore
  "$py312" -I "$here/lock_check.py" "$root/uv.lock" "$models"
  rm -f "$botocore_constraints"
  mkdir -p "$target/aws_models"
  cp -r "$models/botocore/data/s3vectors" "$target/aws_models/"
  rm -rf "$models"
fi

host_arch="$(uname -m)"
native=0
if [[ "$host_arch" == "$arch" || ( "$host_arch" == aarch64 && "$arch" == arm64 ) ]]; then
  native=1
fi
# Symbol tables: the Rust extensions (cryptography, tokenizers) and numpy's OpenBLAS ship
# unstripped. --strip-unneeded keeps the dynamic symbols that loading needs; the run of the
# functions below (serve_modules.py) loads every one of these libraries after the strip.
strip_tool="${STRIP:-}"
if [[ -z "$strip_tool" ]]; then
  if (( native )); then
    strip_tool="strip"
  elif [[ "$arch" == arm64 ]] && command -v aarch64-linux-gnu-strip >/dev/null; then
    strip_tool="aarch64-linux-gnu-strip"
  elif [[ "$arch" == x86_64 ]] && command -v x86_64-linux-gnu-strip >/dev/null; then
    strip_tool="x86_64-linux-gnu-strip"
  fi
fi
if [[ -n "$strip_tool" ]] && command -v "$strip_tool" >/dev/null; then
  find "$target" \( -name '*.so' -o -name '*.so.*' \) -print0 \
    | xargs -0 -r "$strip_tool" --strip-unneeded
else
  echo "layer: warning: no strip for $arch (set STRIP=...); shared objects left as shipped" >&2
fi
after_trim="$(file_bytes "$target")"

# Bytecode, compiled by 3.12. unchecked-hash: the layer is read-only, so no mtime checks on each
# import. api, on a host of the layer's architecture: only the files the functions import (found
# by running them, layer/serve_modules.py) get bytecode. ingest: the ingest stack first runs from
# the trimmed layer (layer/ingest_check.py), then everything is compiled: its handler's imports
# are not traced, and its cold start is a small part of a batch. A cross build compiles
# everything and runs nothing.
compile_all() {
  "$py312" -m compileall -q -j 0 --invalidation-mode unchecked-hash "$target" >/dev/null
}
if (( native )) && [[ "$profile" == api ]]; then
  loaded="$(mktemp)"
  trap 'rm -f "$constraints" "$loaded"' EXIT
  if ! (cd "$target" && "$py312" -I -S -B "$here/serve_modules.py" "$target" "$root" \
      ${LAYER_TRACE_INDEX:+"$LAYER_TRACE_INDEX"} >"$loaded"); then
    echo "layer/build.sh: the serve stack does not run from the trimmed layer (above)" >&2
    exit 1
  fi
  (cd "$target" && "$py312" -m compileall -q --invalidation-mode unchecked-hash \
    -i "$loaded" >/dev/null)
  echo "layer: the functions import $(wc -l <"$loaded") modules of the layer; those get bytecode"
elif (( native )); then
  if ! (cd "$target" && "$py312" -I -S -B "$here/ingest_check.py" "$target" "$root" \
      ${LAYER_TRACE_INDEX:+"$LAYER_TRACE_INDEX"}); then
    echo "layer/build.sh: the ingest stack does not run from the trimmed layer (above)" >&2
    exit 1
  fi
  compile_all
else
  compile_all
fi

# What Lambda counts: the bytes of the files (du would add the directories' own blocks).
total="$(file_bytes "$out")"
mib() { awk -v b="$1" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }
echo "layer: $(mib "$before") installed, $(mib "$after_trim") after trims," \
     "$(mib "$total") with 3.12 bytecode ($platform)"
echo "layer: largest packages:"
# awk, not head: head exits after 8 lines and, under pipefail, sort's next write would end the
# script with SIGPIPE (exit 141) whenever its output takes more than one write.
du -sb "$target"/* | sort -rn | awk 'NR <= 8' | while read -r bytes path; do
  printf '  %10s  %s\n' "$(mib "$bytes")" "$(basename "$path")"
done
if (( total > max_mib * 1048576 )); then
  echo "layer/build.sh: the layer is $(mib "$total"), over the ${max_mib} MiB limit;" \
       "with the function code it would not fit Lambda's 250 MiB (unzipped)" >&2
  exit 1
fi
if [[ "$profile" == api ]] && (( total > goal_mib * 1048576 )); then
  echo "layer: warning: over the ${goal_mib} MiB goal; only a small index can be packaged" \
       "with the function, larger ones go to S3 (synth decides and says so)" >&2
fi

if (( native )); then
  # -I -S: no environment, no site-packages at all: only the layer and the package.
  if [[ "$profile" == api ]]; then
    "$py312" -I -S -c "
import sys
sys.path[:0] = ['$target', '$root']
import numpy, faiss, onnxruntime, tokenizers, jwt, cryptography, Stemmer
import athenaeum.server.lambda_handler, athenaeum.server.auth.jwt
print('layer: imports OK under', sys.version.split()[0])
"
  else
    "$py312" -I -S -c "
import sys
sys.path[:0] = ['$target', '$root']
import pymupdf, onnxruntime, faiss, tokenizers, numpy, pydantic, pydantic_settings, Stemmer, yaml
import athenaeum.build.convert, athenaeum.build.chunking, athenaeum.bundle
for name in ('fastapi', 'mangum', 'torch', 'sentence_transformers', 'pymupdf4llm'):
    try:
        __import__(name)
    except ImportError:
        continue
    sys.exit(f'layer: {name} is in the ingest layer')
print('layer: imports OK under', sys.version.split()[0])
"
  fi
fi
