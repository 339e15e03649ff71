#!/bin/sh
# Measures TCP congestion controls on an emulated link between two network namespaces (veth,
# tc netem on the sender's side: delay, loss, rate), with a bulk sender that asks the kernel for
# one congestion control per run (TCP_CONGESTION, as `p2p-peer --congestion` does for the
# transfers it serves) and a receiver that reads to the end. Prints one line per run:
#   cc=NAME delay=... loss=... rate=... bytes=N seconds=S MB/s=R
#
#   scripts/net/congestion-bench.sh [MBYTES] [CCS]     (as root; default 20 MB, "cubic bbr")
#
# The link: 25 ms each way (50 ms RTT), 100 Mbit/s, with 0 % and 1 % loss on the data path.
# Needs root, iproute2 (ip, tc with netem) and python3. Cleans up its namespaces on exit.
set -eu
MBYTES="${1:-20}"
CCS="${2:-cubic bbr}"
A=p2pcc-a$$
B=p2pcc-b$$
cleanup() { ip netns del "$A" 2>/dev/null || true; ip netns del "$B" 2>/dev/null || true; }
trap cleanup EXIT INT TERM
ip netns add "$A"
ip netns add "$B"
ip link add va$$ type veth peer name vb$$
ip link set va$$ netns "$A"
ip link set vb$$ netns "$B"
ip -n "$A" addr add 10.99.0.1/24 dev va$$
ip -n "$B" addr add 10.99.0.2/24 dev vb$$
for ns in "$A" "$B"; do ip -n "$ns" link set lo up; done
ip -n "$A" link set va$$ up
ip -n "$B" link set vb$$ up
# The ACK path: delay only.
tc -n "$B" qdisc add dev vb$$ root netem delay 25ms limit 100000

RECV='
import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("10.99.0.2", 5001)); s.listen(1)
c, _ = s.accept(); n = 0; t = None
while True:
    b = c.recv(1 << 20)
    if not b: break
    if t is None: t = time.monotonic()
    n += len(b)
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
for loss in 0% 1%; do
  tc -n "$A" qdisc replace dev va$$ root netem delay 25ms loss "$loss" rate 100mbit limit 100000
  for cc in $CCS; do
    out=$(mktemp)
    ip netns exec "$B" python3 -c "$RECV" >"$out" &
    rpid=$!
    until ip netns exec "$B" ss -ltn | grep -q 10.99.0.2:5001; do sleep 0.1; done
    ip netns exec "$A" python3 -c "$SEND" "$cc" $((MBYTES * 1000000))
    wait "$rpid"
    read -r bytes secs <"$out"
    rm -f "$out"
    echo "cc=$cc delay=25ms+25ms loss=$loss rate=100mbit bytes=$bytes seconds=$secs MB/s=$(python3 -c "print(round($bytes/$secs/1e6, 2))")"
  done
done
