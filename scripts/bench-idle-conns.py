#!/usr/bin/env python3
"""Memory an idle keep-alive connection costs a proxy: open N connections to it, each from a
loopback address of its own (127.0.x.y, so that per-address limits do not refuse them), send one
request on each and read its answer, then hold them all open and compare the resident set of the
proxy's processes before and after. Loopback only.

Usage: bench-idle-conns.py PORT PID[,PID...] [N] [HOST]
  PORT  the proxy's port on 127.0.0.1; PID  the proxy's processes (workers included);
  N     connections (default 1000); HOST the Host header (default bench.local, as scripts/bench.sh).
Prints: N idle connections: RSS before -> after KiB, bytes each.
"""
import resource
import socket
import sys
import time


def rss_kib(pids):
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    port, pids = int(sys.argv[1]), sys.argv[2].split(",")
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 1000
    host = sys.argv[4] if len(sys.argv) > 4 else "bench.local"
    request = f"GET / HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
    # A socket each, and room to spare: the default soft limit of 1,024 is just enough for 1,000.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < n + 64:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, n + 64), hard))
    before = rss_kib(pids)
    held = []
    for i in range(n):
        s = socket.socket()
        s.settimeout(10)
        s.bind((f"127.0.{1 + i // 200}.{10 + i % 200}", 0))
        s.connect(("127.0.0.1", port))
        s.sendall(request)
        answer = b""
        while b"\r\n" not in answer:
            chunk = s.recv(4096)
            if not chunk:
                break
            answer += chunk
        if not answer.startswith(b"HTTP/1.1 200"):
            sys.exit(f"connection {i}: {answer[:80]!r}")
        held.append(s)
    time.sleep(1)
    after = rss_kib(pids)
    print(f"{n} idle connections: RSS {before} -> {after} KiB, {(after - before) * 1024 / n:.0f} bytes each")


if __name__ == "__main__":
    main()
