#!/usr/bin/env bash
# Starts a one-host Slurm cluster for the tests (and for a developer), as root, everything under
# one directory: munged on its own socket and key, slurmctld and slurmd with a slurm.conf there
# (2 CPUs, no cgroups, cons_tres, PMIx). Debian bookworm: apt-get install slurmctld slurmd munge
# slurm-client. Nothing system-wide is touched: stop it with .ci/slurm-down.sh DIR.
#
#   .ci/slurm-up.sh [DIR]      # DIR default: a new /tmp/gpt2-slurm.XXXXXX
#   . DIR/env                  # exports SLURM_CONF for sinfo/srun/sbatch
#   SLURM_UP_PORT=N            # first port tried for slurmctld (default 6817; slurmd: the next)
#
# Prints DIR on its last line. Exit status 0 once the node is idle; non-zero (with the daemons'
# log tails) if something did not start.
set -euo pipefail

for tool in munged slurmctld slurmd sinfo scontrol; do
    command -v "$tool" >/dev/null || { echo "slurm-up: '$tool' not found (apt-get install slurmctld slurmd munge slurm-client)" >&2; exit 2; }
done
[ "$(id -u)" = 0 ] || { echo "slurm-up: run as root (SlurmUser=root, no cgroups)" >&2; exit 2; }

dir=${1:-$(mktemp -d /tmp/gpt2-slurm.XXXXXX)}
mkdir -p "$dir"/state "$dir"/spool
chmod 700 "$dir"
dir=$(cd "$dir" && pwd)
host=$(hostname -s)

# Two free TCP ports for slurmctld and slurmd (the defaults 6817/6818 may be taken by a real Slurm).
port_free() { ! ss -Htln "sport = :$1" 2>/dev/null | grep -q .; }
ctld_port=${SLURM_UP_PORT:-6817}
while ! { port_free "$ctld_port" && port_free $((ctld_port + 1)); }; do ctld_port=$((ctld_port + 2)); done
slurmd_port=$((ctld_port + 1))

cat >"$dir/slurm.conf" <<EOF
ClusterName=gpt2ci
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# cred_expire: also how long a requeued job waits before it may start again (default 120 s)
AuthInfo=socket=$dir/munge.socket,cred_expire=5
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool/slurmd-%n
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MpiDefault=none
SwitchType=switch/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
ReturnToService=2
# fast clean-up: SIGTERM, then SIGKILL 5 s later; a dead node is noticed within 30 s
KillWait=5
SlurmdTimeout=30
MinJobAge=600
JobRequeue=1
MailProg=/bin/true
# the main scheduler every second (default 60 s): a requeued job starts as soon as it may
SchedulerParameters=sched_interval=1
SlurmdParameters=config_overrides
NodeName=$host NodeAddr=127.0.0.1 CPUs=2 State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
EOF

export SLURM_CONF="$dir/slurm.conf"
printf 'export SLURM_CONF=%q\n' "$SLURM_CONF" >"$dir/env"

# Whatever fails from here on: show the daemons' logs and stop what was started.
fail() {
    echo "slurm-up: $1" >&2
    for log in munged slurmctld slurmd; do [ -f "$dir/$log.log" ] && { echo "--- $log.log" >&2; tail -15 "$dir/$log.log" >&2; }; done
    "$(dirname "$0")/slurm-down.sh" "$dir"
    exit 1
}
trap 'fail "a command failed (line $LINENO)"' ERR

# munge: its own key, socket and files under $dir.
dd if=/dev/urandom of="$dir/munge.key" bs=1024 count=1 status=none
chmod 400 "$dir/munge.key"
munged --force --key-file="$dir/munge.key" --socket="$dir/munge.socket" --pid-file="$dir/munged.pid" \
       --log-file="$dir/munged.log" --seed-file="$dir/munged.seed"
slurmctld -f "$SLURM_CONF"
slurmd -f "$SLURM_CONF"
deadline=$((SECONDS + 60))
until [ "$(sinfo -h -N -o %t 2>/dev/null | head -1)" = idle ]; do
    [ $SECONDS -lt $deadline ] || fail "the node did not become idle within 60 s (sinfo: $(sinfo -h -N -o '%N %t %E' 2>&1 | head -1))"
    sleep 1
done
trap - ERR
echo "slurm-up: one-host cluster '$host' on ports $ctld_port/$slurmd_port; . $dir/env (SLURM_CONF=$SLURM_CONF)" >&2
echo "$dir"
