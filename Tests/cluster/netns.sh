#!/usr/bin/env bash
# Two emulated hosts for the cluster tests: network namespaces TAG-a and TAG-b joined by a veth
# pair, 10.231.0.1/30 in TAG-a and 10.231.0.2/30 in TAG-b (nothing routed anywhere else). Root
# (CAP_NET_ADMIN and CAP_SYS_ADMIN) is needed.
#
#   netns.sh up TAG      # create (removes leftovers of the same TAG first)
#   netns.sh cut TAG     # take the link down on both ends (a failed network between the hosts)
#   netns.sh down TAG    # delete both namespaces (and with them the veth pair); never fails
#
# TAG: at most 10 characters [a-z0-9-] (interface names are limited to 15).
set -uo pipefail
cmd=${1:?usage: netns.sh up|cut|down TAG}
tag=${2:?usage: netns.sh up|cut|down TAG}
[[ $tag =~ ^[a-z0-9-]{1,10}$ ]] || { echo "netns.sh: bad TAG '$tag'" >&2; exit 2; }
a=$tag-a b=$tag-b
va=${tag}va vb=${tag}vb

down() {
    ip netns pids "$a" 2>/dev/null | xargs -r kill -KILL 2>/dev/null
    ip netns pids "$b" 2>/dev/null | xargs -r kill -KILL 2>/dev/null
    ip netns del "$a" 2>/dev/null
    ip netns del "$b" 2>/dev/null
    ip link del "$va" 2>/dev/null
    return 0
}

case $cmd in
up)
    down
    set -e
    ip netns add "$a"
    ip netns add "$b"
    ip link add "$va" netns "$a" type veth peer name "$vb" netns "$b"
    ip -n "$a" addr add 10.231.0.1/30 dev "$va"
    ip -n "$b" addr add 10.231.0.2/30 dev "$vb"
    for ns in "$a" "$b"; do ip -n "$ns" link set lo up; done
    ip -n "$a" link set "$va" up
    ip -n "$b" link set "$vb" up
    # wait (bounded) until both ends have a carrier
    for _ in $(seq 50); do
        ip -n "$a" link show "$va" | grep -q LOWER_UP && ip -n "$b" link show "$vb" | grep -q LOWER_UP && exit 0
        sleep 0.1
    done
    echo "netns.sh: the veth pair $va/$vb did not come up" >&2
    exit 1
    ;;
cut)
    ip -n "$a" link set "$va" down
    ip -n "$b" link set "$vb" down
    ;;
down)
    down
    ;;
*)
    echo "usage: netns.sh up|cut|down TAG" >&2
    exit 2
    ;;
esac
