//! `rc1 capture --framing FILE`: the three framings of fixtures/framings
//! (which no code of rc1 knows) decoded from captures, their frames built
//! by the independent Python encoder (tests/peers/framed_peer.py): field
//! by field, split and packed frames, a gap and the resynchronisation
//! after it, a damaged checksum, a wrong constant and a lying length each
//! reported with its code, the other sessions decoded on; `--proto auto`
//! with several files; a real loopback capture of the Python peer.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::util::{have_prerequisite, json_lines, peer, rc1, run, stderr, tcp_pcap};

/// The three framings, with their port, echo key, length and body field.
const FRAMINGS: [(&str, u16, &str, &str, &str); 3] = [
    ("le16", 5006, "order", "len", "data"),
    ("crc-trailer", 5005, "seq", "length", "payload"),
    ("typed", 5005, "kind", "length", "body"),
];

fn file(name: &str) -> String {
    format!(
        "{}/fixtures/framings/{name}.toml",
        env!("CARGO_MANIFEST_DIR")
    )
}

fn fixture(name: &str) -> String {
    format!("{}/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn python_here(test: &str) -> bool {
    let ok = Command::new("python3")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    have_prerequisite(ok, test, "python3")
}

/// One frame's bytes as the Python peer packs them.
fn encode(framing: &str, key: u32, msg: &str) -> Vec<u8> {
    let out = Command::new("python3")
        .args([
            &peer("framed_peer.py"),
            "encode",
            framing,
            &key.to_string(),
            msg,
        ])
        .output()
        .expect("run python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let hex = String::from_utf8(out.stdout).unwrap();
    let hex = hex.trim();
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A pcap's records (after the 24-byte file header), each whole.
fn records(pcap: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut at = 24;
    while at + 16 <= pcap.len() {
        let len = u32::from_le_bytes(pcap[at + 8..at + 12].try_into().unwrap()) as usize;
        out.push(pcap[at..at + 16 + len].to_vec());
        at += 16 + len;
    }
    out
}

/// `pcap` without its record `drop` (its bytes never captured).
fn without(pcap: &[u8], drop: usize) -> Vec<u8> {
    let mut out = pcap[..24].to_vec();
    for (i, r) in records(pcap).into_iter().enumerate() {
        if i != drop {
            out.extend_from_slice(&r);
        }
    }
    out
}

/// Two connections in one file: `b`'s with client port 40200 instead of
/// 40100, after `a`'s.
fn two_sessions(a: &[u8], b: &[u8]) -> Vec<u8> {
    let mut out = a.to_vec();
    for mut r in records(b) {
        // 16 (record) + 14 (Ethernet) + 20 (IPv4): the TCP ports.
        for at in [16 + 34, 16 + 36] {
            if r[at..at + 2] == 40100u16.to_be_bytes() {
                r[at..at + 2].copy_from_slice(&40200u16.to_be_bytes());
            }
        }
        out.extend_from_slice(&r);
    }
    out
}

/// [`tcp_pcap`] with a handshake before the segments: the connection is
/// seen from its start, not picked up mid-stream.
fn tcp_pcap_from_syn(port: u16, segments: &[(bool, &[u8])]) -> Vec<u8> {
    let mut all: Vec<(bool, &[u8])> = vec![(true, &[]), (false, &[])];
    all.extend_from_slice(segments);
    let pcap = tcp_pcap(port, &all);
    let mut out = pcap[..24].to_vec();
    for (i, mut r) in records(&pcap).into_iter().enumerate() {
        // 16 (record) + 14 (Ethernet) + 20 (IPv4): the TCP header.
        let tcp = 16 + 34;
        match i {
            0 => {
                r[tcp + 4..tcp + 8].copy_from_slice(&999u32.to_be_bytes());
                r[tcp + 13] = 0x02; // SYN
            }
            1 => {
                r[tcp + 4..tcp + 8].copy_from_slice(&1999u32.to_be_bytes());
                r[tcp + 13] = 0x12; // SYN|ACK
            }
            _ => {}
        }
        out.extend_from_slice(&r);
    }
    out
}

/// `rc1 capture -r` of `pcap` with `args`, as JSON lines.
fn decode(name: &str, pcap: &[u8], args: &[&str]) -> Vec<Value> {
    let path = std::env::temp_dir().join(format!("rc1-fr-{name}-{}.pcap", std::process::id()));
    std::fs::write(&path, pcap).unwrap();
    let mut all = vec!["capture", "-r", path.to_str().unwrap(), "--json"];
    all.extend_from_slice(args);
    let out = run(&all);
    let _ = std::fs::remove_file(&path);
    assert!(out.status.success(), "{name}: {}", stderr(&out));
    json_lines(&out)
}

fn frames<'a>(ev: &'a [Value], dir: &str) -> Vec<&'a Value> {
    ev.iter()
        .filter(|v| v["type"] == "frame" && v["dir"] == dir)
        .collect()
}

fn codes(ev: &[Value]) -> Vec<&str> {
    ev.iter()
        .filter(|v| v["type"] == "diagnostic")
        .map(|v| v["code"].as_str().unwrap())
        .collect()
}

/// A frame's `fields` as the framing file names them: version, key,
/// length, body (and the CRC for crc-trailer, taken from the last 4 bytes
/// the peer wrote).
fn check_fields(f: &Value, framing: usize, key: u64, msg: &str, raw: &[u8]) {
    let (name, _, key_field, len_field, body_field) = FRAMINGS[framing];
    let fields = &f["fields"];
    assert_eq!(f["framing"], name, "{f}");
    assert_eq!(fields[key_field], key, "{name}: {f}");
    assert_eq!(fields[len_field], msg.len(), "{name}: {f}");
    assert_eq!(fields[body_field]["text"], msg, "{name}: {f}");
    assert_eq!(
        fields[body_field]["hex"],
        hex(msg.as_bytes()),
        "{name}: {f}"
    );
    assert_eq!(fields["version"], u64::from(raw[0]), "{name}: {f}");
    let want_keys: usize = if name == "crc-trailer" { 5 } else { 4 };
    assert_eq!(fields.as_object().unwrap().len(), want_keys, "{f}");
    if name == "crc-trailer" {
        let crc = u32::from_be_bytes(raw[raw.len() - 4..].try_into().unwrap());
        assert_eq!(fields["crc"], crc, "{f}");
    }
    assert_eq!(f["message_hex"], hex(msg.as_bytes()));
}

#[test]
fn each_framing_decodes_field_by_field_split_and_packed() {
    if !python_here("each_framing_decodes_field_by_field_split_and_packed") {
        return;
    }
    let msgs = ["hello", "", "packed with the one before"];
    for (i, &(name, port, ..)) in FRAMINGS.iter().enumerate() {
        let raw: Vec<Vec<u8>> = msgs
            .iter()
            .zip(1u32..)
            .map(|(m, k)| encode(name, k, m))
            .collect();
        let packed = [raw[1].clone(), raw[2].clone()].concat();
        let echoes = raw.concat();
        // The first frame split inside its header, the next two in one
        // segment; the echoes all in one.
        let pcap = tcp_pcap(
            port,
            &[
                (true, &raw[0][..3]),
                (true, &raw[0][3..]),
                (true, &packed),
                (false, &echoes),
            ],
        );
        let ev = decode(name, &pcap, &["--framing", &file(name)]);
        let det = ev.iter().find(|v| v["type"] == "detected").unwrap();
        assert_eq!(det["framing"], name, "{det}");
        assert!(
            det["reason"].as_str().unwrap().contains("whole frame"),
            "{det}"
        );
        let (req, ech) = (frames(&ev, "c>s"), frames(&ev, "s>c"));
        assert_eq!((req.len(), ech.len()), (3, 3), "{name}");
        let mut offset = 0;
        for (k, m) in msgs.iter().enumerate() {
            check_fields(req[k], i, k as u64 + 1, m, &raw[k]);
            check_fields(ech[k], i, k as u64 + 1, m, &raw[k]);
            assert_eq!(req[k]["offset"], offset);
            assert_eq!(ech[k]["echo"], "ok", "{name}: {}", ech[k]);
            offset += raw[k].len();
        }
        assert!(codes(&ev).is_empty(), "{name}: {:?}", codes(&ev));
        let s = ev.iter().find(|v| v["type"] == "session").unwrap();
        assert_eq!(s["framing"], name);
        assert_eq!(s["echoes_ok"], 3, "{s}");
    }
}

#[test]
fn a_gap_inside_a_frame_resynchronises_after_it_and_one_taking_a_header_does_not() {
    if !python_here("a_gap_inside_a_frame_resynchronises_after_it") {
        return;
    }
    for (i, &(name, port, ..)) in FRAMINGS.iter().enumerate() {
        let f1 = encode(name, 1, "first");
        let f2 = encode(name, 2, "a longer second message, cut by a gap");
        let f3 = encode(name, 3, "after the gap");
        let head = 8;
        // f2 in three segments; the middle one (inside its body) never
        // captured. Then f3.
        let pcap = tcp_pcap(
            port,
            &[
                (true, &f1),
                (true, &f2[..head + 4]),
                (true, &f2[head + 4..head + 20]),
                (true, &f2[head + 20..]),
                (true, &f3),
            ],
        );
        let ev = decode(name, &without(&pcap, 2), &["--framing", &file(name)]);
        let req = frames(&ev, "c>s");
        assert_eq!(req.len(), 2, "{name}: {ev:?}");
        check_fields(req[0], i, 1, "first", &f1);
        check_fields(req[1], i, 3, "after the gap", &f3);
        assert_eq!(req[1]["offset"], f1.len() + f2.len(), "{name}");
        let c = codes(&ev);
        assert!(c.contains(&"tcp.gap"), "{name}: {c:?}");
        let damaged = ev.iter().find(|v| v["code"] == "frame.damaged").unwrap();
        assert!(
            damaged["message"]
                .as_str()
                .unwrap()
                .contains(&format!("frame at offset {}", f1.len())),
            "{name}: {damaged}"
        );
        assert!(!c.contains(&"frame.unsynchronised"), "{name}: {c:?}");

        // A gap taking f2's header: no header to trust after it.
        let pcap = tcp_pcap(
            port,
            &[(true, &f1), (true, &f2[..4]), (true, &f2[4..]), (true, &f3)],
        );
        let ev = decode(name, &without(&pcap, 1), &["--framing", &file(name)]);
        assert_eq!(frames(&ev, "c>s").len(), 1, "{name}");
        let c = codes(&ev);
        assert!(
            c.contains(&"tcp.gap") && c.contains(&"frame.unsynchronised"),
            "{name}: {c:?}"
        );
    }
}

/// A good frame then a damaged one, as `framed_peer.py damage` makes it,
/// in one connection; a clean connection after it in the same file.
fn damaged_then_clean(name: &str, port: u16, what: &str) -> Vec<Value> {
    let good = encode(name, 1, "good");
    let mut bad = encode(name, 2, "bad");
    match what {
        "checksum" => *bad.last_mut().unwrap() ^= 0xFF,
        "constant" => bad[0] ^= 0x7F,
        "length" => match name {
            "le16" => bad[3..5].copy_from_slice(&0xFFFFu16.to_le_bytes()),
            "crc-trailer" => bad[5..7].copy_from_slice(&0xFFFFu16.to_be_bytes()),
            _ => bad[2..6].copy_from_slice(&0xFFFF_FFF0u32.to_be_bytes()),
        },
        _ => unreachable!(),
    }
    let a = tcp_pcap(port, &[(true, &good), (false, &good), (true, &bad)]);
    let (c1, c2) = (encode(name, 7, "clean one"), encode(name, 8, "clean two"));
    let b = tcp_pcap(
        port,
        &[(true, &c1), (false, &c1), (true, &c2), (false, &c2)],
    );
    decode(
        &format!("{name}-{what}"),
        &two_sessions(&a, &b),
        &["--framing", &file(name)],
    )
}

fn session_frames<'a>(ev: &'a [Value], session: u64, dir: &str) -> Vec<&'a Value> {
    frames(ev, dir)
        .into_iter()
        .filter(|v| v["session"] == session)
        .collect()
}

/// `shown`: the client's frames of session 1 shown (a bad checksum's frame
/// is shown, with decoding going on; the others end the decoding).
fn check_damage(name: &str, ev: &[Value], code: &str, good_len: usize, shown: usize) {
    let d = ev
        .iter()
        .find(|v| v["code"] == code)
        .unwrap_or_else(|| panic!("{name}: no {code} in {:?}", codes(ev)));
    assert_eq!(d["session"], 1, "{d}");
    assert_eq!(d["dir"], "c>s", "{d}");
    assert_eq!(d["offset"], good_len, "{d}");
    assert!(
        d["message"]
            .as_str()
            .unwrap()
            .starts_with(&format!("at offset {good_len}: ")),
        "{d}"
    );
    assert_eq!(session_frames(ev, 1, "c>s").len(), shown, "{name}");
    assert_eq!(session_frames(ev, 1, "s>c")[0]["echo"], "ok", "{name}");
    // The next session is decoded as ever.
    let req = session_frames(ev, 2, "c>s");
    let ech = session_frames(ev, 2, "s>c");
    assert_eq!((req.len(), ech.len()), (2, 2), "{name}");
    assert!(ech.iter().all(|e| e["echo"] == "ok"), "{name}");
    assert!(
        ev.iter()
            .filter(|v| v["type"] == "diagnostic")
            .all(|v| v["session"] == 1),
        "{name}: {:?}",
        codes(ev)
    );
}

#[test]
fn a_damaged_checksum_a_wrong_constant_and_a_lying_length_are_reported_with_their_codes() {
    if !python_here("damaged_frames_reported_with_their_codes") {
        return;
    }
    let good_len = |name| encode(name, 1, "good").len();
    let ev = damaged_then_clean("crc-trailer", 5005, "checksum");
    check_damage(
        "crc-trailer",
        &ev,
        "framing.checksum",
        good_len("crc-trailer"),
        2,
    );
    // The frame with the bad CRC is shown with its fields and the field
    // that fails; its length is trusted, so nothing is unsynchronised.
    let bad = session_frames(&ev, 1, "c>s")[1];
    assert_eq!(bad["bad_checksum"], "crc", "{bad}");
    assert_eq!(bad["fields"]["seq"], 2, "{bad}");
    assert_eq!(bad["fields"]["payload"]["text"], "bad", "{bad}");
    assert_eq!(
        session_frames(&ev, 1, "c>s")[0]["bad_checksum"],
        Value::Null
    );
    assert!(
        !codes(&ev).contains(&"frame.unsynchronised"),
        "{:?}",
        codes(&ev)
    );
    for name in ["le16", "typed"] {
        let port = if name == "le16" { 5006 } else { 5005 };
        let ev = damaged_then_clean(name, port, "constant");
        check_damage(name, &ev, "framing.constant", good_len(name), 1);
    }
    // typed's length (32 bits) says more than its max_body (1 MiB).
    let ev = damaged_then_clean("typed", 5005, "length");
    check_damage(
        "typed",
        &ev,
        "framing.length_over_max",
        good_len("typed"),
        1,
    );
    // le16's and crc-trailer's 0xFFFF fits their max_body (65535 each):
    // the stream ends before the bytes it claims.
    for (name, port) in [("le16", 5006), ("crc-trailer", 5005)] {
        let ev = damaged_then_clean(name, port, "length");
        check_damage(name, &ev, "frame.truncated", good_len(name), 1);
    }
}

#[test]
fn a_first_frame_with_a_bad_checksum_is_the_framing_and_decoding_goes_on() {
    if !python_here("a_first_frame_with_a_bad_checksum_is_the_framing") {
        return;
    }
    // A student's client whose CRC is wrong from its first frame on.
    let mut one = encode("crc-trailer", 1, "first");
    *one.last_mut().unwrap() ^= 0x0F;
    let mut two = encode("crc-trailer", 2, "second");
    *two.last_mut().unwrap() ^= 0xF0;
    let ev = decode(
        "crc-first-bad",
        &tcp_pcap(5005, &[(true, &one), (true, &two), (false, &one)]),
        &["--framing", &file("crc-trailer")],
    );
    let det = ev.iter().find(|v| v["type"] == "detected").unwrap();
    assert_eq!(det["framing"], "crc-trailer", "{det}");
    assert!(
        det["reason"]
            .as_str()
            .unwrap()
            .contains("2 of them with a wrong checksum (the first at offset 0: crc is"),
        "{det}"
    );
    let bad: Vec<_> = ev
        .iter()
        .filter(|v| v["code"] == "framing.checksum" && v["dir"] == "c>s")
        .collect();
    assert_eq!(bad.len(), 2, "{:?}", codes(&ev));
    // (The server echoed the first frame as it came: its CRC is wrong too.)
    let echo = frames(&ev, "s>c");
    assert_eq!(echo.len(), 1);
    assert_eq!(echo[0]["bad_checksum"], "crc", "{}", echo[0]);
    assert_eq!(bad[0]["offset"], 0, "{}", bad[0]);
    assert_eq!(bad[1]["offset"], one.len(), "{}", bad[1]);
    assert_eq!(bad[0]["length"], one.len(), "{}", bad[0]);
    let req = frames(&ev, "c>s");
    assert_eq!(req.len(), 2);
    assert_eq!(req[0]["fields"]["payload"]["text"], "first");
    assert_eq!(req[1]["fields"]["payload"]["text"], "second");
    assert!(req.iter().all(|f| f["bad_checksum"] == "crc"), "{req:?}");
    assert!(
        !codes(&ev).contains(&"frame.unsynchronised"),
        "{:?}",
        codes(&ev)
    );
}

/// A framing file written for a test; its path.
fn temp_file(name: &str, text: &str) -> String {
    let path = std::env::temp_dir().join(format!("rc1-fr-{name}-{}.toml", std::process::id()));
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

/// An Internet checksum (RFC 1071) of `b`.
fn internet(b: &[u8]) -> u16 {
    let mut sum: u32 = b
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum >> 16 != 0 {
        sum = (sum & 0xFFFF) + (sum >> 16);
    }
    !(sum as u16)
}

#[test]
fn several_files_are_ranked_and_one_without_checks_does_not_take_everything() {
    // plain: two 16-bit fields, no check; inet: a length, the body, an
    // Internet checksum over both; neither has a version field or an echo
    // key.
    let plain = temp_file(
        "plain",
        "name = \"plain\"\nstruct = \"!HH\"\nnames = [\"a\", \"b\"]\n",
    );
    let inet = temp_file(
        "inet",
        "name = \"inet\"\n[[field]]\nname = \"n\"\ntype = \"H\"\n[[field]]\nname = \"data\"\n\
         type = \"body\"\nlength = \"n\"\n[[field]]\nname = \"sum\"\ntype = \"H\"\n\
         checksum = \"internet\"\nover = [\"n\", \"data\"]\n",
    );
    let mut req = Vec::new();
    for m in [&b"abcd"[..], b"wxyz"] {
        let mut f = vec![0, 4];
        f.extend_from_slice(m);
        let sum = internet(&f);
        f.extend_from_slice(&sum.to_be_bytes());
        req.extend_from_slice(&f);
    }
    // 16 bytes: plain's lengths chain over them too, and it is first.
    assert_eq!(req.len() % 4, 0);
    let a = tcp_pcap(5005, &[(true, &req), (false, &req)]);
    let text = b"hello world\n";
    let b = tcp_pcap(5005, &[(true, text), (false, text)]);
    let ev = decode(
        "ranked",
        &two_sessions(&a, &b),
        &["--framing", &plain, "--framing", &inet],
    );
    let _ = std::fs::remove_file(&plain);
    let _ = std::fs::remove_file(&inet);
    let det: Vec<_> = ev.iter().filter(|v| v["type"] == "detected").collect();
    assert_eq!(det.len(), 2, "{det:?}");
    assert_eq!(det[0]["framing"], "inet", "{}", det[0]);
    let why = det[0]["reason"].as_str().unwrap();
    assert!(
        why.contains("also fits plain (") && why.contains("ranked lower: "),
        "{why}"
    );
    assert_eq!(det[1]["framing"], "text", "{}", det[1]);
    assert!(
        det[1]["reason"].as_str().unwrap().contains("not plain: "),
        "{}",
        det[1]
    );
    // inet's frame lines: no version field, no echo key: both null.
    let f = session_frames(&ev, 1, "c>s");
    assert_eq!(f.len(), 2);
    for x in &f {
        assert_eq!(x["version"], Value::Null, "{x}");
        assert_eq!(x["order"], Value::Null, "{x}");
        assert_eq!(x["bad_checksum"], Value::Null, "{x}");
    }
    assert_eq!(f[1]["fields"]["data"]["text"], "wxyz");
    assert_eq!(session_frames(&ev, 1, "s>c").len(), 2);
}

#[test]
fn an_unexpected_value_is_reported_and_the_frame_still_decoded() {
    if !python_here("an_unexpected_value_is_reported") {
        return;
    }
    // crc-trailer's version is `expect = 1`: a 2 is said, not refused.
    let out = Command::new("python3")
        .args([
            "-c",
            "import struct,zlib;h=struct.pack('!BIH',2,1,2)+b'hi';print((h+struct.pack('!I',zlib.crc32(h))).hex())",
        ])
        .output()
        .unwrap();
    let h = String::from_utf8(out.stdout).unwrap();
    let h = h.trim();
    let f: Vec<u8> = (0..h.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&h[i..i + 2], 16).unwrap())
        .collect();
    let ev = decode(
        "crc-unexpected",
        &tcp_pcap(5005, &[(true, &f), (false, &f)]),
        &["--framing", &file("crc-trailer")],
    );
    let req = frames(&ev, "c>s");
    assert_eq!(req.len(), 1);
    assert_eq!(req[0]["fields"]["version"], 2);
    let d = ev
        .iter()
        .find(|v| v["code"] == "framing.unexpected_value")
        .unwrap_or_else(|| panic!("{:?}", codes(&ev)));
    assert!(
        d["message"]
            .as_str()
            .unwrap()
            .contains("(frame at offset 0)"),
        "{d}"
    );
    assert!(
        d["message"]
            .as_str()
            .unwrap()
            .starts_with("version is 2, the framing file expects 1 (expect)"),
        "{d}"
    );
    assert_eq!(frames(&ev, "s>c")[0]["echo"], "ok");
}

#[test]
fn a_first_frame_with_a_lying_length_is_still_the_framing_when_its_constants_hold() {
    if !python_here("a_first_frame_with_a_lying_length") {
        return;
    }
    let mut bad = encode("typed", 1, "x");
    bad[2..6].copy_from_slice(&0xFFFF_FFF0u32.to_be_bytes());
    let ev = decode(
        "typed-first-lying",
        &tcp_pcap_from_syn(5005, &[(true, &bad)]),
        &["--framing", &file("typed")],
    );
    let det = ev.iter().find(|v| v["type"] == "detected").unwrap();
    assert_eq!(det["framing"], "typed", "{det}");
    assert!(
        det["reason"].as_str().unwrap().contains("max_body"),
        "{det}"
    );
    assert!(codes(&ev).contains(&"framing.length_over_max"));
}

#[test]
fn with_every_framing_given_each_fixture_gets_its_own_and_v2_v3_stay_themselves() {
    let all = [
        "--framing",
        &file("le16"),
        "--framing",
        &file("crc-trailer"),
        "--framing",
        &file("typed"),
    ];
    for &(name, port, ..) in &FRAMINGS {
        let p = port.to_string();
        let mut args = all.to_vec();
        args.extend(["--port", &p]);
        let out = run(&[
            &[
                "capture",
                "-r",
                &fixture(&format!("framing-{name}.pcap")),
                "--json",
            ][..],
            &args,
        ]
        .concat());
        assert!(out.status.success(), "{}", stderr(&out));
        let ev = json_lines(&out);
        let det = ev.iter().find(|v| v["type"] == "detected").unwrap();
        assert_eq!(det["framing"], name, "{det}");
        // Why the files given before it were not chosen, each by name.
        let reason = det["reason"].as_str().unwrap();
        for &(other, ..) in FRAMINGS.iter().take_while(|f| f.0 != name) {
            assert!(reason.contains(&format!("not {other}: ")), "{reason}");
        }
        assert_eq!(frames(&ev, "c>s").len(), 3);
        assert!(frames(&ev, "s>c").iter().all(|f| f["echo"] == "ok"));
    }
    // The lab's own framings are not taken for a file's.
    for (fx, want) in [("v2-echo.pcap", "v2"), ("v3-echo.pcap", "v3")] {
        let out = run(&[
            &["capture", "-r", &fixture(fx), "--json", "--port", "5005"][..],
            &all,
        ]
        .concat());
        let ev = json_lines(&out);
        let det: Vec<_> = ev.iter().filter(|v| v["type"] == "detected").collect();
        assert!(!det.is_empty());
        assert!(det.iter().all(|d| d["framing"] == want), "{det:?}");
        assert!(
            det.iter()
                .all(|d| d["reason"].as_str().unwrap().contains("not le16: ")),
            "{det:?}"
        );
        // The frame lines are v2/v3's own: no fields.
        assert!(frames(&ev, "c>s").iter().all(|f| f.get("fields").is_none()));
    }
}

#[test]
fn framing_text_hex_and_ladder_show_the_file_s_fields() {
    let out = run(&[
        "capture",
        "-r",
        &fixture("framing-crc-trailer.pcap"),
        "--framing",
        &file("crc-trailer"),
        "--hex",
        "--width",
        "100",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("crc-trailer version=1 seq=1 length=5 payload=\"hello\" crc=2351254198"),
        "{text}"
    );
    // The trailer's bytes are marked with its name, after the body.
    assert!(
        text.contains("01 | 00 00 00 01 | 00 05 | 68 65 6c 6c 6f | 8c 25 4a b6"),
        "{text}"
    );
    assert!(text.contains("payload          crc"), "{text}");
    // Little-endian fields in their own bytes.
    let out = run(&[
        "capture",
        "-r",
        &fixture("framing-le16.pcap"),
        "--framing",
        &file("le16"),
        "--hex",
        "--width",
        "100",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("le16 order=1 len=5 \"hello\""), "{text}");
    assert!(
        text.contains("02 | 01 00 | 05 00 | 68 65 6c 6c 6f"),
        "{text}"
    );
    let out = run(&[
        "capture",
        "-r",
        &fixture("framing-typed.pcap"),
        "--framing",
        &file("typed"),
        "--ladder",
        "--width",
        "100",
        "--color",
        "never",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("typed type=3 length=27 \"third message"),
        "{text}"
    );
    assert!(
        text.contains("echo ok") && text.contains("(kind=1)"),
        "{text}"
    );
}

#[test]
fn a_bad_framing_file_exits_1_with_its_line_and_column_and_ports_that_disagree_need_port() {
    let dir = std::env::temp_dir().join(format!("rc1-fr-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.toml");
    std::fs::write(
        &bad,
        "name = \"x\"\n[[field]]\nname = \"a\"\ntype = \"Z\"\n",
    )
    .unwrap();
    let out = run(&[
        "capture",
        "-r",
        &fixture("framing-le16.pcap"),
        "--framing",
        bad.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains(&format!("{}:4:", bad.display())), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
    let out = run(&[
        "capture",
        "-r",
        &fixture("framing-le16.pcap"),
        "--framing",
        &file("le16"),
        "--framing",
        &file("typed"),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("give --port"), "{}", stderr(&out));
}

#[test]
fn proto_framing_forces_the_one_file_given() {
    // The crc-trailer capture forced as typed: every frame refused by
    // typed's constant, not detected as anything else.
    let out = run(&[
        "capture",
        "-r",
        &fixture("framing-crc-trailer.pcap"),
        "--framing",
        &file("typed"),
        "--proto",
        "framing",
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let ev = json_lines(&out);
    let det = ev.iter().find(|v| v["type"] == "detected").unwrap();
    assert_eq!(det["framing"], "typed");
    assert_eq!(det["reason"], "forced by --proto");
    assert!(codes(&ev).contains(&"framing.constant"), "{:?}", codes(&ev));
    let out = run(&[
        "capture",
        "-r",
        &fixture("framing-typed.pcap"),
        "--proto",
        "framing",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("give exactly one --framing FILE (0 given)"));
}

/// A Python peer server of `framing`, on a port the OS chose.
struct PeerServer {
    child: std::process::Child,
    port: u16,
    lines: std::sync::mpsc::Receiver<Value>,
}

impl PeerServer {
    fn start(framing: &str) -> PeerServer {
        let mut child = Command::new("python3")
            .args([&peer("framed_peer.py"), "server", framing])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3");
        let out = BufReader::new(child.stdout.take().unwrap());
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for l in out.lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str::<Value>(&l)
                    && tx.send(v).is_err()
                {
                    return;
                }
            }
        });
        let first = lines.recv_timeout(crate::util::WAIT).expect("peer's port");
        let port = u16::try_from(first["port"].as_u64().unwrap()).unwrap();
        PeerServer { child, port, lines }
    }

    /// The frames it read, `n` of them (bounded wait).
    fn read(&self, n: usize) -> Vec<Value> {
        (0..n)
            .map(|_| {
                self.lines
                    .recv_timeout(crate::util::WAIT)
                    .expect("peer line")
            })
            .collect()
    }
}

impl Drop for PeerServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The Python client of `framing` sending `msgs` to `port`: the echoes it
/// read, as it printed them.
fn peer_client(framing: &str, port: u16, msgs: &[&str]) -> Vec<Value> {
    let p = port.to_string();
    let mut args = vec![peer("framed_peer.py"), "client".into(), framing.into(), p];
    args.extend(msgs.iter().map(|m| m.to_string()));
    let out = Command::new("python3").args(&args).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .skip(1)
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The fields of a frame as the Python peer printed them, in rc1's JSON
/// shape (bytes fields by their hex).
fn same_fields(rc1: &Value, py: &Value) {
    let fields = rc1["fields"].as_object().unwrap();
    for (k, v) in fields {
        let got = if v.is_object() { &v["hex"] } else { v };
        assert_eq!(got, &py[k], "field {k}: rc1 {rc1}, python {py}");
    }
    assert_eq!(hex_of(rc1), py["raw"].as_str().unwrap());
}

/// The whole frame's bytes, rebuilt from rc1's fields by the peer's
/// struct layout: checked against the raw bytes Python printed.
fn hex_of(f: &Value) -> String {
    let x = &f["fields"];
    let u = |k: &str| x[k].as_u64().unwrap();
    let body = |k: &str| x[k]["hex"].as_str().unwrap().to_string();
    match f["framing"].as_str().unwrap() {
        "le16" => format!(
            "{:02x}{}{}{}",
            u("version"),
            hex(&(u("order") as u16).to_le_bytes()),
            hex(&(u("len") as u16).to_le_bytes()),
            body("data")
        ),
        "crc-trailer" => format!(
            "{:02x}{:08x}{:04x}{}{:08x}",
            u("version"),
            u("seq"),
            u("length"),
            body("payload"),
            u("crc")
        ),
        _ => format!(
            "{:02x}{:02x}{:08x}{}",
            u("version"),
            u("kind"),
            u("length"),
            body("body")
        ),
    }
}

/// `rc1 capture -i lo -f FILTER -w FILE -q` running until `stop`.
fn live(filter: &str, pcap: &str) -> std::process::Child {
    let mut cap = rc1()
        .args(["capture", "-i", "lo", "-f", filter, "-w", pcap, "-q"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(cap.stderr.take().unwrap());
    let mut line = String::new();
    err.read_line(&mut line).unwrap();
    assert!(line.contains("capturing on lo"), "{line}");
    std::thread::sleep(Duration::from_millis(200));
    cap
}

#[test]
fn a_loopback_capture_of_the_python_peer_decodes_to_what_it_printed() {
    let Some(_one_at_a_time) = crate::util::live_capture("framing_live_capture_on_lo") else {
        return;
    };
    if !python_here("framing_live_capture_on_lo") {
        return;
    }
    let dir = std::env::temp_dir().join(format!("rc1-fr-live-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let msgs = ["one", "", "a third, longer message: \u{e9}t\u{e9}"];
    let servers: Vec<PeerServer> = FRAMINGS.iter().map(|f| PeerServer::start(f.0)).collect();
    let filter = servers
        .iter()
        .map(|s| format!("tcp port {}", s.port))
        .collect::<Vec<_>>()
        .join(" or ");
    let all_pcap = dir.join("all.pcap").display().to_string();
    let all_cap = live(&filter, &all_pcap);
    for (i, &(name, ..)) in FRAMINGS.iter().enumerate() {
        let s = &servers[i];
        let pcap = dir.join(format!("{name}.pcap")).display().to_string();
        let mut cap = live(&format!("tcp port {}", s.port), &pcap);
        let echoes = peer_client(name, s.port, &msgs);
        let requests = s.read(msgs.len());
        std::thread::sleep(Duration::from_millis(300));
        crate::util::ctrl_c_and_wait(&mut cap);
        let port = s.port.to_string();
        let out = run(&[
            "capture",
            "-r",
            &pcap,
            "--framing",
            &file(name),
            "--port",
            &port,
            "--json",
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
        let ev = json_lines(&out);
        let (req, ech) = (frames(&ev, "c>s"), frames(&ev, "s>c"));
        assert_eq!((req.len(), ech.len()), (msgs.len(), msgs.len()), "{name}");
        for k in 0..msgs.len() {
            same_fields(req[k], &requests[k]);
            same_fields(ech[k], &echoes[k]);
            assert_eq!(echoes[k]["echo_ok"], true);
            assert_eq!(ech[k]["echo"], "ok", "{name}: {}", ech[k]);
        }
        assert!(codes(&ev).is_empty(), "{name}: {:?}", codes(&ev));
    }
    let mut all_cap = all_cap;
    crate::util::ctrl_c_and_wait(&mut all_cap);
    // --proto auto with every file: each session gets its own framing.
    let out = run(&[
        "capture",
        "-r",
        &all_pcap,
        "-f",
        "",
        "--port",
        "5005",
        "--json",
        "--framing",
        &file("le16"),
        "--framing",
        &file("crc-trailer"),
        "--framing",
        &file("typed"),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let ev = json_lines(&out);
    let sessions: Vec<_> = ev.iter().filter(|v| v["type"] == "session").collect();
    assert_eq!(sessions.len(), 3, "{sessions:?}");
    for (i, s) in servers.iter().enumerate() {
        let on_port = |v: &&Value| {
            v["server"]
                .as_str()
                .is_some_and(|a| a.ends_with(&format!(":{}", s.port)))
        };
        let det: Vec<_> = ev
            .iter()
            .filter(|v| v["type"] == "detected")
            .filter(on_port)
            .collect();
        assert_eq!(det.len(), 1);
        assert_eq!(det[0]["framing"], FRAMINGS[i].0, "{}", det[0]);
        assert_eq!(
            frames(&ev, "c>s").into_iter().filter(on_port).count(),
            msgs.len()
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
