#!/bin/bash
# PID 1 of a simulated host: a new UTS, mount and PID namespace (with its own
# /proc) made by tests/harness/nfs.rs inside the server's network namespace.
# Sets the hostname, bind-mounts the host's boot id, mounts the export with
# fuse-nfs, prints `ready` and stays. Killing this process crashes the host:
# every process in it dies, fuse-nfs too, and the mount goes with the
# namespace.
#
# Usage: host.sh HOSTNAME BOOT_ID_FILE NFS_URL MOUNT_POINT
# Environment: RIG_FUSE_NFS (absolute path of fuse-nfs).
set -eu
name=$1
boot_id=$2
url=$3
mnt=$4

hostname "$name"
mount --bind "$boot_id" /proc/sys/kernel/random/boot_id
# -d direct I/O, -E 0 -T 0 no entry or attribute caching, -q real inode
# numbers; RIG_FUSE_NFS_OPTS replaces them (the caching variant: -q only).
# fuse-nfs returns once the mount is up and stays in the background.
# shellcheck disable=SC2086 # options, split on purpose
"$RIG_FUSE_NFS" -n "$url" -m "$mnt" ${RIG_FUSE_NFS_OPTS:--d -E 0 -T 0 -q}
echo ready

# Bash, unlike a bare `sleep`, reaps the orphans reparented to PID 1, so a
# dead process here never lingers as a zombie that looks alive.
while :; do
    sleep 3600
done
