#!/usr/bin/env bash
# Starts one rank of a cluster test: in ROOT/NODE (NODE: the network namespace, or "host"), so
# each emulated host has its own working directory, after saving the launcher's environment to
# ROOT/NODE/env.PID (NUL-separated, as /proc/PID/environ).
#
#   rank-env.sh ROOT COMMAND...
set -euo pipefail
root=${1:?usage: rank-env.sh ROOT COMMAND...}
shift
node=$(ip netns identify $$ 2>/dev/null || true)
dir=$root/${node:-host}
mkdir -p "$dir"
cd "$dir"
env -0 >"env.$$"
exec "$@"
