#!/usr/bin/env python3
"""Soak: every rc1 server under a steady flood, with a live capture beside
each, for a bounded time (default 60 s).

For each server (udp --echo, text, text-sel, v2, v3) at once:
  rc1 server --proto P --port 0 -q
  rc1 capture -i lo --port PORT -q --json          (the summary only)
  rc1 flood --proto P --port PORT -c 4 --rate R -d SECONDS --json

At the end it checks, per server:
  * flood: sent = echoed = verified (nothing missing, nothing mismatched);
  * capture: the kernel dropped nothing, no gap, and the bytes (and, for
    v2/v3/udp, the messages) it decoded each way equal what flood sent and
    got back;
  * memory: the resident set (VmRSS) of the server and of its capture at
    the end is within 10 % (or 1 MiB) of what it was after the warm-up
    (10 % of the run).
It prints one table and exits 1 if anything fails. Live capture needs root
or CAP_NET_RAW.

usage: benches/soak.py [SECONDS] [--rate FRAMES_PER_S per server, default 2000]
"""

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROTOS = ["udp", "text", "text-sel", "v2", "v3"]


def rss_kib(pid):
    """Resident set of a process in KiB, or None once it is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("seconds", nargs="?", type=float, default=60.0)
    ap.add_argument("--rate", type=int, default=2000)
    a = ap.parse_args()
    if not 1 <= a.seconds <= 3600:
        sys.exit("soak: SECONDS must be between 1 and 3600")

    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    rc1 = os.path.join(target, "release", "rc1")
    probe = subprocess.run([rc1, "capture", "-i", "lo", "-c", "0", "-q"],
                           capture_output=True, text=True)
    if probe.returncode != 0:
        sys.exit("soak: cannot capture on lo (" + probe.stderr.strip()
                 + "); run as root or give rc1 CAP_NET_RAW")

    procs = []
    try:
        servers, captures = {}, {}
        for p in PROTOS:
            args = [rc1, "server", "--proto", p, "--port", "0", "--bind", "127.0.0.1", "-q"]
            if p == "udp":
                args.append("--echo")
            s = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
            procs.append(s)
            line = s.stdout.readline()
            m = re.search(r"127\.0\.0\.1:(\d+)", line)
            if not m:
                sys.exit(f"soak: {p} server did not say where it listens: {line!r}")
            servers[p] = (s, m.group(1))
        for p, (_, port) in servers.items():
            c = subprocess.Popen([rc1, "capture", "-i", "lo", "--port", port, "-q", "--json"],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            procs.append(c)
            line = c.stderr.readline()
            if "capturing on lo" not in line:
                sys.exit(f"soak: capture for {p} did not start: {line!r}")
            captures[p] = c
        time.sleep(0.5)

        # Memory samples, once a second, of every server and capture.
        samples = {p: [] for p in PROTOS}
        done = threading.Event()

        def sample():
            t0 = time.monotonic()
            while not done.is_set():
                t = time.monotonic() - t0
                for p in PROTOS:
                    samples[p].append((t, rss_kib(servers[p][0].pid), rss_kib(captures[p].pid)))
                done.wait(1.0)

        sampler = threading.Thread(target=sample)
        sampler.start()
        floods = {}
        for p, (_, port) in servers.items():
            proto = "text" if p == "text-sel" else p
            floods[p] = subprocess.Popen(
                [rc1, "flood", "--proto", proto, "--port", port, "-c", "4", "--rate",
                 str(a.rate), "-d", f"{a.seconds}s", "--json"],
                stdout=subprocess.PIPE, text=True)
            procs.append(floods[p])
        results = {p: json.loads(f.communicate()[0].strip().splitlines()[-1])
                   for p, f in floods.items()}
        time.sleep(0.5)
        done.set()
        sampler.join()
        caught = {}
        for p, c in captures.items():
            c.send_signal(signal.SIGINT)
            out, _ = c.communicate(timeout=30)
            caught[p] = [json.loads(line) for line in out.splitlines() if line.strip()]
        for s, _ in servers.values():
            s.send_signal(signal.SIGINT)
            s.wait(timeout=10)
    finally:
        for x in procs:
            if x.poll() is None:
                x.kill()

    failures = []
    rows = []
    warm = a.seconds * 0.1
    for p in PROTOS:
        f = results[p]
        lines = caught[p]
        sessions = [x for x in lines if x.get("type") == "session"]
        totals = next(x for x in lines if x.get("type") == "totals")

        def total(direction, key):
            return sum(x[direction][key] for x in sessions)

        if not (f["sent"] == f["echoed"] == f["verified"] and f["missing"] == 0
                and f["mismatched"] == 0 and f["ok"]):
            failures.append(f"{p}: flood sent {f['sent']}, echoed {f['echoed']}, "
                            f"verified {f['verified']}, missing {f['missing']}")
        if totals["kernel_dropped"] != 0 or total("to_server", "gaps") + total("to_client", "gaps"):
            failures.append(f"{p}: capture lost packets: {totals['kernel_dropped']} dropped by the kernel")
        if (total("to_server", "bytes"), total("to_client", "bytes")) != (f["bytes_out"], f["bytes_in"]):
            failures.append(f"{p}: capture decoded {total('to_server', 'bytes')}/{total('to_client', 'bytes')} "
                            f"bytes, flood sent/got {f['bytes_out']}/{f['bytes_in']}")
        if p in ("udp", "v2", "v3") and (total("to_server", "messages"),
                                         total("to_client", "messages")) != (f["sent"], f["echoed"]):
            failures.append(f"{p}: capture decoded {total('to_server', 'messages')}/"
                            f"{total('to_client', 'messages')} messages, flood {f['sent']}/{f['echoed']}")
        s = [x for x in samples[p] if x[1] is not None and x[2] is not None]
        start = next((x for x in s if x[0] >= warm), s[0])
        end = s[-1]
        for i, who in ((1, "server"), (2, "capture")):
            if end[i] > max(start[i] * 1.10, start[i] + 1024):
                failures.append(f"{p}: {who} memory grew from {start[i]} KiB to {end[i]} KiB")
        rows.append([p, f"{f['sent']:,}", f"{f['verified']:,}",
                     f"{total('to_server', 'messages'):,}/{total('to_client', 'messages'):,}",
                     f"{totals['kernel_dropped']}",
                     f"{start[1] / 1024:.1f} -> {end[1] / 1024:.1f}",
                     f"{start[2] / 1024:.1f} -> {end[2] / 1024:.1f}"])

    head = ["server", "sent", "verified", "captured c>s/s>c", "kernel drops",
            "server RSS MB", "capture RSS MB"]
    widths = [max(len(str(r[i])) for r in rows + [head]) for i in range(len(head))]
    print(f"soak: {a.seconds:g} s, {a.rate}/s per server over 4 connections, "
          f"RSS after {warm:g} s -> at the end")
    for r in [head] + rows:
        print("  ".join(str(c).rjust(w) for c, w in zip(r, widths)))
    print("(captured messages are frames for v2/v3, datagrams for udp, "
          "reads of the byte stream for text; text is checked by bytes)")
    if failures:
        print("FAILED:\n  " + "\n  ".join(failures))
        sys.exit(1)
    print("ok: nothing lost, everything verified and captured, memory flat")


if __name__ == "__main__":
    main()
