#!/usr/bin/env python3
"""Memory of each rc1 TCP server under hostile clients (a benchmark, not a
test: the figures are resident memory, VmRSS, sampled from /proc).

For each of text, text-sel, v2 and v3, one server goes through, and its
resident memory is judged after each step against a budget over its idle
size (this exits 1 if one is exceeded, or if a lab client does not get its
echo after a step):
  1. 1,000 clients that connect and send nothing, and 1,000 that trickle
     valid requests a byte every 0.2 s (for SECONDS): 64 kB per client;
  2. 500 clients that send the start of a request and stop (v3: a header
     claiming 1 MiB, the default --max-frame, and one byte): 64 kB each;
  3. a storm of 10,000 short connections (connect, one request, read the
     echo, close), from 4 threads: 16 MB right after;
  4. 50 clients that send requests without ever reading their echoes,
     until the server stops reading from them: 1 MB each;
  5. a client that reads its echoes, but always 3 MB behind: 8 MB;
  6. everyone gone: 16 MB.
The thread-per-client servers cost a thread (and its stack) per client
while it is connected; the selector costs a small entry; a client that
does not read holds at most one read's echo on a thread, or 256 KiB queued
on the selector, plus the kernel's socket buffers (not in RSS).

usage: benches/hostile.py [SECONDS per step, default 3]
"""

import os
import re
import resource
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SERVERS = ["text", "text-sel", "v2", "v3"]


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def request(proto, order, msg=b"hostile"):
    if proto == "v2":
        return struct.pack("!BLL20s", 1, order, len(msg), msg.ljust(20, b"-"))
    if proto == "v3":
        return struct.pack("!BLL", 1, order, len(msg)) + msg
    return msg


def exchange(port, req):
    """One connection: `req`, then its echo (what came back before a close)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(req)
        got = b""
        while len(got) < len(req):
            chunk = s.recv(len(req) - len(got))
            if not chunk:
                break
            got += chunk
    return got


def echo_ok(port, proto):
    """One request and its echo, as a lab client does."""
    req = request(proto, 1, b"still served?")
    return exchange(port, req) == req


def storm(port, proto, n, threads=4):
    req = request(proto, 1)

    errors = []

    def work(k):
        try:
            for _ in range(k):
                if exchange(port, req) != req:
                    raise RuntimeError("no echo, or a wrong one")
        except (OSError, RuntimeError) as e:
            errors.append(e)

    ts = [threading.Thread(target=work, args=(n // threads,)) for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    if errors:
        sys.exit(f"hostile: {proto} storm: {errors[0]}")


def main():
    secs = float(sys.argv[1]) if len(sys.argv) > 1 else 3.0
    if not 0.5 <= secs <= 60:
        sys.exit("hostile: SECONDS must be between 0.5 and 60")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 8192), hard))
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    rc1 = os.path.join(target, "release", "rc1")

    rows, failed = [], []
    for proto in SERVERS:
        server = subprocess.Popen(
            [rc1, "server", "--proto", proto, "--port", "0", "--bind", "127.0.0.1",
             "--max-conns", "3000", "-q"], stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL, text=True)
        try:
            port = int(re.search(r":(\d+)", server.stdout.readline()).group(1))
            wire = "text" if proto == "text-sel" else proto
            idle_mib = rss_mib(server.pid)
            row = [proto, f"{idle_mib:.1f}"]

            def check(step):
                if not echo_ok(port, wire):
                    failed.append(f"{proto}: no echo for a lab client after {step}")

            def measure(step, budget_mib):
                """RSS now, judged against idle + budget."""
                now = rss_mib(server.pid)
                if now > idle_mib + budget_mib:
                    failed.append(f"{proto}: {step}: {now:.1f} MB, over its budget of "
                                  f"{idle_mib:.1f} + {budget_mib:.1f} MB")
                row.append(f"{now:.1f}")

            # 1. idle and trickling clients.
            idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(2000)]
            # Each trickler sends valid requests, one byte at a time.
            stream = request(wire, 1) * 64
            t0, at = time.monotonic(), 0
            while time.monotonic() - t0 < secs:
                for s in idle[1::2]:
                    try:
                        s.send(stream[at % len(stream):at % len(stream) + 1])
                    except OSError:
                        pass
                at += 1
                time.sleep(0.2)
            check("1,000 idle and 1,000 trickling clients")
            measure("2,000 idle and trickling clients", 2000 * 64 / 1024)
            for s in idle:
                s.close()
            time.sleep(0.5)

            # 2. clients that send the start of the largest request and stop
            # (v3: a header claiming 1 MiB, the default --max-frame).
            if wire == "v3":
                start = struct.pack("!BLL", 1, 1, 1 << 20) + b"x"
            else:
                start = request(wire, 1, b"y" * 19)[:-1]
            held = []
            for _ in range(500):
                s = socket.create_connection(("127.0.0.1", port))
                s.sendall(start)
                held.append(s)
            time.sleep(min(secs, 1.0))
            check("500 clients holding an unfinished request")
            measure("500 unfinished requests", 500 * 64 / 1024)
            for s in held:
                s.close()
            time.sleep(0.5)

            # 3. the storm.
            t0 = time.monotonic()
            storm(port, wire, 10_000)
            took = time.monotonic() - t0
            measure("after the storm", 16)
            check("the storm")

            # 4. clients that never read.
            batch = b"".join(request(wire, i + 1, b"x" * (1000 if wire == "v3" else 7))
                             for i in range(2000))
            hogs = []
            for _ in range(50):
                s = socket.create_connection(("127.0.0.1", port))
                s.setblocking(False)
                hogs.append(s)
            t0 = time.monotonic()
            while time.monotonic() - t0 < secs:
                for s in hogs:
                    # As much as the kernel takes (bounded per round).
                    for _ in range(64):
                        try:
                            s.send(batch)
                        except OSError:
                            break
                time.sleep(0.05)
            check("50 clients that never read")
            measure("50 non-readers", 50 * 1.0)
            for s in hogs:
                s.close()
            time.sleep(1.0)

            # 5. a client that reads, but always a little behind: 3 MB sent
            # ahead, then a request and its echo in step.
            lag = socket.create_connection(("127.0.0.1", port))
            lag.settimeout(10)
            block = b"".join(request(wire, i + 1) for i in range(256))
            ahead = 0
            while ahead < 3_000_000:
                lag.sendall(block)
                ahead += len(block)
            t0 = time.monotonic()
            while time.monotonic() - t0 < secs:
                lag.sendall(block)
                got = 0
                while got < len(block):
                    chunk = lag.recv(len(block) - got)
                    if not chunk:
                        sys.exit(f"hostile: {proto} closed the reader that was behind")
                    got += len(chunk)
            measure("a reader 3 MB behind", 8)
            lag.close()
            time.sleep(0.5)
            check("all hostile clients left")
            measure("at the end", 16)
            row.append(f"{10_000 / took:,.0f}")
            rows.append(row)
        finally:
            server.send_signal(signal.SIGINT)
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()

    head = ["server", "RSS MB: idle", "2,000 idle+trickling", "500 unfinished",
            "after 10k storm", "50 non-readers", "reader 3 MB behind", "end", "storm conn/s"]
    widths = [max(len(r[i]) for r in rows + [head]) for i in range(len(head))]
    for r in [head] + rows:
        print("  ".join(c.rjust(w) for c, w in zip(r, widths)))
    if failed:
        print("FAILED:\n  " + "\n  ".join(failed))
        sys.exit(1)
    print("ok: a lab client was served after every step, on every server, "
          "and memory stayed within every budget")


if __name__ == "__main__":
    main()
