#!/usr/bin/env bash
# Runs the whole system on loopback: the datetime service, the log service, the
# directory server and two peers that register, publish, list and download
# from each other; then the server restarts on its store and a third peer
# finds what was published. Needs only Rust (cargo). Everything stops at the
# end and the work directory (the store included) is removed.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== building"
cargo build --quiet --bins
bin=target/debug
work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# Waits until FILE has a line matching REGEX and prints the first match.
wait_for() {
  local file=$1 regex=$2
  for _ in $(seq 1 200); do
    if grep -Eo "$regex" "$file" 2>/dev/null | head -n 1 | grep .; then return 0; fi
    sleep 0.05
  done
  echo "timed out waiting for '$regex' in $file:" >&2; cat "$file" >&2; return 1
}

echo "== starting the datetime service, the log service and the directory server"
"$bin/p2p-datetime" --bind 127.0.0.1:0 2>"$work/datetime.err" & pids+=($!)
dt_url=$(wait_for "$work/datetime.err" 'http://127\.0\.0\.1:[0-9]+/datetime')

"$bin/p2p-log" --bind 127.0.0.1 --port 0 --no-rpcbind >"$work/log.out" 2>"$work/log.err" & pids+=($!)
log_port=$(wait_for "$work/log.err" '127\.0\.0\.1:[0-9]+' | cut -d: -f2)

"$bin/p2p-server" --bind 127.0.0.1 -p 0 --store "sqlite:$work/directory.db" --log-rpc "127.0.0.1:$log_port" >"$work/server.out" 2>"$work/server.err" & pids+=($!)
server_port=$(wait_for "$work/server.out" 'init server 127\.0\.0\.1:[0-9]+' | sed 's/.*://')
echo "   datetime: $dt_url   log: 127.0.0.1:$log_port   directory: 127.0.0.1:$server_port"

mkdir -p "$work/alice" "$work/bob"
printf 'hello from alice\n' >"$work/alice/notes.txt"
head -c 5000000 /dev/urandom >"$work/alice/photo.jpg"

peer() { (cd "$work/$1" && "$OLDPWD/$bin/p2p-peer" -s 127.0.0.1 -p "$server_port" --datetime-url "$dt_url" --listen-addr 127.0.0.1); }

# alice stays connected (her shell waits on a FIFO) while bob downloads from her.
mkfifo "$work/alice.in"
peer alice <"$work/alice.in" >"$work/alice.out" 2>&1 & pids+=($!)
exec 3>"$work/alice.in"
printf 'REGISTER alice\nCONNECT alice\nPUBLISH notes.txt my notes\nPUBLISH photo.jpg a photo\n' >&3
wait_for "$work/alice.out" 'PUBLISH OK' >/dev/null
until [ "$(grep -c 'PUBLISH OK' "$work/alice.out")" = 2 ]; do sleep 0.05; done

echo "== bob's session"
status=0
peer bob <<'CMDS' | tee "$work/bob.out" || status=$?
REGISTER bob
CONNECT bob
LIST_USERS
LIST_CONTENT alice
GET_FILE alice notes.txt notes.txt
GET_FILE alice photo.jpg photo.jpg
GET_FILE alice nothing.txt nothing.txt
DISCONNECT bob
UNREGISTER bob
QUIT
CMDS
# One GET_FILE asks for a file alice never published, on purpose: a piped session with a failed
# command ends with exit status 1 (docs/OPERATING.md), anything else is a real failure.
if [ "$status" != 1 ]; then
  echo "quickstart: bob's session exited with $status, expected 1 (one failed GET_FILE)" >&2
  exit 1
fi
echo "== bob's session exited with 1: one command failed (the missing file), as expected"
printf 'DELETE notes.txt\nQUIT\n' >&3
exec 3>&-
wait "${pids[3]}"

echo "== alice's session"
cat "$work/alice.out"
# Separate commands: under `set -e` a difference stops the script (inside an && list it would not).
cmp "$work/alice/notes.txt" "$work/bob/notes.txt"
cmp "$work/alice/photo.jpg" "$work/bob/photo.jpg"
echo "== bob's copies are byte-identical to alice's files"

kill -TERM "${pids[2]}"; wait "${pids[2]}" || true
echo "== directory server console"
cat "$work/server.out"

echo "== the directory server restarts on the same store: carol still finds alice's publication"
"$bin/p2p-server" --bind 127.0.0.1 -p 0 --store "sqlite:$work/directory.db" >"$work/server2.out" 2>"$work/server2.err" & pids+=($!)
server_port=$(wait_for "$work/server2.out" 'init server 127\.0\.0\.1:[0-9]+' | sed 's/.*://')
mkdir -p "$work/carol"
peer carol <<'CMDS'
REGISTER carol
CONNECT carol
LIST_CONTENT alice
DISCONNECT carol
QUIT
CMDS
kill -TERM "${pids[4]}"; wait "${pids[4]}" || true
kill -TERM "${pids[1]}"; wait "${pids[1]}" || true
echo "== log service output"
cat "$work/log.out"
