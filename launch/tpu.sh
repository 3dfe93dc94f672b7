#!/usr/bin/env bash
# Runs a dlgrok job on every worker of a Cloud TPU VM or pod slice.
#   launch/tpu.sh --name NAME --zone ZONE --repo GIT_URL [--type v4-32] [--create] [--dry-run] -- MAIN_ARGS...
# MAIN_ARGS go to `python -m dlgrok.main`; give a --workdir every worker can see: a bucket (gs://BUCKET/...) or a
# shared mount. Each worker installs the checkout with its tpu extra: jax[tpu] in pyproject.toml's range, and gcsfs.
set -euo pipefail
name="" zone="" type="v4-8" version="tpu-ubuntu2204-base" repo="" create=0 dry=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --name) name="$2"; shift 2 ;;
    --zone) zone="$2"; shift 2 ;;
    --type) type="$2"; shift 2 ;;
    --version) version="$2"; shift 2 ;;
    --repo) repo="$2"; shift 2 ;;
    --create) create=1; shift ;;
    --dry-run) dry=1; shift ;;
    --) shift; break ;;
    *) echo "launch/tpu.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
[[ -n "$name" && -n "$zone" && -n "$repo" && $# -gt 0 ]] || { echo "usage: launch/tpu.sh --name NAME --zone ZONE --repo GIT_URL [--type T] [--create] [--dry-run] -- MAIN_ARGS..." >&2; exit 2; }
main_args=$(for a in "$@"; do printf '%s ' "${a@Q}"; done)
cmds=()
if [[ $create == 1 ]]; then
  cmds+=("gcloud compute tpus tpu-vm create $name --zone=$zone --accelerator-type=$type --version=$version")
fi
ssh="gcloud compute tpus tpu-vm ssh $name --zone=$zone --worker=all --command"
cmds+=("$ssh \"(test -d dlgrok || git clone $repo dlgrok) && pip install -e './dlgrok[tpu]'\"")
cmds+=("$ssh \"cd dlgrok && DLGROK_DISTRIBUTED=1 python -m dlgrok.main ${main_args% }\"")
for c in "${cmds[@]}"; do
  if [[ $dry == 1 ]]; then echo "$c"; else echo "+ $c" >&2; eval "$c"; fi
done
