#!/usr/bin/env bash
# GPT-2 124M training throughput on one GPU: `gpt bench train --device cuda` (bf16) against
# build-nanogpt's PyTorch model (bench/torch_gpu_bench.py: flash attention, bf16 autocast, fused
# AdamW, torch.compile) on the same GPU, plus llm.c's anchor (~468K tok/s per H100: 8×H100,
# 524,288 tokens in ~140 ms/step). Micro-batch: the largest of 64, 32, 16 that runs (T=1024).
# Runs from a directory holding only the static `gpt` binary and bench/ (no Swift needed):
#   GPT=./gpt PYTHON=python3 bench/gpu_vs_torch.sh        (STEPS=20 timed steps; T=1024)
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
GPT=${GPT:-$here/../gpt}
PYTHON=${PYTHON:-python3}
STEPS=${STEPS:-20}
T=${T:-1024}
[ -x "$GPT" ] || { echo "no gpt binary at '$GPT' (set GPT=/path/to/gpt)" >&2; exit 1; }
field() { awk -v k="$1" '$1 == k {print $2}' | tail -1; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2fx", a / b; else print "n/a" }'; }
echo "== $(date -u +%F) $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | head -1)"
"$GPT" info | sed -n '1,3p'

ours=""; for B in 64 32 16; do
    echo "== gpt bench train --device cuda --model gpt2 -B $B -T $T --steps $STEPS"
    if out=$("$GPT" bench train --device cuda --model gpt2 -B "$B" -T "$T" --steps "$STEPS" 2>&1); then
        echo "$out" | tail -4; ours=$(echo "$out" | field tok/s); ourB=$B; break
    fi
    echo "$out" | tail -3; echo "(B=$B failed; trying a smaller micro-batch)"
done

theirs=""; for B in 64 32 16; do
    echo "== PyTorch build-nanogpt B=$B T=$T"
    if out=$("$PYTHON" "$here/torch_gpu_bench.py" -B "$B" -T "$T" --steps "$STEPS" 2>&1); then
        echo "$out" | tail -3; theirs=$(echo "$out" | field tok/s); theirB=$B; break
    fi
    echo "$out" | tail -3; echo "(B=$B failed; trying a smaller micro-batch)"
done

echo "== summary (GPT-2 124M, T=$T, one GPU)"
echo "gpt (CUDA, bf16)     ${ours:-failed} tok/s${ours:+ (B=$ourB)}"
echo "PyTorch build-nanogpt ${theirs:-failed} tok/s${theirs:+ (B=$theirB)}"
[ -n "$ours" ] && [ -n "$theirs" ] && echo "ratio gpt / PyTorch  $(ratio "$ours" "$theirs")"
[ -n "$ours" ] && echo "llm.c anchor         468000 tok/s per H100 (ratio $(ratio "$ours" 468000))"
[ -n "$ours" ] && [ -n "$theirs" ]
