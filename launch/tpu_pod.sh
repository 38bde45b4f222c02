#!/usr/bin/env bash
# Runs one medjax command on every worker of a Cloud TPU VM pod slice:
# create the slice -> install medjax on every worker (third_party/requirements-tpu.txt) -> run the
# command on all of them at once (jax.distributed starts from the TPU metadata), logs streamed here
# -> delete the slice.
#
#   launch/tpu_pod.sh NAME ZONE ACCELERATOR -- python -m medjax.main --config=configs/cp_ift.py \
#       --config.mesh.fsdp=-1 --workdir=/mnt/shared/run
#
# Environment:
#   MEDJAX_REPO   git URL to install from (default: this checkout's origin remote)
#   MEDJAX_REF    branch or tag (default: main)
#   TPU_RUNTIME   TPU VM software version (default: tpu-ubuntu2204-base)
#   SPOT=1        create a spot (preemptible) slice
#   KEEP=1        keep the slice afterwards (re-run with the same NAME to reuse it: creation is skipped)
#   DRY_RUN=1     print the gcloud commands instead of running them
# The --workdir must be storage every worker shares (a Filestore or gcsfuse mount): checkpoints
# are written by all workers together; metrics and exports by worker 0 only.
set -euo pipefail

if [[ $# -lt 5 || "$4" != "--" ]]; then
  sed -n '2,18p' "$0" >&2
  exit 2
fi
NAME=$1 ZONE=$2 ACCELERATOR=$3
shift 4
COMMAND=$(printf '%q ' "$@")
REPO=${MEDJAX_REPO:-$(git -C "$(dirname "$0")" remote get-url origin 2>/dev/null || echo "")}
REF=${MEDJAX_REF:-main}
RUNTIME=${TPU_RUNTIME:-tpu-ubuntu2204-base}
LOG="tpu-${NAME}-$(date +%Y%m%d-%H%M%S).log"
if [[ -z "$REPO" ]]; then
  echo "tpu_pod.sh: set MEDJAX_REPO to the git URL that workers install medjax from" >&2
  exit 2
fi

gcloud_() {  # every cloud action goes through here so DRY_RUN can show it
  if [[ "${DRY_RUN:-0}" == 1 ]]; then echo "gcloud $*"; else gcloud "$@"; fi
}
on_all_workers() {
  gcloud_ compute tpus tpu-vm ssh "$NAME" --zone="$ZONE" --worker=all --command="$1"
}
delete_slice() {
  if [[ "${KEEP:-0}" != 1 ]]; then gcloud_ compute tpus tpu-vm delete "$NAME" --zone="$ZONE" --quiet; fi
}

if [[ "${DRY_RUN:-0}" == 1 ]] || ! gcloud compute tpus tpu-vm describe "$NAME" --zone="$ZONE" >/dev/null 2>&1; then
  gcloud_ compute tpus tpu-vm create "$NAME" --zone="$ZONE" --accelerator-type="$ACCELERATOR" \
    --version="$RUNTIME" ${SPOT:+--spot}
fi
trap delete_slice EXIT  # the slice costs money until deleted, even when a step below fails

on_all_workers "set -e; if [ ! -d medjax ]; then git clone --branch $REF $REPO medjax; fi; \
cd medjax && git fetch -q origin $REF && git checkout -q FETCH_HEAD && \
python3 -m pip install -q -r third_party/requirements-tpu.txt && python3 -m pip install -q -e ."

# the same command on every worker, streamed here and to $LOG; only worker 0 prints progress
on_all_workers "cd medjax && MEDJAX_DISTRIBUTED=1 $COMMAND" 2>&1 | tee "$LOG"
echo "log: $LOG"
