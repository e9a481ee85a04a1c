#!/usr/bin/env bash
# CPU engine against PyTorch eager (same thread count, same environment), in one run:
#   1. GPT-2 124M training step (forward + backward + AdamW), B=4 T=64: fp32, then bf16 (ours
#      --precision bf16 against torch.autocast("cpu", bfloat16)); tok/s, peak RSS, step-time spread
#   2. small GPT (4 layers, 4 heads, width 256, vocab 50257) training step, B=4 T=256: fp32, bf16
#   3. generation with that small model, 64 new tokens after an 8-token prompt: tok/s vs transformers generate
# PyTorch runs two models per row, transformers' GPT2LMHeadModel (Conv1D) and build-nanogpt's
# nn.Linear GPT; the faster is quoted. tok/s come from the median step on both sides; the spread is
# min-max and IQR relative to the median. The CPU time of all threads per step (median) is printed
# too: unlike wall time it hardly moves when other processes share the machine. bf16 rows are skipped (with the reason) where this CPU
# has no bf16 kernel. Needs a Python with torch and transformers ($PYTHON). OPENBLAS_CORETYPE is
# left as the environment has it (it changes OpenBLAS's sgemm speed); it is printed with the results.
#   STEPS=N (timed steps per run, default 8) THREADS=N (default nproc)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
threads=${THREADS:-$(nproc)}
steps=${STEPS:-8}
export GPT2_NUM_THREADS=$threads OMP_NUM_THREADS=$threads MKL_NUM_THREADS=$threads
swift build -c release --product gpt >/dev/null
gpt=$(swift build -c release --show-bin-path)/gpt
field() { awk -v k="$1" '$1 == k && $2 ~ /^[0-9.]+$/ {print $2}' | tail -1; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2fx", a / b }'; }
cpu=$(grep -m1 "model name" /proc/cpuinfo 2>/dev/null | cut -d: -f2- | sed 's/^ *//' || true)
flags=$(grep -m1 "^flags" /proc/cpuinfo 2>/dev/null | tr ' ' '\n' | grep -E "^(avx512_bf16|amx_bf16|amx_tile)$" | tr '\n' ' ' || true)
echo "CPU: ${cpu:-unknown} (bf16 flags: ${flags:-none}); threads $threads, OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset}, $(date -u +%F)"
"$gpt" info 2>/dev/null | grep -E "precision auto" | sed 's/^ */gpt: /' || true
bf16_ok=1
"$gpt" bench train --model d4 -B 1 -T 8 --steps 1 --precision bf16 >/dev/null 2>&1 || bf16_ok=0

# torch_best LAYERS HEADS EMBD B T STEPS [--bf16]: the faster of the two PyTorch models ("tok/s cpu_ms name")
torch_best() {
    local best="" bestv=0 out v c
    for impl in hf nanogpt; do
        out=$("$PYTHON" bench/torch_cpu_bench.py train "$@" --impl "$impl")
        v=$(echo "$out" | field tok/s); c=$(echo "$out" | awk '$1 == "cpu_ms" {print $3}')
        echo "  PyTorch $impl: $v tok/s; $(echo "$out" | grep step_ms); CPU $c ms/step; peak RSS $(echo "$out" | field peak_rss_mb) MB" >&2
        if awk -v a="$v" -v b="$bestv" 'BEGIN { exit !(a > b) }'; then best="$v $c $impl"; bestv=$v; fi
    done
    echo "$best"
}

# row NAME MODEL LAYERS HEADS EMBD B T PRECISION
row() {
    local name=$1 model=$2 L=$3 H=$4 E=$5 B=$6 T=$7 p=$8 torchflag=""
    [[ $p == bf16 ]] && torchflag=--bf16
    local ours a ra
    ours=$(/usr/bin/time -f "maxrss_kb %M" "$gpt" bench train --model "$model" -B "$B" -T "$T" --steps "$steps" --precision "$p" 2>&1)
    a=$(echo "$ours" | field tok/s); ra=$(echo "$ours" | field maxrss_kb)
    echo "  gpt: $(echo "$ours" | grep -E '^precision' | cut -c1-90)" >&2
    echo "  gpt: $(echo "$ours" | grep '^step time')" >&2
    echo "  gpt: $(echo "$ours" | grep '^CPU time')" >&2
    local ca t b cb impl
    ca=$(echo "$ours" | awk '/^CPU time of our threads/ {print $9}')
    t=$(torch_best "$L" "$H" "$E" "$B" "$T" "$steps" $torchflag)
    read -r b cb impl <<< "$t"
    echo "$name $p: gpt $a tok/s (peak RSS $((ra / 1024)) MB), PyTorch $b tok/s ($impl$([[ $p == bf16 ]] && echo ', autocast bf16')), ratio $(ratio "$a" "$b"); CPU ms/step gpt $ca, PyTorch $cb, ratio $(ratio "$cb" "$ca")"
}

for p in fp32 bf16; do
    if [[ $p == bf16 && $bf16_ok == 0 ]]; then
        echo "bf16 rows skipped: $("$gpt" bench train --model d4 -B 1 -T 8 --steps 1 --precision bf16 2>&1 | tail -1)"
        continue
    fi
    row "GPT-2 124M train B=4 T=64:" gpt2 12 12 768 4 64 "$p"
    row "small GPT train B=4 T=256:" d4 4 4 256 4 256 "$p"
done

ours=$("$gpt" bench generate --model d4 --prompt-tokens 8 --max-tokens 64)
torch_out=$("$PYTHON" bench/torch_cpu_bench.py generate 4 4 256 8 64)
a=$(echo "$ours" | field tok/s); b=$(echo "$torch_out" | field tok/s)
echo "small GPT generate 64 tokens: gpt $a tok/s, transformers $b tok/s, ratio $(ratio "$a" "$b")"
