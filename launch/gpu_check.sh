#!/usr/bin/env bash
# Every GPU-only path in one short script, for a machine with one CUDA GPU and little time on it:
# NVML + environment, loaders on CUDA, CUDA fp16 with GradScaler + channels_last (cpu_quick on the GPU),
# a short wrn22 through torchrun (NCCL process group + DDP on one GPU), and the speed profiler.
# Needs torch, numpy, pandas, pyyaml, psutil, nvidia-ml-py, matplotlib, scipy, rich, filelock (no DALI:
# the dali loader is skipped when it is not installed). Runs from the repository root without install:
#   DATA=path/to/cifar10-jpeg-q75.tar.xz OUT=/tmp/gpu-check launch/gpu_check.sh
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH=${PYTHONPATH:+$PYTHONPATH:}. PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
OUT=${OUT:-/tmp/gpu-check}
DATA=${DATA:-data/cifar10-jpeg-q75.tar.xz}
mkdir -p "$OUT"
status=0
step() { echo "=== $*"; "$@" || { echo "!!! failed ($?): $*"; status=1; }; }

step $PY -m bench env --json "$OUT/env.json"
step $PY -m bench loaders --device cuda --dtype fp16 --loaders device,torch,dali,synthetic --json "$OUT/loaders.json"
# fp16 autocast + GradScaler + channels_last on CUDA, to the CPU recipe's target
step $PY -m bench run cpu_quick --data "$DATA" --set precision=fp16 --results "$OUT/results.csv" --reports "$OUT/reports"
# NCCL + DDP: a one-process torchrun group on the one GPU, short wrn22 (not to 94%)
step $PY -m torch.distributed.run --standalone --nproc_per_node=1 -m bench run wrn22 --data "$DATA" \
    --set optim.epochs=3 --set target.value=0.99 --results "$OUT/results.csv" --reports "$OUT/reports"
step $PY -m bench speed bottleneck wrn --device cuda --json "$OUT/speed.json"
exit $status
