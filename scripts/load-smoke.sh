#!/usr/bin/env bash
# The load generator end to end, a few seconds per subcommand, on debug builds: every p2p-load
# subcommand that docs/PERFORMANCE.md reports from still runs, and exits non-zero when its
# measurement is not valid (errors, unexpected replies, console or log lines missing, a transfer
# of the wrong size, a failed listing). Speed is not judged here; release builds measure it.
#
# Usage: scripts/load-smoke.sh   (P2P_REQUIRE_RPCGEN=1: fail instead of skipping log-compare
# when rpcgen or libtirpc is missing)
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build -q -p p2p-bins -p p2p-benches
load=target/debug/p2p-load

echo "== compare"
"$load" compare --clients 4,32 --seconds 0.5 --runs 1
echo "== transfer"
"$load" transfer --size 8MiB --runs 1
echo "== scale"
"$load" scale --users 2000 --connected 200 --publications 5000 --big-user-files 500 --samples 3

if command -v rpcgen >/dev/null && [ -e /usr/include/tirpc/rpc/rpc.h ]; then
  echo "== log-compare"
  out=target/rpcgen-log-server
  benches/rpcgen/build.sh "$out" >/dev/null
  "$load" log-compare --rpcgen-server "$out/log_server" --clients 1,4 --seconds 0.5 --runs 1
  "$load" log-compare --rpcgen-server "$out/log_server" --c-client "$out/log_client" \
    --clients 2 --seconds 0.5 --runs 1
  "$load" log-compare --rpcgen-server "$out/log_server" --window 16 --clients 1 --seconds 0.5 --runs 1
elif [ "${P2P_REQUIRE_RPCGEN:-0}" = 1 ]; then
  echo "load-smoke: rpcgen or libtirpc-dev missing, and P2P_REQUIRE_RPCGEN=1" >&2
  exit 1
else
  echo "== log-compare skipped: needs rpcgen (rpcsvc-proto) and libtirpc-dev"
fi
echo "load-smoke: all subcommands ran and their measurements were valid"
