#!/usr/bin/env bash
# Train on a Cloud TPU VM slice (one host or many): create (or reuse) the slice, ship
# this checkout to every worker, install it, and run the same main on all workers.
#
#   TPU_NAME=tofa-v4 TPU_ZONE=us-central2-b TPU_TYPE=v4-32 \
#     launch/tpu_pod.sh --config=configs/aircraft.py --workdir=gs://BUCKET/tofa/aircraft \
#     [--config.jax_cache_dir=gs://BUCKET/tofa/jax_cache] [--config.x=y ...]
#
# Env: TPU_NAME, TPU_ZONE, TPU_TYPE (the accelerator type: v4-32, v5litepod-64, v5p-128,
# v6e-16, ...), TPU_VERSION (the TPU VM software version; by default the one Cloud TPU's
# docs name for the generation: v2/v3/v4 tpu-ubuntu2204-base, v5e v2-alpha-tpuv5-lite,
# v5p v2-alpha-tpuv5, v6e v2-alpha-tpuv6e), TPU_SPOT=1 (spot capacity), TFDS_GCS
# (optional gs:// folder of prepared TFDS data, copied to each worker's
# ~/tensorflow_datasets), DRY_RUN=1 (print the commands instead of running them).
#
# The images ship Python 3.10 and jax 0.10.2 needs 3.11 or later: each worker installs
# uv from PyPI with the image's pip, and uv builds the venv on a CPython 3.11 of its own.
# main runs with --distributed=on, so jax.distributed.initialize() reads the slice from
# the TPU VM metadata server (a later --distributed=... overrides it). The workdir must be
# shared storage (gs://): every worker writes its checkpoint shards there. On SIGTERM
# (maintenance, spot preemption) the workers agree on a step through JAX's preemption
# sync point, checkpoint it and exit 0; re-running this script recreates the slice if it
# is gone and resumes from the workdir's latest checkpoint.
set -euo pipefail

: "${TPU_NAME:?set TPU_NAME}" "${TPU_ZONE:?set TPU_ZONE}" "${TPU_TYPE:?set TPU_TYPE}"
case "$TPU_TYPE" in
  v2-* | v3-* | v4-*) VERSION=tpu-ubuntu2204-base ;;
  v5litepod-* | v5e-*) VERSION=v2-alpha-tpuv5-lite ;;
  v5p-*) VERSION=v2-alpha-tpuv5 ;;
  v6e-*) VERSION=v2-alpha-tpuv6e ;;
  *) VERSION="" ;;
esac
VERSION="${TPU_VERSION:-$VERSION}"
if [[ -z "$VERSION" ]]; then
  echo "error: TPU_TYPE=$TPU_TYPE has no default software version; use v4-N, v5litepod-N," \
    "v5p-N or v6e-N (or v2-N, v3-N), or set TPU_VERSION" >&2
  exit 2
fi
HERE="$(cd "$(dirname "$0")/.." && pwd)"
ARGS=("$@")
printf -v MAIN_ARGS ' %q' "${ARGS[@]}"
if [[ " ${ARGS[*]} " != *" --workdir=gs://"* ]]; then
  echo "warning: --workdir is not on gs://; multi-host checkpoints need shared storage" >&2
fi

run() {
  if [[ "${DRY_RUN:-0}" == 1 ]]; then printf '%q ' "$@"; echo; else "$@"; fi
}
tpu() { run gcloud compute tpus tpu-vm "$@" --zone="$TPU_ZONE"; }

if [[ "${DRY_RUN:-0}" == 1 ]] || ! gcloud compute tpus tpu-vm describe "$TPU_NAME" \
    --zone="$TPU_ZONE" >/dev/null 2>&1; then
  tpu create "$TPU_NAME" --accelerator-type="$TPU_TYPE" --version="$VERSION" \
    ${TPU_SPOT:+--spot}
fi

# Ship the working tree (package, configs, launch), not the git history or venvs.
TARBALL="$(mktemp -d)/tofa_jax_src.tgz"
run tar -C "$HERE" -czf "$TARBALL" --exclude=.git --exclude='.venv*' --exclude='*.egg-info' .
tpu scp "$TARBALL" "$TPU_NAME":tofa_jax_src.tgz --worker=all

# gcsfs: epath (orbax's metadata, the compilation cache) on gs://; google-cloud-storage:
# tensorboardX's events on gs://.
SETUP='set -e; rm -rf ~/tofa_jax && mkdir -p ~/tofa_jax && tar -xzf ~/tofa_jax_src.tgz -C ~/tofa_jax
python3 -m pip install -q --user uv==0.13.8
~/.local/bin/uv venv -q --clear --python 3.11 ~/tofa_venv
~/.local/bin/uv pip install -q --python ~/tofa_venv/bin/python -e ~/tofa_jax "jax[tpu]==0.10.2" gcsfs google-cloud-storage'
if [[ -n "${TFDS_GCS:-}" ]]; then
  SETUP+="
mkdir -p ~/tensorflow_datasets && gcloud storage rsync -r ${TFDS_GCS} ~/tensorflow_datasets"
fi
tpu ssh "$TPU_NAME" --worker=all --command="$SETUP"

# One process per worker; jax.distributed.initialize() finds the slice by itself.
tpu ssh "$TPU_NAME" --worker=all --command="cd ~/tofa_jax && . ~/tofa_venv/bin/activate \
&& python -m tofa_jax.main --distributed=on${MAIN_ARGS}"
