#!/usr/bin/env bash
# HellaSwag scoring on the CPU: `gpt eval hellaswag` (release build) against build-nanogpt's
# hellaswag.py method in PyTorch (transformers GPT2LMHeadModel, fp32, one example's four endings
# per forward), same model and examples, same thread count, in one run. Examples are synthetic with
# HellaSwag's length distribution (bench/hellaswag_synth.py); the models are random-init GPT-2s
# saved as HF directories: a small one (4 layers, 4 heads, width 256) and GPT-2 124M.
# Prints the scoring times of both sides (the loop over the examples, after loading the model) and
# their ratio, our whole process's time too, and whether both counted the same acc / acc_norm.
#   PYTHON=/path/to/python bench/hellaswag_vs_torch.sh        (SMALL=100 GPT2=16 examples by default)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
threads=${THREADS:-$(nproc)}
small=${SMALL:-100}
gpt2=${GPT2:-32}
work=${WORK:-/tmp/gpt-hellaswag-bench}
export GPT2_NUM_THREADS=$threads OMP_NUM_THREADS=$threads MKL_NUM_THREADS=$threads
swift build -c release --product gpt >/dev/null
gpt=$(swift build -c release --show-bin-path)/gpt
echo "threads $threads, OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset}, $(date -u +%F)"

compare() {   # compare NAME DIR
    local name=$1 dir=$2 t0 t1 ours theirs
    t0=$(date +%s.%N)
    ours=$("$gpt" eval hellaswag --model "$dir/model" --data "$dir/examples.bin" 2>"$work/stderr")
    t1=$(date +%s.%N)
    local scoring
    scoring=$(awk '$1 == "scored" { print $5 }' "$work/stderr")
    theirs=$("$PYTHON" bench/hellaswag_synth.py score "$dir" --threads "$threads" 2>/dev/null)
    local a b same
    a=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
    b=$(echo "$theirs" | awk '$1 == "seconds" { print $2 }')
    if [ "$(echo "$ours" | grep -E '^(acc|acc_norm) ')" = "$(echo "$theirs" | grep -E '^(acc|acc_norm) ')" ]; then same=yes; else same=NO; fi
    echo "$name: scoring gpt $scoring s, PyTorch $b s, ratio $(awk -v a="$scoring" -v b="$b" 'BEGIN { printf "%.2fx", b / a }'); whole gpt process $a s (ratio $(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.2fx", b / a }')); same acc/acc_norm: $same"
    echo "$ours" | sed 's/^/    gpt     /'
    echo "$theirs" | grep -E '^acc' | sed 's/^/    PyTorch /'
}

"$PYTHON" bench/hellaswag_synth.py make "$work/small" --layers 4 --heads 4 --embd 256 --examples "$small" >/dev/null 2>&1
compare "small GPT (4L/256), $small examples" "$work/small"
"$PYTHON" bench/hellaswag_synth.py make "$work/gpt2" --layers 12 --heads 12 --embd 768 --examples "$gpt2" >/dev/null 2>&1
compare "GPT-2 124M, $gpt2 examples" "$work/gpt2"
