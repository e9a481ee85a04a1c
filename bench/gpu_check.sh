#!/usr/bin/env bash
# One-shot verification of the CUDA backend on a GPU machine, in the order of docs/GPU.md:
# `gpt info`, the selftest in both precisions (kernels, model steps, NCCL with one rank), GPT-2
# 124M training throughput at T=1024 with an op-by-op profile, a short Shakespeare run on the GPU
# then eval and greedy sampling of its checkpoint on the GPU and on the CPU, and the side-by-side
# PyTorch benchmark. Each command has its own time limit; logs go to $LOGS/<step>.log.
#   GPT=./gpt LOGS=/tmp/gpu-logs bench/gpu_check.sh [steps...]
# steps: info selftest bench train torch (default: all, in that order)
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
GPT=${GPT:-$here/../gpt}
PYTHON=${PYTHON:-python3}
LOGS=${LOGS:-/tmp/gpt-gpu-check}
B=${B:-64}
mkdir -p "$LOGS"
steps=${*:-info selftest bench train torch}
status=0
run() {   # run LOG SECONDS CMD...: append to $LOGS/LOG.log, print the new lines' tail and the time taken
    local log=$LOGS/$1.log limit=$2; shift 2
    echo "== $*" | tee -a "$log"
    local t0 before
    t0=$(date +%s.%N); before=$(wc -l <"$log")
    timeout "$limit" "$@" >>"$log" 2>&1
    local rc=$?
    tail -n +"$((before + 1))" "$log" | tail -n "${TAILN:-25}"
    echo "-- exit $rc, $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}') s" | tee -a "$log"
    [ $rc -eq 0 ] || status=1
}
for s in $steps; do case $s in
info)
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm --format=csv 2>&1 | head -3
    run info 60 "$GPT" info ;;
selftest)
    TAILN=100 run selftest 120 "$GPT" selftest --device cuda --precision fp32
    TAILN=100 run selftest 120 "$GPT" selftest --device cuda --precision bf16 ;;
bench)
    TAILN=60 run bench 150 "$GPT" bench train --device cuda --model gpt2 -B "$B" -T 1024 --steps 10 --profile ;;
train)
    dir=${RUNS:-/tmp/gpt-runs}/cuda-$$
    run train 150 "$GPT" train --device cuda --max-steps 100 --val-every 50 --sample-every 100 --out "$dir"
    ck=$(ls "$dir"/checkpoint_*.safetensors 2>/dev/null | tail -1)
    head -c 50000 "$here/../Sources/GPT2Resources/shakespeare.txt" >/tmp/gpt-eval.txt
    for dev in cuda cpu; do
        run train 60 "$GPT" eval loss --device "$dev" --precision fp32 --model "$ck" --text /tmp/gpt-eval.txt
    done
    run train 60 "$GPT" eval loss --device cuda --precision bf16 --model "$ck" --text /tmp/gpt-eval.txt
    for dev in cuda cpu; do
        run train 60 "$GPT" sample --device "$dev" --precision fp32 --model "$ck" --temperature 0 --num-samples 2 --max-tokens 24 --ids
    done ;;
torch)
    run torch 200 "$PYTHON" "$here/torch_gpu_bench.py" -B "$B" -T 1024 --steps 10 ;;
*) echo "unknown step '$s'"; status=1 ;;
esac; done
exit $status
