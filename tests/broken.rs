//! A corpus of broken capture files, made on the fly from a good fixture:
//! each gives a clear message and a documented exit status (0 decoded, 1
//! error with what could be decoded printed first), never a panic.

use std::path::PathBuf;

use crate::util::{run, stderr, stdout};

const GOOD: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/v2-echo.pcap");
const GOOD_NG: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/v2-echo.pcapng");

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

#[test]
fn broken_capture_files_get_a_clear_message_and_never_a_panic() {
    let good = std::fs::read(GOOD).unwrap();
    let ng = std::fs::read(GOOD_NG).unwrap();
    let dir = std::env::temp_dir().join(format!("rc1-broken-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut over_snaplen = good.clone();
    over_snaplen[16..20].copy_from_slice(&64u32.to_le_bytes());
    let mut huge_caplen = good[..200].to_vec();
    huge_caplen[24 + 8..24 + 12].copy_from_slice(&0x7FFF_FFFFu32.to_le_bytes());
    // pcapng: an unknown block (type 0x0BADBEEF) after the section and
    // interface blocks.
    let (shb, idb) = (
        u32_at(&ng, 4) as usize,
        u32_at(&ng, u32_at(&ng, 4) as usize + 4) as usize,
    );
    let mut unknown = ng[..shb + idb].to_vec();
    let body = b"hello!!!";
    let len = (12 + body.len()) as u32;
    unknown.extend_from_slice(&0x0BAD_BEEFu32.to_le_bytes());
    unknown.extend_from_slice(&len.to_le_bytes());
    unknown.extend_from_slice(body);
    unknown.extend_from_slice(&len.to_le_bytes());
    unknown.extend_from_slice(&ng[shb + idb..]);
    let mut wrong_magic = good.clone();
    wrong_magic[..4].copy_from_slice(&[0xDE, 0xAD, 0xBE, 0xEF]);
    // (name, bytes, exit status, what stderr must say, frames decoded)
    let cases: Vec<(&str, Vec<u8>, i32, &str, usize)> = vec![
        ("zero-length.pcap", Vec::new(), 1, "not a capture file", 0),
        (
            "header-cut.pcap",
            good[..10].to_vec(),
            1,
            "not a capture file",
            0,
        ),
        ("wrong-magic.pcap", wrong_magic, 1, "unknown file format", 0),
        (
            "compressed.pcap.gz",
            [&[0x1F, 0x8B, 0x08, 0x00][..], &[0; 30]].concat(),
            1,
            "gzip-compressed: decompress it first",
            0,
        ),
        (
            "record-cut.pcap",
            good[..24 + 16 + 20].to_vec(),
            1,
            "cut short after packet 0",
            0,
        ),
        (
            "huge-caplen.pcap",
            huge_caplen,
            1,
            "claims a captured length of 2147483647 bytes, over the 262144-byte maximum",
            0,
        ),
        // Records longer than the file's snap length are read cut to it:
        // each one is reported, none decoded from a partial header.
        ("over-snaplen.pcap", over_snaplen, 0, "", 0),
        ("unknown-block.pcapng", unknown, 0, "", 10),
    ];
    for (name, bytes, code, says, frames) in cases {
        let path: PathBuf = dir.join(name);
        std::fs::write(&path, &bytes).unwrap();
        let out = run(&["capture", "-r", path.to_str().unwrap(), "--json"]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(code), "{name}: {err}");
        assert!(!err.contains("panicked"), "{name}: {err}");
        assert!(err.contains(says), "{name}: {err}");
        if code == 1 {
            assert_eq!(err.lines().count(), 1, "{name}: one line: {err}");
            assert!(err.contains(name), "{name}: names the file: {err}");
        }
        let decoded = stdout(&out)
            .lines()
            .filter(|l| l.contains("\"type\":\"frame\""))
            .count();
        assert_eq!(decoded, frames, "{name}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

const MULTI_IF: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/multi-if.pcapng");

/// The blocks of a pcapng file's first (little-endian) section: (offset,
/// total length, type).
fn blocks(ng: &[u8]) -> Vec<(usize, usize, u32)> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + 8 <= ng.len() {
        let (kind, len) = (u32_at(ng, at), u32_at(ng, at + 4) as usize);
        if kind == 0x0A0D_0D0A && at > 0 {
            break; // the next section
        }
        out.push((at, len, kind));
        at += len;
    }
    out
}

fn frames_of(path: &std::path::Path) -> (Option<i32>, usize, String) {
    let out = run(&["capture", "-r", path.to_str().unwrap(), "--json"]);
    let n = stdout(&out)
        .lines()
        .filter(|l| l.contains("\"type\":\"frame\""))
        .count();
    (out.status.code(), n, stderr(&out))
}

#[test]
fn a_damaged_pcapng_block_is_reported_with_its_offset_after_everything_before_it() {
    let ng = std::fs::read(MULTI_IF).unwrap();
    let dir = std::env::temp_dir().join(format!("rc1-broken-ng-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // An Enhanced Packet Block deep in the first section, and how many
    // packets come before it.
    let bl = blocks(&ng);
    let (i, &(off, len, _)) = bl
        .iter()
        .enumerate()
        .filter(|(_, b)| b.2 == 6)
        .nth(20)
        .unwrap();
    let packets_before = bl[..i].iter().filter(|b| [2, 3, 6].contains(&b.2)).count();
    // What decodes from the blocks before it, cut cleanly there.
    let clean = dir.join("clean.pcapng");
    std::fs::write(&clean, &ng[..off]).unwrap();
    let (code, frames_before, err) = frames_of(&clean);
    assert_eq!(code, Some(0), "{err}");
    assert!(frames_before > 0);
    let mut trailer = ng.clone();
    trailer[off + len - 4] ^= 0x40;
    let mut iface = ng.clone();
    iface[off + 8..off + 12].copy_from_slice(&9u32.to_le_bytes());
    let cases: Vec<(&str, Vec<u8>, String)> = vec![
        (
            "cut.pcapng",
            ng[..off + 20].to_vec(),
            format!(
                "cut short after packet {packets_before}: the enhanced packet block at byte {off} needs {len} bytes, the file has 20 left"
            ),
        ),
        (
            "trailer.pcapng",
            trailer,
            format!(
                "corrupt after packet {packets_before}: the enhanced packet block at byte {off} says {len} bytes at its start and {} at its end",
                len ^ 0x40
            ),
        ),
        (
            "interface.pcapng",
            iface,
            format!(
                "corrupt after packet {packets_before}: the enhanced packet block at byte {off} is on interface 9, but this section describes 3 interface(s)"
            ),
        ),
    ];
    for (name, bytes, says) in cases {
        let path = dir.join(name);
        std::fs::write(&path, &bytes).unwrap();
        let (code, frames, err) = frames_of(&path);
        assert_eq!(code, Some(1), "{name}: {err}");
        assert_eq!(err.lines().count(), 1, "{name}: one line: {err}");
        assert!(err.contains(&says), "{name}: expected {says:?} in {err}");
        assert!(
            err.contains("everything before it was decoded"),
            "{name}: {err}"
        );
        assert_eq!(frames, frames_before, "{name}: what came before is decoded");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
