#!/usr/bin/env bash
# Run `bench run RECIPE` under torchrun, one process per GPU on this node.
#
#   launch/torchrun.sh [--dry-run] RECIPE [NPROC] [-- extra bench run args]
#
# NPROC defaults to "gpu" (torchrun counts the visible GPUs); on CPU pass a number.
# Multi-node: run the same command on every node with
#   NNODES=<nodes> RDZV_ENDPOINT=<host:port reachable from all nodes> [NODE_RANK=<n>] [RDZV_ID=<job id>]
# --dry-run or DRY_RUN=1 prints the command instead of running it.
set -euo pipefail

usage() { sed -n '2,9s/^# \{0,1\}//p' "$0"; }

dry_run=${DRY_RUN:-0}
positional=()
while (($#)); do
  case $1 in
    --dry-run) dry_run=1 ;;
    -h | --help) usage; exit 0 ;;
    --) shift; break ;;
    *) positional+=("$1") ;;
  esac
  shift
done
extra=("$@")

if ((${#positional[@]} < 1 || ${#positional[@]} > 2)); then
  usage >&2
  exit 2
fi
recipe=${positional[0]}
nproc=${positional[1]:-gpu}
nnodes=${NNODES:-1}

cmd=("${PYTHON:-python3}" -m torch.distributed.run)
if [[ $nnodes == 1 ]]; then
  cmd+=(--standalone)
else
  : "${RDZV_ENDPOINT:?NNODES=$nnodes needs RDZV_ENDPOINT=host:port, the same on every node}"
  cmd+=("--nnodes=$nnodes")
  [[ -n ${NODE_RANK:-} ]] && cmd+=("--node_rank=$NODE_RANK")
  cmd+=(--rdzv_backend=c10d "--rdzv_endpoint=$RDZV_ENDPOINT" "--rdzv_id=${RDZV_ID:-${SLURM_JOB_ID:-bench}}")
fi
# No restarts: a rank that died must fail the benchmark, not restart its clock unseen.
cmd+=("--nproc_per_node=$nproc" --max_restarts=0 -m bench run "$recipe" ${extra[@]+"${extra[@]}"})

if [[ $dry_run == 1 ]]; then
  printf '%q ' "${cmd[@]}"
  echo
else
  exec "${cmd[@]}"
fi
