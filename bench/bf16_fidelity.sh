#!/usr/bin/env bash
# bf16 against fp32 on the CPU: `gpt train` twice with the embedded default (4-layer GPT, the
# embedded Shakespeare, seed 1337), once with --precision fp32 and once with --precision bf16,
# --max-steps ${1:-300}; prints the validation losses side by side and fails when any differs by
# more than 1% (goal: bf16 within 1% of fp32). Release build; runs in a scratch directory.
#   bench/bf16_fidelity.sh [STEPS]      (GPT=path/to/gpt to use a prebuilt binary)
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${1:-300}
if [[ -z "${GPT:-}" ]]; then
    swift build -c release --product gpt >/dev/null
    GPT=$(swift build -c release --show-bin-path)/gpt
fi
GPT=$(realpath "$GPT")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
for p in fp32 bf16; do
    "$GPT" train --device cpu --precision "$p" --max-steps "$steps" --sample-every 100000 --out "run-$p" > "log-$p.txt" 2>&1 \
        || { cat "log-$p.txt"; exit 1; }
done
# The bf16 run must have run bf16 matmuls (the header names the path), else the comparison is void.
if ! grep -q "precision bf16-" log-bf16.txt; then
    echo "error: the --precision bf16 run did not report a bf16 CPU path:" >&2
    grep -i "precision" log-bf16.txt >&2 || true
    exit 1
fi
grep -h "precision" log-fp32.txt log-bf16.txt | sort -u
tok() { grep -o "tok/sec: [0-9.]*" "$1" | awk '{s += $2; n++} END {if (n) printf "%.0f", s / n}'; }
echo "mean tok/s: fp32 $(tok log-fp32.txt), bf16 $(tok log-bf16.txt)"
paste <(grep -o "validation loss: [0-9.]*" log-fp32.txt | awk '{print $3}') \
      <(grep -o "validation loss: [0-9.]*" log-bf16.txt | awk '{print $3}') |
    awk -v every=50 'BEGIN { printf "%6s %10s %10s %8s\n", "val#", "fp32", "bf16", "diff"; worst = 0 }
        { d = ($2 - $1) / $1 * 100; a = d < 0 ? -d : d; if (a > worst) worst = a
          printf "%6d %10.4f %10.4f %+7.2f%%\n", NR, $1, $2, d }
        END { if (NR == 0) { print "no validation losses found"; exit 1 }
              printf "max |difference| %.2f%% (goal: within 1%%)\n", worst; exit worst > 1 }'
