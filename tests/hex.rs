//! `rc1 capture --hex`: the bytes pane under each frame, checked against
//! the frames' own bytes (parsed back from the dump), tshark's segment
//! boundaries, and a golden file.

use std::collections::{BTreeSet, HashMap};
use std::process::Command;

use crate::util::{have_prerequisite, json_lines, run, stderr, stdout};

fn fixture(name: &str) -> String {
    format!("{}/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// One frame's pane as printed: the bytes shown (None for `..`) and the
/// segment starts listed under it.
#[derive(Debug, Default)]
struct Pane {
    bytes: Vec<Option<u8>>,
    segments: Vec<usize>,
    more: Option<usize>,
}

/// The panes under the frame lines (` v2 ` / ` v3 `) of a `--hex` output,
/// in order.
fn frame_panes(out: &str) -> Vec<Pane> {
    let mut panes = Vec::new();
    let mut cur: Option<Pane> = None;
    for line in out.lines() {
        let is_event = line.len() > 16 && line.as_bytes()[2] == b':' && line.as_bytes()[8] == b'.';
        if is_event {
            if let Some(p) = cur.take() {
                panes.push(p);
            }
            let framed = line.contains(" v2 ver=") || line.contains(" v3 ver=");
            if framed {
                cur = Some(Pane::default());
            }
            continue;
        }
        if line.is_empty() {
            // The sessions table follows.
            panes.extend(cur.take());
            continue;
        }
        let Some(p) = &mut cur else { continue };
        let t = line.trim_start();
        if let Some(rest) = t.strip_prefix("segment ") {
            let at = rest.rsplit(' ').next().unwrap();
            p.segments.push(at.parse().unwrap());
        } else if let Some(rest) = t.strip_prefix("… ") {
            if let Some(n) = rest.strip_suffix(" more bytes") {
                p.more = Some(n.parse().unwrap());
            }
        } else if let Some((off, rest)) = line.split_once(' ')
            && !off.is_empty()
            && off.chars().all(|c| c.is_ascii_hexdigit())
        {
            // A byte line: offset, then tokens up to two spaces (ASCII).
            assert_eq!(
                usize::from_str_radix(off, 16).unwrap(),
                p.bytes.len(),
                "offsets run on: {line:?}"
            );
            let hex = rest.split("  ").next().unwrap();
            for tok in hex.split([' ', '▸', '|']).filter(|t| !t.is_empty()) {
                p.bytes.push(if tok == ".." {
                    None
                } else {
                    Some(u8::from_str_radix(tok, 16).unwrap())
                });
            }
        } else if line.ends_with(')') && line.contains("never captured") {
            panic!("no gap expected in a whole frame: {line}");
        }
    }
    if let Some(p) = cur.take() {
        panes.push(p);
    }
    panes
}

/// The frames of `--json`: (session, dir, offset, raw bytes rebuilt from
/// the fields; v2 only up to the message's end).
fn json_frames(file: &str) -> Vec<(u64, String, u64, Vec<u8>, usize)> {
    let out = run(&["capture", "-r", file, "--json"]);
    json_lines(&out)
        .into_iter()
        .filter(|v| v["type"] == "frame")
        .map(|v| {
            let mut raw = vec![v["version"].as_u64().unwrap() as u8];
            raw.extend((v["order"].as_u64().unwrap() as u32).to_be_bytes());
            let size = v["size"].as_u64().unwrap();
            raw.extend((size as u32).to_be_bytes());
            let m = v["message_hex"].as_str().unwrap();
            for i in (0..m.len()).step_by(2) {
                raw.push(u8::from_str_radix(&m[i..i + 2], 16).unwrap());
            }
            let len = if v["framing"] == "v2" {
                29
            } else {
                9 + size as usize
            };
            (
                v["session"].as_u64().unwrap(),
                v["dir"].as_str().unwrap().to_string(),
                v["offset"].as_u64().unwrap(),
                raw,
                len,
            )
        })
        .collect()
}

#[test]
fn hex_bytes_parse_back_to_each_frames_bytes() {
    for name in [
        "split-odd.pcap",
        "v2-echo.pcap",
        "v3-echo.pcap",
        "ooo-v3.pcap",
        "null-split.pcap",
    ] {
        let file = fixture(name);
        let out = run(&["capture", "-r", &file, "--hex"]);
        assert!(out.status.success(), "{name}: {}", stderr(&out));
        let panes = frame_panes(&stdout(&out));
        let frames = json_frames(&file);
        assert_eq!(panes.len(), frames.len(), "{name}");
        assert!(!panes.is_empty());
        for (k, (p, (_, _, _, raw, len))) in panes.iter().zip(&frames).enumerate() {
            let shown: Vec<u8> = p
                .bytes
                .iter()
                .map(|b| b.expect("no .. in a whole frame"))
                .collect();
            assert_eq!(shown.len() + p.more.unwrap_or(0), *len, "{name} frame {k}");
            let n = shown.len().min(raw.len());
            assert_eq!(shown[..n], raw[..n], "{name} frame {k}");
        }
    }
}

#[test]
fn segment_starts_match_tshark() {
    let have = Command::new("tshark").arg("--version").output().is_ok();
    if !have_prerequisite(have, "segment_starts_match_tshark", "tshark") {
        return;
    }
    let mut marked = 0;
    for name in [
        "split-odd.pcap",
        "null-split.pcap",
        "ooo-v3.pcap",
        "v3-echo.pcap",
    ] {
        let file = fixture(name);
        let t = Command::new("tshark")
            .args(["-r", &file, "-Y", "tcp.len>0", "-T", "fields"])
            .args([
                "-e",
                "tcp.stream",
                "-e",
                "tcp.srcport",
                "-e",
                "tcp.seq",
                "-e",
                "tcp.len",
            ])
            .output()
            .expect("run tshark");
        assert!(t.status.success(), "tshark on {name}");
        // Segment starts (stream offsets) per (session, dir).
        let mut starts: HashMap<(u64, String), BTreeSet<u64>> = HashMap::new();
        for l in String::from_utf8_lossy(&t.stdout).lines() {
            let f: Vec<&str> = l.split('\t').collect();
            let stream: u64 = f[0].parse().unwrap();
            let dir = if f[1] == "5005" { "s>c" } else { "c>s" };
            let seq: u64 = f[2].parse().unwrap();
            starts
                .entry((stream + 1, dir.to_string()))
                .or_default()
                .insert(seq - 1);
        }
        let out = run(&["capture", "-r", &file, "--hex"]);
        let panes = frame_panes(&stdout(&out));
        let frames = json_frames(&file);
        assert_eq!(panes.len(), frames.len(), "{name}");
        for (p, (session, dir, offset, _, len)) in panes.iter().zip(&frames) {
            let want: Vec<usize> = starts
                .get(&(*session, dir.clone()))
                .map(|s| {
                    s.iter()
                        .filter(|&&o| o > *offset && o < offset + *len as u64)
                        .map(|&o| (o - offset) as usize)
                        .collect()
                })
                .unwrap_or_default();
            // The pane lists the first few; all of them when few.
            let listed = want.len().min(8);
            assert_eq!(
                p.segments,
                want[..listed],
                "{name} #{session} {dir} frame at {offset}"
            );
            marked += p.segments.len();
        }
    }
    assert!(marked >= 10, "the fixtures split frames: {marked} marks");
}

#[test]
fn gaps_show_captured_bytes_and_dots() {
    let out = stdout(&run(&["capture", "-r", &fixture("gap.pcap"), "--hex"]));
    // The v2 frame at 58 lost its first 11 bytes to the 40-byte gap at 29.
    let pane = out.split("frame.damaged").nth(1).unwrap();
    assert!(pane.contains("stream offsets 58..87:"), "{out}");
    assert!(
        pane.contains("0000  .. | .. .. .. .. | .. .. .. .. | .. .. 72 65 65 20 28"),
        "{out}"
    );
    let out = stdout(&run(&["capture", "-r", &fixture("gap-v3.pcap"), "--hex"]));
    // The v3 frame at 12: its header and 4 message bytes, 8 missing, its
    // last 6 bytes after the gap.
    assert!(out.contains("stream offsets 12..39:"), "{out}");
    assert!(
        out.contains("0010  .. .. .. .. .. 61 20 68 6f 6c 65"),
        "{out}"
    );
    let out = stdout(&run(&[
        "capture",
        "-r",
        &fixture("v2-damaged.pcap"),
        "--hex",
    ]));
    // Truncated: 15 of 29 bytes came.
    let pane = out.split("frame.truncated").nth(1).unwrap();
    let dots = pane
        .lines()
        .take(6)
        .filter(|l| l.starts_with("00"))
        .map(|l| l.split([' ', '|']).filter(|t| *t == "..").count())
        .sum::<usize>();
    assert_eq!(dots, 14, "{pane}");
}

#[test]
fn hex_with_json_or_quiet_is_a_usage_error() {
    let out = run(&["capture", "-r", &fixture("v2-echo.pcap"), "--hex", "--json"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("--hex is a text view"),
        "{}",
        stderr(&out)
    );
    let out = run(&["capture", "-r", &fixture("v2-echo.pcap"), "--hex", "-q"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("-q prints none"), "{}", stderr(&out));
}

#[test]
fn text_and_udp_are_plain_dumps() {
    let out = stdout(&run(&["capture", "-r", &fixture("udp.pcap"), "--hex"]));
    let first = out
        .lines()
        .find(|l| l.starts_with("0000  "))
        .expect("a dump");
    assert!(!first.contains('|'), "{first}");
    let out = stdout(&run(&[
        "capture",
        "-r",
        &fixture("text-threaded.pcap"),
        "--hex",
    ]));
    assert!(out.lines().any(|l| l.starts_with("0000  ")), "{out}");
}

#[test]
fn split_odd_hex_matches_its_golden_file() {
    let root = env!("CARGO_MANIFEST_DIR");
    let got = stdout(&run(&[
        "capture",
        "-r",
        &fixture("split-odd.pcap"),
        "--hex",
    ]));
    let golden = format!("{root}/tests/golden/split-odd.pcap.hex.txt");
    if std::env::var("RC1_BLESS").is_ok_and(|v| v == "1") {
        std::fs::write(&golden, &got).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&golden).unwrap_or_else(|_| {
        panic!("{golden} is missing: RC1_BLESS=1 cargo test --test integration hex")
    });
    assert_eq!(
        want, got,
        "(if intended: RC1_BLESS=1 cargo test --test integration hex, then review)"
    );
    assert!(got.contains("▸"));
}
