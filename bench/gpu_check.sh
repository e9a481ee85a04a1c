#!/usr/bin/env bash
# The whole single-GPU check in one call (under 8 minutes on an H100/H200), on a machine with the
# static `gpt` binary, bench/ and PyTorch (no Swift needed), in the order of docs/GPU.md:
#   info       nvidia-smi and `gpt info`
#   selftest   `gpt selftest --device cuda`: every kernel, 3 training steps, the inference paths
#              (scorer, HellaSwag, KV-cache decoder, sampling, Generator) against the CPU engine,
#              fp32 then bf16, and a one-rank NCCL all-reduce
#   bench      GPT-2 124M training throughput, B=64 T=1024, with the op-by-op profile
#              (PASS at >= $TRAIN_MIN tok/s: 506K measured on an H100, less 2% for run-to-run noise)
#   train      a short Shakespeare run on the GPU, then `eval loss` and greedy `sample` of its
#              checkpoint on the GPU and the CPU (fp32: the same loss to 1e-6, the same ids)
#   hellaswag  10,042 synthetic examples of HellaSwag's length distribution, GPT-2 124M (random
#              init): `gpt eval hellaswag --device cuda` in <= 20 s, and ahead of hellaswag.py's
#              scoring in PyTorch, bf16 autocast, batched (bench/hellaswag_synth.py)
#   generate   5 samples of 256 new tokens after an 8-token prompt, GPT-2 124M, top-k 50: `gpt
#              sample --device cuda` (KV cache, bf16) ahead of transformers' generate in bf16
#              (bench/torch_gpu_generate.py); ours is timed as the difference of a 256-token and a
#              1-token run, which removes start-up, model load and the prefill
#   torch      build-nanogpt's training step in PyTorch (torch.compile) for the ratio, only when
#              at least 200 s of the $BUDGET-second budget remain
#   attcheck   (not in the default list: needs nvcc and CuPy) the tensor-core attention kernels
#              alone against fp64 PyTorch
# The last line is `gpu_check: PASS (n checks)` or `gpu_check: FAIL (names)`; exit status 0 or 1.
#   GPT=./gpt PYTHON=python3 LOGS=/tmp/logs bench/gpu_check.sh [steps...]
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
GPT=${GPT:-$here/../gpt}
PYTHON=${PYTHON:-python3}
LOGS=${LOGS:-/tmp/gpt-gpu-check}
WORK=${WORK:-/tmp/gpt-gpu-work}
B=${B:-64}
TRAIN_MIN=${TRAIN_MIN:-496000}
BUDGET=${BUDGET:-480}
mkdir -p "$LOGS" "$WORK"
steps=${*:-info selftest bench train hellaswag generate torch}
start=$(date +%s)
passed=0; failed=()
check() {   # check NAME OK DETAIL: one PASS/FAIL line
    if [ "$2" = 1 ]; then echo "PASS $1: $3"; passed=$((passed + 1)); else echo "FAIL $1: $3"; failed+=("$1"); fi
}
ok() { if [ "$1" -eq 0 ]; then echo 1; else echo 0; fi; }
field() { awk -v k="$1" '$1 == k {print $2}' | tail -1; }
le() { awk -v a="$1" -v b="$2" 'BEGIN { n = "^[0-9]+([.][0-9]*)?$"; exit !(a ~ n && b ~ n && a + 0 <= b + 0) }' && echo 1 || echo 0; }   # 1 when a <= b, both numbers
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }
run() {   # run LOG SECONDS CMD...: append to $LOGS/LOG.log and print its tail; sets $rc
    local log=$LOGS/$1.log limit=$2; shift 2
    echo "== $*" | tee -a "$log"
    local t0 before
    t0=$(now); before=$(wc -l <"$log")
    timeout "$limit" "$@" >>"$log" 2>&1
    rc=$?
    tail -n +"$((before + 1))" "$log" | tail -n "${TAILN:-20}"
    echo "-- exit $rc, $(secs "$t0" "$(now)") s" | tee -a "$log"
}
[ -x "$GPT" ] || { echo "no gpt binary at '$GPT' (set GPT=/path/to/gpt)"; echo "gpu_check: FAIL (no binary)"; exit 1; }

for s in $steps; do case $s in
info)
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm --format=csv 2>&1 | head -3
    run info 60 "$GPT" info
    check info "$(ok $rc)" "gpt info exit $rc" ;;
selftest)
    TAILN=12 run selftest 300 "$GPT" selftest --device cuda
    grep -E "^  FAIL" "$LOGS/selftest.log" | head -20
    check selftest "$(ok $rc)" "$(grep -cE '^  PASS' "$LOGS/selftest.log") comparisons passed, $(grep -cE '^  FAIL' "$LOGS/selftest.log") failed" ;;
bench)
    TAILN=45 run bench 180 "$GPT" bench train --device cuda --model gpt2 -B "$B" -T 1024 --steps 20 --profile
    ours_train=$(field tok/s <"$LOGS/bench.log")
    check "train throughput" "$(le "$TRAIN_MIN" "$ours_train")" "${ours_train:-none} tok/s (GPT-2 124M, B=$B T=1024, bf16; need >= $TRAIN_MIN)" ;;
train)
    dir=$WORK/cuda-run-$$
    run train 150 "$GPT" train --device cuda --max-steps 100 --val-every 50 --sample-every 100 --out "$dir"
    ck=$(ls "$dir"/checkpoint_*.safetensors 2>/dev/null | tail -1)
    head -c 50000 "$here/../Sources/GPT2Resources/shakespeare.txt" >"$WORK/eval.txt" 2>/dev/null || printf 'First Citizen:\nBefore we proceed any further, hear me speak.\n%.0s' $(seq 200) >"$WORK/eval.txt"
    declare -A loss ids
    for dev in cuda cpu; do
        run train 90 "$GPT" eval loss --device "$dev" --precision fp32 --model "$ck" --text "$WORK/eval.txt"
        loss[$dev]=$(tail -n 3 "$LOGS/train.log" | awk '$1 == "loss" {print $2}' | tail -1)
        run train 90 "$GPT" sample --device "$dev" --precision fp32 --model "$ck" --temperature 0 --num-samples 2 --max-tokens 24 --ids
        ids[$dev]=$(tail -n 4 "$LOGS/train.log" | grep -E '^[0-9 ]+$' | tr '\n' '|')
    done
    run train 90 "$GPT" eval loss --device cuda --precision bf16 --model "$ck" --text "$WORK/eval.txt"
    same=$(awk -v a="${loss[cuda]}" -v b="${loss[cpu]}" 'BEGIN { d = a - b; if (d < 0) d = -d; print (a != "" && d <= 1e-6 * b) ? 1 : 0 }')
    check "eval loss cuda = cpu (fp32)" "$same" "cuda ${loss[cuda]:-none}, cpu ${loss[cpu]:-none}"
    check "greedy sample cuda = cpu (fp32)" "$([ -n "${ids[cuda]}" ] && [ "${ids[cuda]}" = "${ids[cpu]}" ] && echo 1 || echo 0)" "cuda ${ids[cuda]:-none} cpu ${ids[cpu]:-none}" ;;
hellaswag)
    dir=$WORK/hellaswag-124m
    [ -f "$dir/examples.bin" ] || run hellaswag 180 "$PYTHON" "$here/hellaswag_synth.py" make "$dir" --layers 12 --heads 12 --embd 768 --examples 10042
    t0=$(now)
    run hellaswag 120 "$GPT" eval hellaswag --device cuda --model "$dir/model" --data "$dir/examples.bin"
    ours_hs=$(secs "$t0" "$(now)"); ours_rc=$rc
    ours_acc=$(tail -n 5 "$LOGS/hellaswag.log" | grep -E '^acc_norm ' | tail -1)
    run hellaswag 240 "$PYTHON" "$here/hellaswag_synth.py" score "$dir" --device cuda --dtype bf16 --tokens-per-batch 32768
    torch_hs=$(tail -n 12 "$LOGS/hellaswag.log" | field seconds)
    torch_acc=$(tail -n 12 "$LOGS/hellaswag.log" | grep -E '^acc_norm ' | tail -1)
    check "hellaswag 10,042 examples <= 20 s" "$([ $ours_rc -eq 0 ] && le "$ours_hs" 20)" "gpt $ours_hs s (whole process), $ours_acc"
    check "hellaswag ahead of PyTorch (bf16)" "$([ $ours_rc -eq 0 ] && le "$ours_hs" "${torch_hs:-}")" \
        "gpt $ours_hs s, PyTorch ${torch_hs:-failed} s (scoring loop), ratio $(awk -v a="$ours_hs" -v b="${torch_hs:-0}" 'BEGIN { if (a > 0) printf "%.2fx", b / a }'); PyTorch $torch_acc" ;;
generate)
    dir=$WORK/hellaswag-124m
    [ -d "$dir/model" ] || run generate 180 "$PYTHON" "$here/hellaswag_synth.py" make "$dir" --layers 12 --heads 12 --embd 768 --examples 8
    N=${GEN_TOKENS:-256}
    declare -A took
    for n in 1 "$N"; do
        t0=$(now)
        run generate 120 "$GPT" sample --device cuda --model "$dir/model" --num-samples 5 --max-tokens "$n" --ids
        took[$n]=$(secs "$t0" "$(now)"); [ $rc -eq 0 ] || took[$n]=""
    done
    ours_gen=$(awk -v a="${took[1]}" -v b="${took[$N]}" -v n="$N" 'BEGIN { if (a != "" && b != "" && b > a) printf "%.1f", 5 * (n - 1) / (b - a) }')
    run generate 180 "$PYTHON" "$here/torch_gpu_generate.py" "$dir/model" --samples 5 --new "$N"
    torch_gen=$(tail -n 4 "$LOGS/generate.log" | field tok/s)
    kind=$(tail -n 6 "$LOGS/generate.log" | grep '^reference' | tail -1)
    check "generation ahead of transformers" "$(le "${torch_gen:-}" "${ours_gen:-}")" \
        "gpt ${ours_gen:-failed} tok/s, ${kind#reference } ${torch_gen:-failed} tok/s (5 samples x $N tokens, bf16)" ;;
torch)
    left=$((BUDGET - ($(date +%s) - start)))
    if [ "$left" -lt 200 ]; then echo "(torch: skipped, ${left} s of the budget left)"; continue; fi
    run torch $((left - 20)) "$PYTHON" "$here/torch_gpu_bench.py" -B "$B" -T 1024 --steps 10
    theirs=$(field tok/s <"$LOGS/torch.log")
    echo "training: gpt ${ours_train:-?} tok/s, PyTorch build-nanogpt (torch.compile) ${theirs:-failed} tok/s, ratio $(awk -v a="${ours_train:-0}" -v b="${theirs:-0}" 'BEGIN { if (b > 0) printf "%.2fx", a / b; else print "n/a" }'); llm.c anchor 468000 tok/s per H100" ;;
attcheck)
    run attcheck 120 bash -c "python3 '$here/attention_tc_extract.py' '$here/..' /tmp/att && python3 '$here/attention_tc_check.py' /tmp/att"
    check "attention_tc vs fp64 PyTorch" "$(ok $rc)" "exit $rc" ;;
*) echo "unknown step '$s'"; failed+=("unknown step $s") ;;
esac; done

echo "(total $(( $(date +%s) - start )) s)"
if [ ${#failed[@]} -eq 0 ]; then
    echo "gpu_check: PASS ($passed checks)"
else
    echo "gpu_check: FAIL ($(IFS=,; echo "${failed[*]}"))"
    exit 1
fi
