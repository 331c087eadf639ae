#!/usr/bin/env bash
# Train on a multi-host Cloud TPU slice: create (or reuse) the TPU VM slice, ship this
# checkout to every worker, install it, and run the same main on all workers.
#
#   TPU_NAME=tofa-v4 TPU_ZONE=us-central2-b TPU_TYPE=v4-32 \
#     launch/tpu_pod.sh --config=configs/aircraft.py --workdir=gs://BUCKET/tofa/aircraft \
#     [--config.x=y ...]
#
# Env: TPU_NAME, TPU_ZONE, TPU_TYPE (e.g. v4-32, v5litepod-64), TPU_VERSION (the TPU VM
# image, default tpu-ubuntu2204-base), TPU_SPOT=1 (spot/preemptible capacity),
# TFDS_GCS (optional gs:// folder of prepared TFDS data, copied to each worker's
# ~/tensorflow_datasets), DRY_RUN=1 (print the commands instead of running them).
# The workdir must be shared storage (gs://): every worker writes its checkpoint shards
# there, and process 0 writes metrics and the subnet record. JAX detects the pod, so
# main needs no distributed flags. Re-running after a preemption recreates the slice if
# it is gone and resumes from the workdir's latest checkpoint.
set -euo pipefail

: "${TPU_NAME:?set TPU_NAME}" "${TPU_ZONE:?set TPU_ZONE}" "${TPU_TYPE:?set TPU_TYPE}"
VERSION="${TPU_VERSION:-tpu-ubuntu2204-base}"
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

SETUP='set -e; rm -rf ~/tofa_jax && mkdir -p ~/tofa_jax && tar -xzf ~/tofa_jax_src.tgz -C ~/tofa_jax
python3 -m venv ~/tofa_venv && . ~/tofa_venv/bin/activate
pip install -q -U pip && pip install -q -e ~/tofa_jax "jax[tpu]==0.10.2" google-cloud-storage'
if [[ -n "${TFDS_GCS:-}" ]]; then
  SETUP+="
mkdir -p ~/tensorflow_datasets && gcloud storage rsync -r ${TFDS_GCS} ~/tensorflow_datasets"
fi
tpu ssh "$TPU_NAME" --worker=all --command="$SETUP"

# One process per worker; jax.distributed.initialize() finds the slice by itself.
tpu ssh "$TPU_NAME" --worker=all \
  --command="cd ~/tofa_jax && . ~/tofa_venv/bin/activate && python -m tofa_jax.main${MAIN_ARGS}"
