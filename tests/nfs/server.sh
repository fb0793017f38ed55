#!/bin/sh
# PID 1 of the rig's server: a new network, mount and PID namespace made by
# tests/harness/nfs.rs. Brings lo up, starts rpcbind (socket-activated on
# 127.0.0.1) and nfs-ganesha, prints `ready` once both answer, and waits.
# Killing this process kills the whole server.
#
# Usage: server.sh CONFIG LOG
# Environment: RIG_SOCKET_ACTIVATE, RIG_RPCBIND, RIG_GANESHA, RIG_RPCINFO
# (absolute paths of the tools).
set -eu
config=$1
log=$2

ip link set lo up
# A private /run: rpcbind's lock file and socket, ganesha's pid file and
# recovery directory stay apart from the machine's and other rigs'.
mount -t tmpfs -o mode=0755 rig-run /run
mkdir -p /run/ganesha/recovery /run/rpcbind

# `rpcbind -h 127.0.0.1` aborts (double free) and `-h` never limits its TCP
# listener; sockets handed over by systemd-style activation work. rpcbind
# starts on the first connection.
"$RIG_SOCKET_ACTIVATE" -l /run/rpcbind.sock -l 127.0.0.1:111 \
    "$RIG_RPCBIND" -f 2>>"$log.rpcbind" &
rpcbind=$!

# Waits (10 s at most) until "$@" succeeds, while the process $1 lives.
wait_for() {
    pid=$1
    what=$2
    shift 2
    tries=0
    until "$@" >/dev/null 2>&1; do
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "$what exited during startup (see $log*)" >&2
            exit 1
        fi
        tries=$((tries + 1))
        if [ "$tries" -gt 1000 ]; then
            echo "$what did not answer within 10 s (see $log*)" >&2
            exit 1
        fi
        sleep 0.01
    done
}

# rpcbind must be serving before ganesha registers: when ganesha's first
# call is the one that starts rpcbind, about one start in 13 fails with
# "Cannot register NFS V3 on TCP".
wait_for "$rpcbind" rpcbind "$RIG_RPCINFO" -p 127.0.0.1

"$RIG_GANESHA" -F -f "$config" -L "$log" -p /run/ganesha/ganesha.pid &
ganesha=$!

# Ready when the portmapper names the NFS and MOUNT services and both answer
# a NULL call over TCP.
wait_for "$ganesha" ganesha.nfsd sh -c \
    '"$0" -t 127.0.0.1 nfs 3 && "$0" -t 127.0.0.1 mountd 3' "$RIG_RPCINFO"
echo ready

status=0
wait "$ganesha" || status=$?
echo "ganesha.nfsd exited with status $status (see $log)" >&2
exit 1
