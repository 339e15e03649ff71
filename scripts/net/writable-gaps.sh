#!/bin/sh
# Why the serving side sets TCP_NOTSENT_LOWAT: on a slow link with a deep queue, how long does a
# sender's socket stay unwritable (the wait a write timer sees) while bytes keep moving?
#
#   scripts/net/writable-gaps.sh [KBYTES] [RATE_MBIT] [LOWATS]
#       (as root; defaults: 2000 KB, 0.256 Mbit/s, "none 131072")
#
# The link (scripts/net/tun-netem.py between two network namespaces): 25 ms each way, RATE, no
# loss, a 10 000-packet queue (bufferbloat, as on the bed of issue 18). A non-blocking CUBIC
# sender writes whenever its socket is writable, like the file server; for each TCP_NOTSENT_LOWAT
# setting ("none": the kernel's default) it prints the longest time between two writes that
# moved bytes, and the transfer's time and rate.
set -eu
KBYTES="${1:-2000}"
RATE="${2:-0.256}"
LOWATS="${3:-none 131072}"
HERE="$(cd "$(dirname "$0")" && pwd)"
A=p2pgap-a$$
B=p2pgap-b$$
NETEM=""
cleanup() {
  if [ -n "$NETEM" ]; then kill "$NETEM" 2>/dev/null || true; wait "$NETEM" 2>/dev/null || true; fi
  ip netns del "$A" 2>/dev/null || true; ip netns del "$B" 2>/dev/null || true; rm -f "/tmp/$A.ready"
}
trap cleanup EXIT INT TERM
ip netns add "$A"
ip netns add "$B"
for ns in "$A" "$B"; do ip -n "$ns" link set lo up; done
python3 "$HERE/tun-netem.py" ta$$ tb$$ 25 0 "$RATE" >"/tmp/$A.ready" &
NETEM=$!
until grep -q ready "/tmp/$A.ready" 2>/dev/null; do sleep 0.1; done
ip link set ta$$ netns "$A"
ip link set tb$$ netns "$B"
ip -n "$A" addr add 10.99.0.1/24 dev ta$$
ip -n "$B" addr add 10.99.0.2/24 dev tb$$
ip -n "$A" link set ta$$ up
ip -n "$B" link set tb$$ up

RECV='
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("10.99.0.2", 5002)); s.listen(1)
c, _ = s.accept()
while c.recv(1 << 20): pass
c.send(b"x")
'
SEND='
import select, socket, sys, time
lowat, total = sys.argv[1], int(sys.argv[2])
s = socket.socket()
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, b"cubic")
if lowat != "none":
    s.setsockopt(socket.IPPROTO_TCP, getattr(socket, "TCP_NOTSENT_LOWAT", 25), int(lowat))
s.connect(("10.99.0.2", 5002)); s.setblocking(False)
buf = b"x" * (1 << 20); left = total
start = last = time.monotonic(); gap = 0.0
while left > 0:
    select.select([], [s], [], 600)
    try:
        n = s.send(buf[: min(left, len(buf))])
    except BlockingIOError:
        continue
    now = time.monotonic(); gap = max(gap, now - last); last = now; left -= n
s.setblocking(True); s.shutdown(socket.SHUT_WR); s.recv(1)
took = time.monotonic() - start
print("notsent_lowat=%s bytes=%d seconds=%.1f KB/s=%.1f longest_unwritable=%.1fs" % (lowat, total, took, total / took / 1e3, gap))
'
for lowat in $LOWATS; do
  ip netns exec "$B" python3 -c "$RECV" &
  rpid=$!
  until ip netns exec "$B" ss -ltn | grep -q 10.99.0.2:5002; do sleep 0.1; done
  ip netns exec "$A" python3 -c "$SEND" "$lowat" $((KBYTES * 1000))
  wait "$rpid"
done
