#!/usr/bin/env bash
# Tokenizer throughput: our single-thread (and all-core) encode against tiktoken's single-thread
# encode_ordinary, on the same in-memory text, in one run. Prints both figures and the ratio.
#   bench/tokenizer.sh [TEXT_FILE]    (default: ../shared/data/corpora/large_english.txt.xz, 93 MB)
# Needs a Python with tiktoken ($PYTHON, default python3); tiktoken is built offline from the
# GPT-2 files shipped in Sources/GPT2Resources.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
input=${1:-../shared/data/corpora/large_english.txt.xz}
if [[ "$input" == *.xz ]]; then
    text=$(mktemp /tmp/gpt-bench-XXXXXX.txt)
    trap 'rm -f "$text"' EXIT
    xz -dc "$input" > "$text"
else
    text=$input
fi
swift build -c release --product gpt >/dev/null
gpt=$(swift build -c release --show-bin-path)/gpt
threads=$(nproc)

ours=$("$gpt" bench tokenizer "$text" --threads 1 --repeats 3 | awk '/^MB\/s/ {print $2}')
ours_mt=$("$gpt" bench tokenizer "$text" --threads "$threads" --repeats 3 | awk '/^MB\/s/ {print $2}')
theirs=$(RAYON_NUM_THREADS=1 "$PYTHON" - "$text" <<'PY'
import sys, time, importlib.util
spec = importlib.util.spec_from_file_location("ref", "Tests/reference/tiktoken_reference.py")
ref = importlib.util.module_from_spec(spec); spec.loader.exec_module(ref)
enc = ref.load()
data = open(sys.argv[1], encoding="utf-8").read()
n = len(data.encode("utf-8"))
best = min(((lambda t: (enc.encode_ordinary(data), time.perf_counter() - t)[1])(time.perf_counter())) for _ in range(3))
print(f"{n / best / 1e6:.2f}")
PY
)
echo "input: $text ($(stat -c %s "$text") bytes), OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset}"
echo "gpt encode, 1 thread:          $ours MB/s"
echo "gpt encode, $threads threads:         $ours_mt MB/s"
echo "tiktoken encode_ordinary, 1 thread: $theirs MB/s"
awk -v a="$ours" -v b="$theirs" 'BEGIN { printf "ratio (gpt 1 thread / tiktoken 1 thread): %.2fx\n", a / b }'
