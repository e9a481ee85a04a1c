#!/usr/bin/env bash
# CPU engine against PyTorch eager (same thread count, same environment), in one run:
#   1. GPT-2 124M training step (forward + backward + AdamW), B=4 T=64: tok/s and peak RSS
#   2. small GPT (4 layers, 4 heads, width 256, vocab 50257) training step, B=4 T=256: tok/s
#   3. generation with that small model, 64 new tokens after an 8-token prompt: tok/s vs transformers generate
# Needs a Python with torch and transformers ($PYTHON). OPENBLAS_CORETYPE is left as the
# environment has it (it changes OpenBLAS's sgemm speed); it is printed with the results.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
threads=${THREADS:-$(nproc)}
export GPT2_NUM_THREADS=$threads OMP_NUM_THREADS=$threads MKL_NUM_THREADS=$threads
swift build -c release --product gpt >/dev/null
gpt=$(swift build -c release --show-bin-path)/gpt
field() { awk -v k="$1" '$1 == k {print $2}' | tail -1; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2fx", a / b }'; }
echo "threads $threads, OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset}, $(date -u +%F)"

ours=$(/usr/bin/time -f "maxrss_kb %M" "$gpt" bench train --model gpt2 -B 4 -T 64 --steps 5 2>&1)
torch_out=$("$PYTHON" bench/torch_cpu_bench.py train 12 12 768 4 64 5)
a=$(echo "$ours" | field tok/s); b=$(echo "$torch_out" | field tok/s)
ra=$(echo "$ours" | field maxrss_kb); rb=$(echo "$torch_out" | field peak_rss_mb)
echo "GPT-2 124M train B=4 T=64:   gpt $a tok/s, PyTorch $b tok/s, ratio $(ratio "$a" "$b"); peak RSS gpt $((ra / 1024)) MB, PyTorch $rb MB"

ours=$("$gpt" bench train --model d4 -B 4 -T 256 --steps 5)
torch_out=$("$PYTHON" bench/torch_cpu_bench.py train 4 4 256 4 256 5)
a=$(echo "$ours" | field tok/s); b=$(echo "$torch_out" | field tok/s)
echo "small GPT train B=4 T=256:   gpt $a tok/s, PyTorch $b tok/s, ratio $(ratio "$a" "$b")"

ours=$("$gpt" bench generate --model d4 --prompt-tokens 8 --max-tokens 64)
torch_out=$("$PYTHON" bench/torch_cpu_bench.py generate 4 4 256 8 64)
a=$(echo "$ours" | field tok/s); b=$(echo "$torch_out" | field tok/s)
echo "small GPT generate 64 tokens: gpt $a tok/s, transformers $b tok/s, ratio $(ratio "$a" "$b")"
