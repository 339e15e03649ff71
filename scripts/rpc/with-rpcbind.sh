#!/bin/sh
# Runs a command with its own rpcbind, inside a private network namespace (loopback only) with a
# private /run, so that tests can register and look up RPC programs without touching the host's
# rpcbind or port 111.
#
#   scripts/rpc/with-rpcbind.sh cargo test -p p2p-bins --test rpcgen_interop
#
# Needs root (unshare), and the packages rpcbind, rpcsvc-proto (rpcgen) and libtirpc-dev:
#   apt-get update && apt-get install -y rpcsvc-proto libtirpc-dev rpcbind
# Inside, P2P_RPCBIND_NS=1 is set. Exit status: the command's.
set -eu

if [ "$#" -eq 0 ]; then
    echo "usage: $0 COMMAND [ARG...]" >&2
    exit 2
fi

if [ -z "${P2P_RPCBIND_NS:-}" ]; then
    if [ "$(id -u)" != 0 ]; then
        echo "$0: needs root (unshare -n -m); run it as root or under sudo" >&2
        exit 1
    fi
    for tool in unshare ip rpcbind rpcinfo; do
        if ! command -v "$tool" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$tool" ] && [ ! -x "/sbin/$tool" ]; then
            echo "$0: $tool not found; install: apt-get install -y rpcsvc-proto libtirpc-dev rpcbind" >&2
            exit 1
        fi
    done
    P2P_RPCBIND_NS=1 exec unshare -n -m --propagation private "$0" "$@"
fi

PATH="$PATH:/usr/sbin:/sbin"
ip link set lo up
# A private /run: rpcbind's socket (/run/rpcbind.sock) and state stay in this namespace.
mount -t tmpfs tmpfs /run
rpcbind -f -w &
rpcbind_pid=$!
tries=0
until rpcinfo -p 127.0.0.1 >/dev/null 2>&1; do
    tries=$((tries + 1))
    if [ "$tries" -gt 100 ] || ! kill -0 "$rpcbind_pid" 2>/dev/null; then
        echo "$0: rpcbind did not start" >&2
        exit 1
    fi
    sleep 0.1
done

set +e
"$@"
status=$?
kill "$rpcbind_pid" 2>/dev/null
wait "$rpcbind_pid" 2>/dev/null
exit "$status"
