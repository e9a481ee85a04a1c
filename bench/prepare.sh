#!/usr/bin/env bash
# Dataset preparation throughput on Parquet input: `gpt prepare DIR` against build-nanogpt's
# fineweb.py pipeline (pyarrow + tiktoken encode_ordinary in a multiprocessing pool + np.save,
# bench/prepare_reference.py), both on all cores, in one run. The corpus is cut into ~4 KB
# documents and written as snappy Parquet (4 files, row groups of 1000) in a temporary folder.
# The shards must be byte-identical (cmp); prints both MB/s (document UTF-8 bytes per second of
# wall time, process start to exit), the CPU time of each side, and the ratios.
#   bench/prepare.sh [TEXT_FILE] [SHARD_TOKENS]   (default: ../shared/data/corpora/large_english.txt.xz, 10M)
# Needs a Python with pyarrow, numpy and tiktoken ($PYTHON, default python3).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
input=${1:-../shared/data/corpora/large_english.txt.xz}
shard_tokens=${2:-10000000}
work=$(mktemp -d /tmp/gpt-bench-prepare-XXXXXX)
trap 'rm -rf "$work"' EXIT
if [[ "$input" == *.xz ]]; then
    xz -dc "$input" > "$work/corpus.txt"
    input="$work/corpus.txt"
fi
bytes=$("$PYTHON" bench/prepare_reference.py make-parquet "$input" "$work/parquet")
rm -f "$work/corpus.txt"
swift build -c release --product gpt >/dev/null
gpt=$(swift build -c release --show-bin-path)/gpt
cat "$work"/parquet/*.parquet > /dev/null  # both sides read from the page cache

# "wall user+sys" seconds of a command (children included: the pool's workers are waited for).
timed() { local TIMEFORMAT='%R %U %S'; { time "$@" >/dev/null 2>&1; } 2>&1 | awk '{ printf "%s %.2f\n", $1, $2 + $3 }'; }
read -r ours ours_cpu < <(timed "$gpt" prepare "$work/parquet" -o "$work/ours" --name edufineweb --shard-tokens "$shard_tokens")
read -r theirs theirs_cpu < <(timed "$PYTHON" bench/prepare_reference.py run "$work/parquet" "$work/theirs" "$shard_tokens")

shards=0
for f in "$work"/theirs/*.npy; do
    cmp "$f" "$work/ours/$(basename "$f")"
    shards=$((shards + 1))
done
[ "$(ls "$work/ours" | wc -l)" -eq "$shards" ] || { echo "shard counts differ: $(ls "$work/ours")"; exit 1; }

echo "input: $bytes bytes of documents in $(ls "$work/parquet" | wc -l) snappy Parquet files; $shards identical shards of $shard_tokens tokens; $(nproc) cores"
awk -v b="$bytes" -v t="$ours" -v c="$ours_cpu" 'BEGIN { printf "gpt prepare:                    %6.2f MB/s (%.2f s wall, %.2f s CPU)\n", b / t / 1e6, t, c }'
awk -v b="$bytes" -v t="$theirs" -v c="$theirs_cpu" 'BEGIN { printf "fineweb.py (pyarrow+tiktoken): %6.2f MB/s (%.2f s wall, %.2f s CPU)\n", b / t / 1e6, t, c }'
awk -v a="$ours" -v b="$theirs" -v c="$ours_cpu" -v d="$theirs_cpu" 'BEGIN { printf "ratio (gpt / fineweb.py): %.2fx wall, %.2fx CPU time\n", b / a, d / c }'
