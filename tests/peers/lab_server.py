#!/usr/bin/env python3
"""A lab-style server: the independent `struct` oracle for rc1's clients.

usage: lab_server.py PROTO    (PROTO: text, v2, v3, udp)

Listens on 127.0.0.1 on a port the OS chooses and prints {"port": N} first.
Then, like the lab's servers with the 4.3/5.3 echo, a thread per client:
v2 reads exactly 29 bytes and unpacks '!BLL20s'; v3 reads the 9-byte '!BLL'
header and then `size` bytes; text echoes each recv(). Every message is
printed as a JSON line with the fields `struct` decoded and the raw bytes,
then echoed unchanged. Runs until killed.
"""
import json
import socket
import struct
import sys
import threading


def out(obj):
    print(json.dumps(obj), flush=True)


def recv_exact(sock, n):
    got = b""
    while len(got) < n:
        chunk = sock.recv(n - len(got))
        if not chunk:
            return None
        got += chunk
    return got


def serve(proto, conn, peer):
    with conn:
        while True:
            if proto == "v2":
                raw = recv_exact(conn, 29)
                if raw is None:
                    return
                version, order, size, message = struct.unpack("!BLL20s", raw)
                out({"peer_port": peer[1], "version": version, "order": order, "size": size,
                     "field": message.hex(), "raw": raw.hex()})
            elif proto == "v3":
                head = recv_exact(conn, 9)
                if head is None:
                    return
                version, order, size = struct.unpack("!BLL", head)
                body = recv_exact(conn, size)
                if body is None:
                    return
                raw = head + body
                out({"peer_port": peer[1], "version": version, "order": order, "size": size,
                     "len": len(body), "head": body[:32].hex(), "tail": body[-16:].hex(),
                     "sum": sum(body) & 0xFFFFFFFF, "raw_len": len(raw)})
            else:
                raw = conn.recv(4096)
                if not raw:
                    return
                out({"peer_port": peer[1], "text": raw.hex()})
            conn.sendall(raw)


def main():
    proto = sys.argv[1]
    if proto == "udp":
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        out({"port": sock.getsockname()[1]})
        while True:
            data, peer = sock.recvfrom(65536)
            out({"peer_port": peer[1], "text": data.hex()})
            sock.sendto(data, peer)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    out({"port": sock.getsockname()[1]})
    while True:
        conn, peer = sock.accept()
        threading.Thread(target=serve, args=(proto, conn, peer), daemon=True).start()


if __name__ == "__main__":
    main()
