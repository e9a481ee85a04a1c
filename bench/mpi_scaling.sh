#!/usr/bin/env bash
# Data-parallel scaling on one machine: `mpirun -np 2` ranks × 1 thread against 1 process ×
# 2 threads, same model and same total batch (the single process does 2 micro-steps, each rank 1).
# Prints the mean tok/s of each (steps after the first two) and the ratio.
#   bench/mpi_scaling.sh [STEPS]      (default 12; model 4 layers, 4 heads, 256 wide, B=4 T=256)
# Needs Open MPI (apt-get install openmpi-bin libopenmpi-dev). SCRATCH picks the build folder.
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${1:-12}
scratch=${SCRATCH:-.build}
swift build -c release --product gpt --scratch-path "$scratch" >/dev/null
gpt=$(swift build -c release --scratch-path "$scratch" --show-bin-path)/gpt
work=$(mktemp -d /tmp/gpt-mpi-bench-XXXXXX)
trap 'rm -rf "$work"' EXIT
"$gpt" prepare --shakespeare --output "$work/data" >/dev/null 2>&1
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
args=(train --data "$work/data" --layers 4 --heads 4 --embd 256 --seq 256 -B 4 -T 256 --total-batch 2048
      --max-steps "$steps" --warmup-steps 2 --val-every 100000 --val-steps 1 --sample-every 100000)
# Mean tok/sec over the steps after the first two (warm-up: allocation, page faults).
mean_toks() { awk '/^step/ { n++; if (n > 2) { s += $NF; k++ } } END { printf "%.1f", s / k }'; }

one=$(GPT2_NUM_THREADS=2 "$gpt" "${args[@]}" --out "$work/one" | mean_toks)
two=$(GPT2_NUM_THREADS=1 mpirun -np 2 --oversubscribe "$gpt" "${args[@]}" --out "$work/two" | mean_toks)
echo "machine: $(nproc) cores, OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset}; $steps steps of 2048 tokens"
echo "1 process x 2 threads (2 micro-steps):  $one tok/s"
echo "mpirun -np 2 x 1 thread (1 micro-step): $two tok/s"
awk -v a="$two" -v b="$one" 'BEGIN { printf "ratio (2 ranks / 1 process): %.2fx\n", a / b }'
