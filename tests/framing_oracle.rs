//! Issue 16's proof, end to end: each loopback capture of a framing rc1
//! has no code for (fixtures/framing-*.pcap, made with the independent
//! Python peer) decoded by `rc1 capture --framing` and by tshark with the
//! dissector `rc1 dissector --framing` generates: the same frames, field by
//! field, in the same order.

use std::process::Command;

use serde_json::Value;

use crate::dissector::tshark_present;
use crate::util::{have_prerequisite, run, stderr, stdout};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// (framing file, Wireshark protocol, its fields in wire order).
const CASES: &[(&str, &str, &[&str])] = &[
    ("le16", "le16", &["version", "order", "len", "data"]),
    (
        "crc-trailer",
        "crc_trailer",
        &["version", "seq", "length", "payload", "crc"],
    ),
    ("typed", "typed", &["version", "kind", "length", "body"]),
];

/// A field's value as text: integers in decimal, bytes in hex (so that
/// binary bytes are compared too).
fn rc1_value(v: &Value) -> String {
    match v {
        Value::Number(n) => n.to_string(),
        Value::Object(o) => o["hex"].as_str().unwrap_or_default().to_string(),
        other => panic!("unexpected field value {other}"),
    }
}

/// tshark prints unsigned integers in decimal or, for hex-based fields,
/// as 0x…: both as decimal; bytes fields in hex, maybe with `:` between
/// bytes: plain lowercase hex. tshark 4.0 prints an empty bytes field
/// (present, zero bytes long) as `<MISSING>`: that is no bytes, "".
fn tshark_value(s: &str) -> String {
    if s == "<MISSING>" {
        return String::new();
    }
    match s.strip_prefix("0x") {
        Some(h) => u128::from_str_radix(h, 16)
            .map(|n| n.to_string())
            .unwrap_or_else(|_| s.to_string()),
        None => s.replace(':', "").to_ascii_lowercase(),
    }
}

#[test]
fn rc1_capture_and_tshark_with_the_generated_dissector_agree_field_by_field() {
    if !have_prerequisite(
        tshark_present(),
        "rc1_capture_and_tshark_with_the_generated_dissector_agree_field_by_field",
        "tshark",
    ) {
        return;
    }
    let dir = std::env::temp_dir().join(format!("rc1-framing-oracle-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (name, proto, fields) in CASES {
        let file = format!("{ROOT}/fixtures/framings/{name}.toml");
        let pcap = format!("{ROOT}/fixtures/framing-{name}.pcap");
        // rc1's reading.
        let o = run(&["capture", "-r", &pcap, "--framing", &file, "--json"]);
        assert!(o.status.success(), "{name}: {}", stderr(&o));
        let mut ours: Vec<Vec<String>> = Vec::new();
        for line in stdout(&o).lines() {
            let v: Value = serde_json::from_str(line).unwrap();
            if v["type"] == "frame" {
                assert_eq!(v["framing"], *name, "{line}");
                ours.push(fields.iter().map(|f| rc1_value(&v["fields"][f])).collect());
            }
            assert_ne!(v["type"], "diagnostic", "{name}: a clean capture: {line}");
        }
        assert_eq!(ours.len(), 6, "{name}: 3 requests and their 3 echoes");
        // tshark's, through the generated dissector.
        let lua = dir.join(format!("{name}.lua"));
        let o = run(&["dissector", "--framing", &file, "-o", lua.to_str().unwrap()]);
        assert!(o.status.success(), "{name}: {}", stderr(&o));
        let mut cmd = Command::new("tshark");
        cmd.args(["-r", &pcap, "-X"])
            .arg(format!("lua_script:{}", lua.display()))
            .args([
                "-o",
                "tcp.reassemble_out_of_order:TRUE",
                "-T",
                "fields",
                "-E",
                "separator=\t",
                "-E",
                "aggregator=\u{1f}",
                "-E",
                "occurrence=a",
            ]);
        for f in *fields {
            cmd.args(["-e", &format!("{proto}.{f}")]);
        }
        let t = cmd.output().unwrap();
        let err = String::from_utf8_lossy(&t.stderr);
        assert!(t.status.success() && !err.contains("Lua"), "{name}: {err}");
        let mut theirs: Vec<Vec<String>> = Vec::new();
        for line in String::from_utf8_lossy(&t.stdout).lines() {
            let cols: Vec<Vec<&str>> = line
                .split('\t')
                .map(|c| c.split('\u{1f}').collect())
                .collect();
            // A packet without a frame has every column empty.
            let frames = cols
                .first()
                .map_or(0, |c| c.iter().filter(|s| !s.is_empty()).count());
            for k in 0..frames {
                theirs.push(
                    cols.iter()
                        .map(|c| tshark_value(c.get(k).copied().unwrap_or_default()))
                        .collect(),
                );
            }
        }
        assert_eq!(
            ours, theirs,
            "{name}: rc1 capture vs tshark, field by field"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The codes of a hole, as rc1 capture names them.
const HOLE_CODES: &[&str] = &["tcp.gap", "frame.damaged", "frame.unsynchronised"];

/// What one reading of a capture shows: the frames (their fields' values
/// in wire order) and the hole codes reported, in order of appearance.
#[derive(Debug, PartialEq, Eq)]
struct Reading {
    frames: Vec<Vec<String>>,
    codes: Vec<String>,
}

/// `rc1 capture --framing` on `pcap`.
fn rc1_reading(framing: &str, pcap: &str, fields: &[&str]) -> Reading {
    // Forced (`--proto framing`): what is compared is the decoding, not
    // the detection (a framing without checks is detected only where
    // nothing else explains the bytes).
    let o = run(&[
        "capture",
        "-r",
        pcap,
        "--framing",
        framing,
        "--proto",
        "framing",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let mut r = Reading {
        frames: Vec::new(),
        codes: Vec::new(),
    };
    for line in stdout(&o).lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        if v["type"] == "frame" {
            r.frames
                .push(fields.iter().map(|f| rc1_value(&v["fields"][f])).collect());
        }
        if v["type"] == "diagnostic" {
            let code = v["code"].as_str().unwrap_or_default().to_string();
            if HOLE_CODES.contains(&code.as_str()) && r.codes.last() != Some(&code) {
                r.codes.push(code);
            }
        }
    }
    r
}

/// tshark (its defaults: no out-of-order reassembly) with the generated
/// dissector of `framing` on `pcap`.
fn tshark_reading(framing: &str, proto: &str, pcap: &str, fields: &[&str], dir: &str) -> Reading {
    let lua = format!("{dir}/{proto}.lua");
    let o = run(&["dissector", "--framing", framing, "-o", &lua]);
    assert!(o.status.success(), "{}", stderr(&o));
    let mut cmd = Command::new("tshark");
    cmd.args(["-r", pcap, "-X", &format!("lua_script:{lua}")])
        .args([
            "-T",
            "fields",
            "-E",
            "separator=\t",
            "-E",
            "aggregator=\u{1f}",
        ])
        .args(["-E", "occurrence=a", "-e", "_ws.expert.message"]);
    for f in fields {
        cmd.args(["-e", &format!("{proto}.{f}")]);
    }
    let t = cmd.output().unwrap();
    let text = String::from_utf8_lossy(&t.stdout);
    assert!(t.status.success() && !text.contains("Lua Error"), "{text}");
    let mut r = Reading {
        frames: Vec::new(),
        codes: Vec::new(),
    };
    for line in text.lines() {
        let cols: Vec<Vec<&str>> = line
            .split('\t')
            .map(|c| c.split('\u{1f}').collect())
            .collect();
        for m in &cols[0] {
            let Some(code) = m.strip_prefix('[').and_then(|m| m.split_once(']')) else {
                continue;
            };
            let code = code.0.to_string();
            if HOLE_CODES.contains(&code.as_str()) && r.codes.last() != Some(&code) {
                r.codes.push(code);
            }
        }
        let frames = cols
            .get(1)
            .map_or(0, |c| c.iter().filter(|s| !s.is_empty()).count());
        for k in 0..frames {
            r.frames.push(
                cols[1..]
                    .iter()
                    .map(|c| tshark_value(c.get(k).copied().unwrap_or_default()))
                    .collect(),
            );
        }
    }
    r
}

#[test]
fn after_a_hole_the_generated_dissector_resynchronises_as_rc1_capture_does() {
    let test = "after_a_hole_the_generated_dissector_resynchronises_as_rc1_capture_does";
    if !have_prerequisite(tshark_present(), test, "tshark") {
        return;
    }
    let dir = std::env::temp_dir().join(format!("rc1-framing-hole-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let d = dir.to_str().unwrap().to_string();
    // A fixed-size framing (resumes on the 4-byte grid) and one with a
    // length (resumes after the cut frame when its header was seen, else
    // never again in that direction).
    let fixed = format!("{d}/hh.toml");
    std::fs::write(
        &fixed,
        "name = \"hh\"\nstruct = \"!HH\"\nnames = [\"f1\", \"f2\"]\nport = 5011\n",
    )
    .unwrap();
    let sized = format!("{d}/lenf.toml");
    std::fs::write(
        &sized,
        "name = \"lenf\"\nport = 5012\n\
         [[field]]\nname = \"order\"\ntype = \"H\"\n\
         [[field]]\nname = \"len\"\ntype = \"H\"\n\
         [[field]]\nname = \"data\"\ntype = \"body\"\nlength = \"len\"\n",
    )
    .unwrap();
    // Six frames each; every frame in two segments.
    let hh: Vec<Vec<u8>> = (1u16..=6)
        .flat_map(|i| {
            let mut f = i.to_be_bytes().to_vec();
            f.extend_from_slice(&(i * 100).to_be_bytes());
            let b = f.split_off(3);
            [f, b]
        })
        .collect();
    let lf: Vec<Vec<u8>> = (1u16..=6)
        .flat_map(|i| {
            let mut f = i.to_be_bytes().to_vec();
            f.extend_from_slice(&6u16.to_be_bytes());
            f.extend_from_slice(b"abcdef");
            let b = f.split_off(5);
            [f, b]
        })
        .collect();
    // (framing, protocol, fields, segments, port, packet deleted (1-based),
    // frames rc1 must decode, hole codes in order)
    type Case<'a> = (
        &'a str,
        &'a str,
        &'a [&'a str],
        &'a [Vec<u8>],
        u16,
        u32,
        usize,
        &'a [&'a str],
    );
    let cases: &[Case] = &[
        // The 1-byte end of frame 2: its 3 bytes damaged, grid from frame 3.
        (
            &fixed,
            "hh",
            &["f1", "f2"],
            &hh,
            5011,
            4,
            5,
            &["tcp.gap", "frame.damaged"],
        ),
        // The first 3 bytes of frame 3: its last byte damaged.
        (
            &fixed,
            "hh",
            &["f1", "f2"],
            &hh,
            5011,
            5,
            5,
            &["tcp.gap", "frame.damaged"],
        ),
        // The end of frame 2, whose header was seen: resumes at frame 3.
        (
            &sized,
            "lenf",
            &["order", "len", "data"],
            &lf,
            5012,
            4,
            5,
            &["tcp.gap", "frame.damaged"],
        ),
        // The start of frame 3 (a header lost): nothing more decoded.
        (
            &sized,
            "lenf",
            &["order", "len", "data"],
            &lf,
            5012,
            5,
            2,
            &["tcp.gap", "frame.unsynchronised"],
        ),
    ];
    for (framing, proto, fields, segs, port, delete, frames, codes) in cases {
        let segments: Vec<(bool, &[u8])> = segs.iter().map(|s| (true, s.as_slice())).collect();
        let whole = format!("{d}/{proto}.pcap");
        std::fs::write(&whole, crate::util::tcp_pcap(*port, &segments)).unwrap();
        let cut = format!("{d}/{proto}-{delete}.pcap");
        let e = Command::new("editcap")
            .args([&whole, &cut, &delete.to_string()])
            .output()
            .expect("editcap (it comes with tshark)");
        assert!(e.status.success(), "{}", String::from_utf8_lossy(&e.stderr));
        let ours = rc1_reading(framing, &cut, fields);
        assert_eq!(
            ours.frames.len(),
            *frames,
            "{proto} -{delete}: rc1 {ours:?}"
        );
        assert_eq!(ours.codes, *codes, "{proto} -{delete}: rc1 {ours:?}");
        let theirs = tshark_reading(framing, proto, &cut, fields, &d);
        assert_eq!(
            ours, theirs,
            "{proto} without packet {delete}: rc1 vs tshark"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_max_body_over_what_wireshark_reassembles_is_said_and_64_bit_claims_print_exactly() {
    let test = "a_max_body_over_what_wireshark_reassembles_is_said_and_64_bit_claims_print_exactly";
    let dir = std::env::temp_dir().join(format!("rc1-framing-maxbody-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let d = dir.to_str().unwrap().to_string();
    let file = format!("{d}/q64.toml");
    std::fs::write(
        &file,
        "name = \"q64\"\nport = 5013\nmax_body = 4294967295\n\
         [[field]]\nname = \"len\"\ntype = \"Q\"\n\
         [[field]]\nname = \"data\"\ntype = \"body\"\nlength = \"len\"\n",
    )
    .unwrap();
    let lua = format!("{d}/q64.lua");
    let o = run(&["dissector", "--framing", &file, "-o", &lua]);
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("warning")
            && err.contains("max_body is 4294967295 bytes")
            && err.contains("Wireshark cannot reassemble"),
        "no warning about max_body: {err:?}"
    );
    // Within what Wireshark reassembles: no warning.
    let o = run(&[
        "dissector",
        "--framing",
        &format!("{ROOT}/fixtures/framings/le16.toml"),
        "-o",
        &format!("{d}/le16.lua"),
    ]);
    assert!(
        o.status.success() && !stderr(&o).contains("warning"),
        "{}",
        stderr(&o)
    );
    if !have_prerequisite(tshark_present(), test, "tshark") {
        return;
    }
    // A claim of 2^64 - 1 bytes.
    let mut frame = u64::MAX.to_be_bytes().to_vec();
    frame.extend_from_slice(b"xy");
    let pcap = format!("{d}/q64.pcap");
    std::fs::write(&pcap, crate::util::tcp_pcap(5013, &[(true, &frame)])).unwrap();
    let t = Command::new("tshark")
        .args(["-r", &pcap, "-X", &format!("lua_script:{lua}")])
        .args(["-T", "fields", "-e", "_ws.expert.message"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&t.stdout);
    assert!(
        text.contains("[framing.length_over_max] len claims a body of 18446744073709551615 bytes, more than Wireshark can reassemble")
            && text.contains("max_body is 4294967295"),
        "{text}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn binary_bodies_are_bytes_fields_and_agree_with_rc1_capture_in_hex() {
    let test = "binary_bodies_are_bytes_fields_and_agree_with_rc1_capture_in_hex";
    if !have_prerequisite(tshark_present(), test, "tshark")
        || !have_prerequisite(
            Command::new("python3").arg("--version").output().is_ok(),
            test,
            "python3",
        )
    {
        return;
    }
    let dir = std::env::temp_dir().join(format!("rc1-framing-binary-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let d = dir.to_str().unwrap().to_string();
    // A NUL, 0xFF (not UTF-8), a newline and a letter.
    let body = "00ff0a41";
    let ports = [("le16", 5006u16), ("crc-trailer", 5005), ("typed", 5005)];
    for ((name, proto, fields), (_, port)) in CASES.iter().zip(ports) {
        let file = format!("{ROOT}/fixtures/framings/{name}.toml");
        // The frame as the independent peer packs it.
        let o = Command::new("python3")
            .args([
                &crate::util::peer("framed_peer.py"),
                "encode-hex",
                name,
                "7",
                body,
            ])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let hex = String::from_utf8_lossy(&o.stdout).trim().to_string();
        let frame: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect();
        let pcap = format!("{d}/{name}.pcap");
        std::fs::write(
            &pcap,
            crate::util::tcp_pcap(port, &[(true, &frame), (false, &frame)]),
        )
        .unwrap();
        let ours = rc1_reading(&file, &pcap, fields);
        assert_eq!(ours.frames.len(), 2, "{name}: {ours:?}");
        assert!(
            ours.frames[0].contains(&body.to_string()),
            "{name}: the body in hex among {:?}",
            ours.frames[0]
        );
        let theirs = tshark_reading(&file, proto, &pcap, fields, &d);
        assert_eq!(ours, theirs, "{name}: rc1 capture vs tshark, bytes in hex");
        // A display filter finds the binary body; its text field is the
        // escaped form.
        let body_field = fields[3];
        let t = Command::new("tshark")
            .args(["-r", &pcap, "-X", &format!("lua_script:{d}/{proto}.lua")])
            .args(["-Y", &format!("{proto}.{body_field} contains ff:0a")])
            .args(["-T", "fields", "-e", &format!("{proto}.{body_field}.text")])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&t.stdout);
        assert_eq!(text.lines().count(), 2, "{name}: {text}");
        assert!(text.contains(r"\0\xFF\nA"), "{name}: {text}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
