#!/usr/bin/env python3
"""An independent peer for the framings in fixtures/framings/: each one
written here by hand with Python's `struct` and `zlib`, as a student would,
without reading rc1's framing files.

usage:
  framed_peer.py server FRAMING            listen on 127.0.0.1, a port the OS
                                           chooses (printed first as {"port": N});
                                           echo every frame back unchanged
  framed_peer.py client FRAMING PORT MSG…  connect to 127.0.0.1:PORT, send one
                                           frame per MSG, read each echo back
  framed_peer.py encode FRAMING KEY MSG    print one frame's bytes as hex
  framed_peer.py encode-hex FRAMING KEY HEX  the same, the message given as
                                           hex (binary bodies: 00ff...)
  framed_peer.py damage FRAMING PORT WHAT  send one good frame, then one with a
                                           bad checksum / wrong constant / lying
                                           length (WHAT: checksum, constant,
                                           length), then close

FRAMING: le16, crc-trailer, typed. Every frame read or echoed is printed as a
JSON line: the fields `struct` decoded and the raw bytes in hex. The server
serves each connection on its own thread until killed.
"""
import json
import socket
import struct
import sys
import threading
import zlib


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


# le16: '<BHH' version (2), order, len, then len bytes.
def le16_pack(key, data):
    return struct.pack("<BHH", 2, key, len(data)) + data


def le16_read(sock):
    head = recv_exact(sock, 5)
    if head is None:
        return None
    version, order, length = struct.unpack("<BHH", head)
    data = recv_exact(sock, length)
    if data is None:
        return None
    return head + data, {"version": version, "order": order, "len": length, "data": data.hex()}


# crc-trailer: '!BIH' version (1), seq, length, payload, then '!I' CRC-32
# (zlib.crc32) of everything before it.
def crc_pack(key, data):
    head = struct.pack("!BIH", 1, key, len(data))
    return head + data + struct.pack("!I", zlib.crc32(head + data))


def crc_read(sock):
    head = recv_exact(sock, 7)
    if head is None:
        return None
    version, seq, length = struct.unpack("!BIH", head)
    rest = recv_exact(sock, length + 4)
    if rest is None:
        return None
    payload, (crc,) = rest[:length], struct.unpack("!I", rest[length:])
    return head + rest, {"version": version, "seq": seq, "length": length,
                         "payload": payload.hex(), "crc": crc,
                         "crc_ok": crc == zlib.crc32(head + payload)}


# typed: '!BBI' version (3), kind, length, then length bytes.
def typed_pack(key, data):
    return struct.pack("!BBI", 3, key, len(data)) + data


def typed_read(sock):
    head = recv_exact(sock, 6)
    if head is None:
        return None
    version, kind, length = struct.unpack("!BBI", head)
    if length > 1 << 20:
        return None
    body = recv_exact(sock, length)
    if body is None:
        return None
    return head + body, {"version": version, "kind": kind, "length": length, "body": body.hex()}


FRAMINGS = {
    "le16": (le16_pack, le16_read),
    "crc-trailer": (crc_pack, crc_read),
    "typed": (typed_pack, typed_read),
}


def serve(read, conn, peer):
    with conn:
        while True:
            got = read(conn)
            if got is None:
                return
            raw, fields = got
            fields.update({"peer_port": peer[1], "raw": raw.hex()})
            out(fields)
            conn.sendall(raw)


def server(name):
    _, read = FRAMINGS[name]
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 0))
    s.listen(16)
    out({"port": s.getsockname()[1]})
    while True:
        conn, peer = s.accept()
        threading.Thread(target=serve, args=(read, conn, peer), daemon=True).start()


def client(name, port, messages):
    pack, read = FRAMINGS[name]
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        out({"local_port": s.getsockname()[1]})
        for i, m in enumerate(messages, 1):
            frame = pack(i, m.encode())
            s.sendall(frame)
            got = read(s)
            if got is None:
                out({"error": "no echo", "key": i})
                sys.exit(1)
            raw, fields = got
            fields.update({"raw": raw.hex(), "echo_ok": raw == frame})
            out(fields)
            if raw != frame:
                sys.exit(1)


def damage(name, port, what):
    pack, _ = FRAMINGS[name]
    good = pack(1, b"good")
    bad = bytearray(pack(2, b"bad"))
    if what == "checksum":
        bad[-1] ^= 0xFF
    elif what == "constant":
        bad[0] ^= 0x7F
    elif what == "length":
        # The length field says far more than the frame carries: the most
        # its field holds (within le16's and crc-trailer's max_body, so
        # they wait for bytes that never come; over typed's).
        if name == "le16":
            bad[3:5] = struct.pack("<H", 0xFFFF)
        elif name == "crc-trailer":
            bad[5:7] = struct.pack("!H", 0xFFFF)
        else:
            bad[2:6] = struct.pack("!I", 0xFFFFFFF0)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        out({"local_port": s.getsockname()[1], "good": good.hex(), "bad": bytes(bad).hex()})
        s.sendall(good)
        # The server may close (or reset) the connection at the bad frame,
        # before or while it is sent: that is its answer, not a failure.
        try:
            s.sendall(bytes(bad))
            s.shutdown(socket.SHUT_WR)
            while s.recv(4096):
                pass
        except OSError:
            pass


def main():
    cmd, name = sys.argv[1], sys.argv[2]
    if name not in FRAMINGS:
        sys.exit(f"unknown framing {name}: give one of {', '.join(FRAMINGS)}")
    if cmd == "server":
        server(name)
    elif cmd == "client":
        client(name, int(sys.argv[3]), sys.argv[4:])
    elif cmd == "encode":
        pack, _ = FRAMINGS[name]
        print(pack(int(sys.argv[3]), sys.argv[4].encode()).hex())
    elif cmd == "encode-hex":
        pack, _ = FRAMINGS[name]
        print(pack(int(sys.argv[3]), bytes.fromhex(sys.argv[4])).hex())
    elif cmd == "damage":
        damage(name, int(sys.argv[3]), sys.argv[4])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
