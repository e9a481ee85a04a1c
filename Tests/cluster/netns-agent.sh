#!/usr/bin/env bash
# mpirun's launcher agent for two emulated hosts (--mca plm_rsh_agent PATH, in place of ssh):
# mpirun calls it as `agent HOST COMMAND...` to start its daemon on HOST; it runs COMMAND in the
# network namespace that owns HOST's address (made by netns.sh up $NETNS_TAG).
set -euo pipefail
tag=${NETNS_TAG:?netns-agent.sh: NETNS_TAG is not set}
while [[ ${1:-} == -* ]]; do shift; done   # ssh-style options, if mpirun passes any
host=${1:?usage: netns-agent.sh HOST COMMAND...}
shift
case $host in
    10.231.0.1) ns=$tag-a ;;
    10.231.0.2) ns=$tag-b ;;
    *) echo "netns-agent.sh: no namespace holds host '$host'" >&2; exit 1 ;;
esac
# as ssh does: the words form one command line for the remote shell
exec ip netns exec "$ns" /bin/sh -c "$*"
