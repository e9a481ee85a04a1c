#!/usr/bin/env bash
# Stops the cluster .ci/slurm-up.sh started in DIR: cancels its jobs, stops slurmd, slurmctld and
# munged (by the pids they wrote there), then removes DIR. Safe to call twice or on a half-started
# cluster.
#
#   .ci/slurm-down.sh DIR
set -uo pipefail
dir=${1:?usage: slurm-down.sh DIR (the directory slurm-up.sh printed)}
[ -d "$dir" ] || exit 0
[ -f "$dir/slurm.conf" ] || { echo "slurm-down: '$dir' has no slurm.conf; not a directory of slurm-up.sh, left alone" >&2; exit 1; }
export SLURM_CONF="$dir/slurm.conf"

if [ -f "$dir/slurmctld.pid" ] && command -v scancel >/dev/null; then
    timeout 10 scancel --full --quiet --user="$(id -un)" 2>/dev/null || true
    # running jobs get SIGTERM, then SIGKILL after KillWait (5 s)
    for _ in $(seq 30); do [ -z "$(timeout 5 squeue -h -o %i 2>/dev/null)" ] && break; sleep 0.5; done
fi

# Stops the process whose pid is in $1, if it is still the daemon named $2: SIGTERM, then SIGKILL.
stop() {
    local pidfile=$1 name=$2 pid
    [ -f "$pidfile" ] || return 0
    pid=$(cat "$pidfile" 2>/dev/null) || return 0
    [ -n "$pid" ] && [ -r "/proc/$pid/comm" ] && [ "$(cat "/proc/$pid/comm")" = "$name" ] || return 0
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 50); do [ -d "/proc/$pid" ] || return 0; sleep 0.2; done
    kill -KILL "$pid" 2>/dev/null
}
stop "$dir/slurmd.pid" slurmd
stop "$dir/slurmctld.pid" slurmctld
stop "$dir/munged.pid" munged
rm -rf "$dir"
