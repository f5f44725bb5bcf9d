#!/usr/bin/env python3
"""Seeds the fuzz corpora from fixtures/ (pcap files; stdlib only).

frame_reader: each TCP direction's payload bytes, with a first byte
choosing v2/v3 and the chunk size; packet_pipeline: every packet of a
file, in the target's format (a first byte of options, then per packet a
link type index, length and bytes); reassembler: each direction's segments
as (offset, flags, length, bytes); savefile: the files themselves.
"""
import os, struct, sys

HERE = os.path.dirname(os.path.abspath(__file__))
FIX = os.path.join(HERE, "..", "fixtures")
# rc1::capture::packet::linktype::ALL, in its order.
LINKTYPES = [0, 1, 9, 12, 14, 50, 51, 101, 104, 105, 108, 113, 117, 127, 129, 149,
             192, 228, 229, 239, 242, 258, 276]

def records(path):
    d = open(path, "rb").read()
    if len(d) < 24 or d[:4] not in (b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\x4d\x3c\xb2\xa1"):
        return None, []
    e = "<" if d[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    lt = struct.unpack_from(e + "I", d, 20)[0]
    out, at = [], 24
    while at + 16 <= len(d):
        incl = struct.unpack_from(e + "I", d, at + 8)[0]
        out.append(d[at + 16:at + 16 + incl])
        at += 16 + incl
    return lt, out

def tcp_payload(lt, frame):
    # Ethernet/IPv4/TCP only (enough for seeds).
    if lt != 1 or len(frame) < 54 or frame[12:14] != b"\x08\x00":
        return None
    ihl = (frame[14] & 15) * 4
    if frame[23] != 6:
        return None
    t = 14 + ihl
    sport, dport, seq = struct.unpack_from("!HHI", frame, t)
    off = (frame[t + 12] >> 4) * 4
    return (sport, dport), seq, frame[t + off:]

def write(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    open(os.path.join(d, name), "wb").write(data)

for f in sorted(os.listdir(FIX)):
    if not os.path.isfile(os.path.join(FIX, f)):
        continue  # fixtures/framings/: framing files, not captures
    if f.endswith((".pcap", ".pcapng")):
        write("savefile", f, open(os.path.join(FIX, f), "rb").read()[:1 << 16])
    lt, recs = records(os.path.join(FIX, f))
    if lt is None or lt not in LINKTYPES:
        continue
    sel = LINKTYPES.index(lt)
    blob = bytes([0x40]) + b"".join(bytes([sel]) + struct.pack("<H", len(r)) + r for r in recs)
    write("packet_pipeline", f, blob[:1 << 16])
    streams, segs = {}, {}
    for r in recs:
        p = tcp_payload(lt, r)
        if not p or not p[2]:
            continue
        key, seq, pay = p
        base = segs.setdefault(key, (seq, []))[0]
        segs[key][1].append(((seq - base) & 0xFFFFFFFF, pay))
        streams[key] = streams.get(key, b"") + pay
    for i, (key, data) in enumerate(streams.items()):
        for head in (0, 1, 4 * 7, 4 * 7 + 1):
            write("frame_reader", f"{f}-{i}-{head}", bytes([head]) + data[:1 << 16])
    for i, (key, (_, lst)) in enumerate(segs.items()):
        blob = b"".join(struct.pack("<HBB", off % 2048, 0, min(len(p), 255)) + p[:255] for off, p in lst)
        write("reassembler", f"{f}-{i}", blob[:1 << 16])
print("corpora seeded from", FIX)
