#!/usr/bin/env python3
"""Spread of short connections over workers under --dispatch least and rr.

Starts build/handoffd (whoami, 4 workers) on a loopback port, makes TOTAL
connections from CONC concurrent client threads (connect, read the whoami
line, close) and prints how many each worker served. Bounded: TOTAL
connections, each with a 5 s timeout. Usage: bench/spread.py [TOTAL [CONC]]
"""
import collections
import re
import socket
import subprocess
import sys
import threading
import time


def run(policy, total, conc, binary="build/handoffd"):
    p = subprocess.Popen([binary, "--listen", "127.0.0.1:0", "--workers", "4",
                          "--protocol", "whoami", "--dispatch", policy, "--admin", "off"],
                         stderr=subprocess.PIPE, text=True)
    try:
        line = p.stderr.readline()
        port = int(re.search(r"127\.0\.0\.1:(\d+),", line).group(1))
        count = collections.Counter()
        lock = threading.Lock()

        def client():
            for _ in range(total // conc):
                with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                    got = s.makefile().readline()
                k = int(re.search(r"worker=(\d+)", got).group(1))
                with lock:
                    count[k] += 1

        threads = [threading.Thread(target=client) for _ in range(conc)]
        t0 = time.time()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        v = [count[k] for k in sorted(count)]
        print(f"{policy:5} per worker {v} max/min {max(v) / min(v):.3f} "
              f"({sum(v) / (time.time() - t0):.0f} conn/s)")
    finally:
        p.terminate()
        p.wait(timeout=15)


if __name__ == "__main__":
    total = int(sys.argv[1]) if len(sys.argv) > 1 else 8000
    conc = int(sys.argv[2]) if len(sys.argv) > 2 else 50
    for policy in ("least", "rr"):
        run(policy, total, conc)
