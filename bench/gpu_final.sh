#!/usr/bin/env bash
# The GPU session's closing check: the tensor-core attention kernels alone against fp64 PyTorch
# (bench/attention_tc_check.py), then bench/gpu_check.sh's info, selftest and profiled benchmark,
# and the side-by-side PyTorch comparison (bench/gpu_vs_torch.sh) with $GPT, or with $GPT_FALLBACK
# (an earlier build) when the selftest of $GPT fails. Logs in $LOGS.
#   GPT=./gpt GPT_FALLBACK=./gpt-old LOGS=/tmp/logs bench/gpu_final.sh
set -u
here=$(cd "$(dirname "$0")" && pwd)
LOGS=${LOGS:-/tmp/gpt-gpu-final}; mkdir -p "$LOGS"
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,temperature.gpu --format=csv
ok=1
{ python3 "$here/attention_tc_extract.py" "$here/.." /tmp/att && timeout 90 python3 "$here/attention_tc_check.py" /tmp/att; } >"$LOGS/attcheck.log" 2>&1 || ok=0
tail -22 "$LOGS/attcheck.log"
if [ $ok = 1 ]; then
    GPT=$GPT LOGS=$LOGS TAILN=12 "$here/gpu_check.sh" info selftest bench train
    grep -q "out of tolerance\|error" "$LOGS/selftest.log" && ok=0
    grep -E "FAIL|attention_tc|selftest:" "$LOGS/selftest.log" | head -30
fi
use=$GPT; [ $ok = 1 ] || use=${GPT_FALLBACK:-$GPT}
echo "== benchmarking $use (selftest ok: $ok)"
[ "$use" = "${GPT_FALLBACK:-}" ] || { timeout 100 "${GPT_FALLBACK:-$GPT}" bench train --device cuda --model gpt2 -B 64 -T 1024 --steps 10 >"$LOGS/fallback-bench.log" 2>&1; tail -3 "$LOGS/fallback-bench.log"; }
GPT=$use STEPS=10 timeout 240 "$here/gpu_vs_torch.sh" >"$LOGS/vs_torch.log" 2>&1
tail -14 "$LOGS/vs_torch.log"
