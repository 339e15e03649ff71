#!/usr/bin/env python3
"""A user-space stand-in for `tc netem` where the kernel has none: forwards IP packets between two
TUN devices with a one-way delay, random loss and a rate limit on the A->B direction (the data
path), and the delay only on B->A (the ACK path).

    tun-netem.py TUN_A TUN_B DELAY_MS LOSS_PERCENT RATE_MBIT

Creates both devices, prints "ready" once they exist (the caller then moves them into network
namespaces and addresses them), and forwards until killed. A single-threaded loop: fine for the
tens of thousands of packets per second a 100 Mbit/s link carries.
"""
import fcntl
import heapq
import os
import random
import select
import struct
import sys
import time

TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
# A queue of this many packets in the link: beyond it, drop-tail (like netem's `limit`).
LIMIT = 10000


def open_tun(name):
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
    return fd


def main():
    a_name, b_name, delay_ms, loss_pct, rate_mbit = sys.argv[1:6]
    delay = float(delay_ms) / 1000
    loss = float(loss_pct) / 100
    rate = float(rate_mbit) * 1e6 / 8  # bytes per second
    a, b = open_tun(a_name), open_tun(b_name)
    print("ready", flush=True)
    rng = random.Random(1)
    # (deliver_at, seq, fd, packet)
    queue = []
    seq = 0
    link_free = 0.0  # when the A->B link has sent its queued bytes
    while True:
        now = time.monotonic()
        timeout = max(0.0, queue[0][0] - now) if queue else 1.0
        readable, _, _ = select.select([a, b], [], [], timeout)
        now = time.monotonic()
        for fd in readable:
            for _ in range(256):
                try:
                    packet = os.read(fd, 65536)
                except BlockingIOError:
                    break
                if fd == a:
                    if rng.random() < loss or len(queue) > LIMIT:
                        continue
                    link_free = max(link_free, now) + len(packet) / rate
                    heapq.heappush(queue, (link_free + delay, seq, b, packet))
                else:
                    heapq.heappush(queue, (now + delay, seq, a, packet))
                seq += 1
        now = time.monotonic()
        while queue and queue[0][0] <= now:
            _, _, fd, packet = heapq.heappop(queue)
            try:
                os.write(fd, packet)
            except OSError:
                pass


if __name__ == "__main__":
    main()
