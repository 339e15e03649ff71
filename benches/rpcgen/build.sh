#!/bin/sh
# Builds the rpcgen reference log server and C client for `p2p-load log-compare` into $1
# (default target/rpcgen-log-server/). Needs rpcgen (rpcsvc-proto), libtirpc-dev and a C compiler:
#   apt-get install -y rpcsvc-proto libtirpc-dev
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-"$here/../../target/rpcgen-log-server"}
mkdir -p "$out"
cp "$here/../../p2p-proto/log.x" "$here/log_server_main.c" "$here/log_proc.c" \
    "$here/log_client_main.c" "$out/"
cd "$out"
rm -f log.h log_xdr.c log_svc.c log_clnt.c
rpcgen -NM -h -o log.h log.x
rpcgen -NM -c -o log_xdr.c log.x
rpcgen -NM -m -o log_svc.c log.x
rpcgen -NM -l -o log_clnt.c log.x
cc -O2 -I/usr/include/tirpc -o log_server log_server_main.c log_proc.c log_svc.c log_xdr.c -ltirpc
cc -O2 -I/usr/include/tirpc -o log_client log_client_main.c log_clnt.c log_xdr.c -ltirpc
echo "$out/log_server"
echo "$out/log_client"
