#!/usr/bin/env python3
"""A lab-style client: the independent `struct` oracle for rc1's servers.

usage: lab_client.py PROTO PORT MESSAGE...   (PROTO: text, v2, v3, udp)

Builds each frame exactly as the lab's clients do (v2: '!BLL20s' with the
message padded with '-' to 20 characters and size = len(message); v3: '!BLL'
then the message bytes), sends it to 127.0.0.1:PORT, reads the echo in a loop
(not a single recv) and prints one JSON line per message with the bytes sent
and received. A MESSAGE of the form '*N' stands for N bytes of a repeating
alphabet (for the 100 kB v3 test). Exits 1 if any echo differs.
"""
import json
import socket
import struct
import sys


def expand(arg):
    if arg.startswith("*"):
        n = int(arg[1:])
        alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
        return (alphabet * (n // len(alphabet) + 1))[:n]
    return arg


def recv_exact(sock, n):
    got = b""
    while len(got) < n:
        chunk = sock.recv(n - len(got))
        if not chunk:
            raise SystemExit(f"server closed after {len(got)} of {n} echo bytes")
        got += chunk
    return got


def main():
    proto, port, messages = sys.argv[1], int(sys.argv[2]), [expand(a) for a in sys.argv[3:]]
    ok = True
    if proto == "udp":
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.settimeout(5)
        for m in messages:
            pkt = m.encode()
            sock.sendto(pkt, ("127.0.0.1", port))
            echo, _ = sock.recvfrom(65536)
            ok &= echo == pkt
            print(json.dumps({"local_port": sock.getsockname()[1], "sent": pkt.hex(), "echo": echo.hex()}), flush=True)
        sys.exit(0 if ok else 1)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.settimeout(5)
    sock.connect(("127.0.0.1", port))
    for order, m in enumerate(messages, start=1):
        if proto == "v2":
            size = len(m)
            if len(m) < 20:
                m = m + "-" * (20 - len(m))
            pkt = struct.pack("!BLL20s", 1, order, size, m.encode())
        elif proto == "v3":
            data = m.encode()
            pkt = struct.pack("!BLL", 1, order, len(data)) + data
        else:
            pkt = m.encode()
        sock.sendall(pkt)
        echo = recv_exact(sock, len(pkt))
        ok &= echo == pkt
        line = {"local_port": sock.getsockname()[1], "sent_len": len(pkt), "echo_ok": echo == pkt}
        if len(pkt) < 200:
            line.update(sent=pkt.hex(), echo=echo.hex())
        print(json.dumps(line), flush=True)
    sock.close()
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
