#!/bin/sh
# Measures TCP congestion controls on an emulated link between two network namespaces, with a bulk
# sender that asks the kernel for one congestion control per run (TCP_CONGESTION, as
# `p2p-peer --congestion` does for the transfers it serves) and a receiver that reads to the end.
# Prints one line per run:
#   cc=NAME rtt=50ms loss=L rate=100mbit bytes=N seconds=S MB/s=R
#
#   scripts/net/congestion-bench.sh [MBYTES] [CCS] [LOSSES]
#       (as root; defaults: 20, "cubic bbr", "0 1")
#
# The link: 25 ms each way (50 ms RTT), 100 Mbit/s and LOSS % random loss on the data path, delay
# only on the ACK path. It is emulated in user space by scripts/net/tun-netem.py between two TUN
# devices (the kernel this was written on has no netem qdisc); a loaded machine slows the
# emulator itself, so compare runs made together. Needs root, iproute2 and python3. Cleans up on
# exit.
set -eu
MBYTES="${1:-20}"
CCS="${2:-cubic bbr}"
LOSSES="${3:-0 1}"
HERE="$(cd "$(dirname "$0")" && pwd)"
A=p2pcc-a$$
B=p2pcc-b$$
NETEM=""
stop_netem() { if [ -n "$NETEM" ]; then kill "$NETEM" 2>/dev/null || true; wait "$NETEM" 2>/dev/null || true; NETEM=""; fi; }
cleanup() { stop_netem; ip netns del "$A" 2>/dev/null || true; ip netns del "$B" 2>/dev/null || true; rm -f "/tmp/$A.ready"; }
trap cleanup EXIT INT TERM
ip netns add "$A"
ip netns add "$B"
for ns in "$A" "$B"; do ip -n "$ns" link set lo up; done

RECV='
import socket, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("10.99.0.2", 5001)); s.listen(1)
c, _ = s.accept(); n = 0; t = None
while True:
    b = c.recv(1 << 20)
    if not b: break
    if t is None: t = time.monotonic()
    n += len(b)
c.send(b"x")
print(n, time.monotonic() - t, flush=True)
'
SEND='
import os, socket, sys
cc, total = sys.argv[1], int(sys.argv[2])
s = socket.socket()
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, cc.encode())
s.connect(("10.99.0.2", 5001))
buf = os.urandom(1 << 20); left = total
while left > 0:
    left -= s.send(buf[: min(left, len(buf))])
s.shutdown(socket.SHUT_WR); s.recv(1); s.close()
'
for loss in $LOSSES; do
  python3 "$HERE/tun-netem.py" ta$$ tb$$ 25 "$loss" 100 >"/tmp/$A.ready" &
  NETEM=$!
  until grep -q ready "/tmp/$A.ready" 2>/dev/null; do sleep 0.1; done
  ip link set ta$$ netns "$A"
  ip link set tb$$ netns "$B"
  ip -n "$A" addr add 10.99.0.1/24 dev ta$$
  ip -n "$B" addr add 10.99.0.2/24 dev tb$$
  ip -n "$A" link set ta$$ up
  ip -n "$B" link set tb$$ up
  for cc in $CCS; do
    out=$(mktemp)
    ip netns exec "$B" python3 -c "$RECV" >"$out" &
    rpid=$!
    until ip netns exec "$B" ss -ltn | grep -q 10.99.0.2:5001; do sleep 0.1; done
    ip netns exec "$A" python3 -c "$SEND" "$cc" $((MBYTES * 1000000))
    wait "$rpid"
    read -r bytes secs <"$out"
    rm -f "$out"
    echo "cc=$cc rtt=50ms loss=$loss% rate=100mbit bytes=$bytes seconds=$(printf %.1f "$secs") MB/s=$(python3 -c "print(round($bytes/$secs/1e6, 2))")"
  done
  stop_netem
done
