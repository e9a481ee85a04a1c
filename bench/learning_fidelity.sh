#!/usr/bin/env bash
# Learning fidelity: the same small GPT, the same initial weights, the same Shakespeare shards and
# recipe, trained by PyTorch (bench/train_reference.py) and by `gpt train`; prints both validation
# losses at each evaluation and their relative difference (goal: within 3%).
#   bench/learning_fidelity.sh [STEPS]     (default 300; needs a Python with torch, transformers, numpy: $PYTHON)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
steps=${1:-300}
work=$(mktemp -d /tmp/gpt-fidelity-XXXXXX)
swift build -c release --product gpt >/dev/null
gpt=$(swift build -c release --show-bin-path)/gpt
common=(-B 8 -T 128 --total-batch 1024 --max-lr 1e-3 --warmup-steps 30 --val-every 50 --val-steps 8)
"$gpt" prepare --shakespeare --output "$work/data" >/dev/null
echo "== PyTorch reference ($steps steps)"
"$PYTHON" bench/train_reference.py --data "$work/data" --init-out "$work/init" --log "$work/torch.log" --steps "$steps" \
    -B 8 -T 128 --total-batch 1024 --max-lr 1e-3 --warmup 30 --val-every 50 --val-steps 8 | grep -E "validation|step +[0-9]*0 " | tail -8
echo "== gpt train ($steps steps, same initial weights)"
"$gpt" train --data "$work/data" --init "$work/init" --out "$work/ours" --max-steps "$steps" "${common[@]}" \
    --sample-every 100000 --checkpoint-every 100000 | grep -E "validation|step +[0-9]*0 " | tail -8
echo "== validation loss: step, PyTorch, gpt, relative difference"
join <(awk '$2=="val" {print $1, $3}' "$work/torch.log" | sort) <(awk '$2=="val" {print $1, $3}' "$work/ours/log.txt" | sort) \
    | sort -n | awk '{ d = ($3 - $2) / $2; if (d < 0) d = -d; if (d > m) m = d; printf "%5d  %.4f  %.4f  %.2f%%\n", $1, $2, $3, 100 * d } END { printf "max relative difference: %.2f%%\n", 100 * m }'
echo "(logs in $work)"
