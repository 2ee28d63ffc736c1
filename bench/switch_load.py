#!/usr/bin/env python3
"""The client of bench/switch.sh: a steady HTTP load, and the table of what it saw.

`switch_load.py run PORT RATE STOPFILE LOG`: GET / on 127.0.0.1:PORT, each request a new TCP
connection (HTTP/1.1, Connection: close), RATE requests a second on a fixed schedule (open
loop: a slow answer does not delay the next request) until STOPFILE exists; one line per
request in LOG: start time (epoch seconds), latency (s), outcome (ok, reset, refused,
timeout, status:..., error:...).

`switch_load.py report LOG OPS`: OPS has one line per operation, `LABEL START END` (epoch
seconds, the clock of `date +%s.%N`); prints a table per operation and the totals: requests,
failures, connection resets, the longest gap between two successful answers, and latency
percentiles (all requests, and those started during an operation).
"""

import concurrent.futures
import os
import socket
import sys
import threading
import time


def get(port):
    """One request: (start, latency, outcome)."""
    start = time.time()
    t0 = time.monotonic()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        if data.startswith(b"HTTP/1.1 200"):
            outcome = "ok"
        else:
            first = data.split(b"\r\n", 1)[0].decode(errors="replace") or "(nothing)"
            outcome = "status:" + first.replace(" ", "_")
    except ConnectionResetError:
        outcome = "reset"
    except ConnectionRefusedError:
        outcome = "refused"
    except socket.timeout:
        outcome = "timeout"
    except OSError as e:
        outcome = "error:" + type(e).__name__
    return start, time.monotonic() - t0, outcome


def run(port, rate, stop_file, log):
    lock = threading.Lock()
    with open(log, "w", encoding="utf-8") as out, \
            concurrent.futures.ThreadPoolExecutor(max_workers=64) as pool:
        def one():
            start, took, outcome = get(port)
            with lock:
                out.write(f"{start:.6f} {took:.6f} {outcome}\n")
        begin = time.monotonic()
        n = 0
        while not os.path.exists(stop_file):
            pool.submit(one)
            n += 1
            wait = begin + n / rate - time.monotonic()
            if wait > 0:
                time.sleep(wait)


def percentile(sorted_values, p):
    if not sorted_values:
        return float("nan")
    return sorted_values[round((len(sorted_values) - 1) * p)]


def ms(seconds):
    return f"{seconds * 1000:.1f}"


def report(log, ops_file):
    reqs = []
    with open(log, encoding="utf-8") as f:
        for line in f:
            start, took, outcome = line.split()
            reqs.append((float(start), float(took), outcome))
    ops = []
    with open(ops_file, encoding="utf-8") as f:
        for line in f:
            label, start, end = line.rsplit(maxsplit=2)
            ops.append((label, float(start), float(end)))
    reqs.sort()

    def during(start, end):
        return [r for r in reqs if start <= r[0] <= end]

    print(f"{'operation':<22} {'secs':>6} {'requests':>9} {'failed':>7} {'max ms':>8}")
    for label, start, end in ops:
        rs = during(start, end)
        failed = sum(1 for r in rs if r[2] != "ok")
        worst = max((r[1] for r in rs), default=0.0)
        print(f"{label:<22} {end - start:>6.2f} {len(rs):>9} {failed:>7} {ms(worst):>8}")

    failed = [r for r in reqs if r[2] != "ok"]
    resets = sum(1 for r in failed if r[2] == "reset")
    done = sorted(r[0] + r[1] for r in reqs if r[2] == "ok")
    gap = max((b - a for a, b in zip(done, done[1:])), default=float("nan"))
    span = reqs[-1][0] - reqs[0][0] if len(reqs) > 1 else float("nan")
    all_lat = sorted(r[1] for r in reqs)
    in_ops = sorted(r[1] for r in reqs if any(s <= r[0] <= e for _, s, e in ops))
    print()
    print(f"requests             {len(reqs)} in {span:.1f} s ({len(reqs) / span:.0f}/s)")
    print(f"failed               {len(failed)} (connection resets: {resets})")
    kinds = sorted({r[2] for r in failed})
    for k in kinds:
        print(f"  {k}: {sum(1 for r in failed if r[2] == k)}")
    print(f"longest gap          {ms(gap)} ms between two successful answers")
    for name, lat in (("latency, all", all_lat), ("latency, during ops", in_ops)):
        print(f"{name:<20} p50 {ms(percentile(lat, 0.5))} ms, p90 {ms(percentile(lat, 0.9))} ms, "
              f"p99 {ms(percentile(lat, 0.99))} ms, max {ms(percentile(lat, 1.0))} ms "
              f"({len(lat)} requests)")
    return 1 if failed else 0


def main(argv):
    if len(argv) == 6 and argv[1] == "run":
        run(int(argv[2]), float(argv[3]), argv[4], argv[5])
        return 0
    if len(argv) == 4 and argv[1] == "report":
        return report(argv[2], argv[3])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
