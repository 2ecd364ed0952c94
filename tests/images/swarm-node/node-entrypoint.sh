#!/bin/sh
# Start the node's own dockerd in the foreground. It listens on its usual socket and, when
# the folder /run/stackgen-node is mounted from the host, on a socket there too, so the
# host's docker client (and stackgen) can drive this node's engine without TCP.
# STACKGEN_NODE_STORAGE picks the storage driver (default vfs: works on any backing fs).
set -eu
storage="${STACKGEN_NODE_STORAGE:-vfs}"
set -- --storage-driver="$storage" --host=unix:///var/run/docker.sock "$@"
if [ -d /run/stackgen-node ]; then
    set -- "$@" --host=unix:///run/stackgen-node/docker.sock
fi
# Services run the images loaded into this node: without this, each task first tries to
# pull its image from a registry (a DNS lookup for a name no test may reach).
export DOCKER_SERVICE_PREFER_OFFLINE_IMAGE=1
# Old pid files from a container restart would stop dockerd/containerd from starting.
rm -f /var/run/docker.pid /var/run/docker/containerd/containerd.pid
exec dockerd "$@"
