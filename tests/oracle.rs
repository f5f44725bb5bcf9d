//! tshark as an independent oracle: for every TCP session of the fixtures
//! without gaps, the bytes rc1 reassembles (`--dump-streams`) equal
//! `tshark -z follow,tcp,raw,N` with out-of-order reassembly on.
//!
//! Files with gaps are left out on purpose: tshark's follow output writes a
//! text marker into a hole and omits a hole at the end, so it is not a
//! byte-exact oracle there (rc1's gap handling is tested in capture.rs).

use std::process::Command;

use crate::util::{have_prerequisite, run, stderr};

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap())
        .collect()
}

/// tshark's view of TCP stream `n`: (client bytes, server bytes, node 0).
fn tshark_follow(file: &str, n: usize) -> Option<(Vec<u8>, Vec<u8>, String)> {
    let out = Command::new("tshark")
        .args(["-r", file, "-q", "-o", "tcp.reassemble_out_of_order:TRUE"])
        .arg("-z")
        .arg(format!("follow,tcp,raw,{n}"))
        .output()
        .expect("run tshark");
    assert!(out.status.success(), "tshark failed on {file}");
    let text = String::from_utf8(out.stdout).unwrap();
    let mut node0 = None;
    let (mut c, mut s) = (Vec::new(), Vec::new());
    for line in text.lines() {
        if let Some(addr) = line.strip_prefix("Node 0: ") {
            node0 = Some(addr.to_string());
        } else if let Some(hex) = line.strip_prefix('\t') {
            s.extend(unhex(hex.trim()));
        } else if !line.is_empty() && line.chars().all(|ch| ch.is_ascii_hexdigit()) {
            c.extend(unhex(line));
        }
    }
    let node0 = node0?;
    if node0.is_empty() || node0 == ":0" {
        return None; // no such stream
    }
    Some((c, s, node0))
}

#[test]
fn reassembled_bytes_equal_tshark_follow() {
    let have = Command::new("tshark").arg("--version").output().is_ok();
    if !have_prerequisite(have, "reassembled_bytes_equal_tshark_follow", "tshark") {
        return;
    }
    let dir = std::env::temp_dir().join(format!("rc1-oracle-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut compared = 0;
    let mut total = 0;
    for name in [
        "v2-echo.pcap",
        "v3-echo.pcap",
        "text-threaded.pcap",
        "text-selector.pcap",
        "ooo.pcap",
        "retransmission.pcap",
        "overlap.pcap",
        "wraparound.pcap",
        "split-packed.pcap",
        "nosyn.pcap",
        "ipv6.pcap",
        // Captures people bring: link types, tags, extension headers,
        // tunnels, a capture begun mid-stream.
        "qinq.pcap",
        "ipv6-ext.pcap",
        "midstream.pcap",
        "ppp.pcap",
        "ppp-hdlc.pcap",
        "chdlc.pcap",
        "wifi.pcap",
        "radiotap.pcap",
        "nflog.pcap",
        "raw-ipv4.pcap",
        "raw-ipv6.pcap",
        "encaps.pcap",
        "tunnels.pcap",
    ] {
        let file = format!("{}/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
        let out_dir = dir.join(name);
        let d = out_dir.display().to_string();
        let out = run(&["capture", "-r", &file, "-q", "--dump-streams", &d]);
        assert!(out.status.success(), "{name}: {}", stderr(&out));
        let mut files: Vec<_> = std::fs::read_dir(&out_dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        assert!(
            !files
                .iter()
                .any(|f| f.extension().is_some_and(|e| e == "gaps")),
            "{name}: no gaps expected"
        );
        // Sessions are numbered in order of first packet, as tshark's streams.
        let mut n = 0;
        while let Some((c, s, node0)) = tshark_follow(&file, n) {
            let prefix = format!("s{:03}-", n + 1);
            let read = |side: &str| {
                files
                    .iter()
                    .find(|f| {
                        let f = f.file_name().unwrap().to_string_lossy().to_string();
                        f.starts_with(&prefix) && f.ends_with(&format!("-{side}.bin"))
                    })
                    .map(|f| std::fs::read(f).unwrap())
                    .unwrap_or_default()
            };
            let (rc, rs) = (read("c2s"), read("s2c"));
            // tshark's node 0 is whoever sent the first packet: the client
            // with a SYN; without one, it may be either side.
            let client_first = files.iter().any(|f| {
                let f = f.file_name().unwrap().to_string_lossy().to_string();
                f.starts_with(&prefix)
                    && f.contains(&node0.replace([':', '[', ']'], "_")[..])
                    && f.find(&node0.replace([':', '[', ']'], "_")[..]) == Some(prefix.len())
            });
            let (tc, ts) = if client_first || c.is_empty() && s.is_empty() {
                (c, s)
            } else {
                (s, c)
            };
            assert_eq!(rc.len(), tc.len(), "{name} stream {n}: client bytes");
            assert!(rc == tc, "{name} stream {n}: client bytes differ");
            assert_eq!(rs.len(), ts.len(), "{name} stream {n}: server bytes");
            assert!(rs == ts, "{name} stream {n}: server bytes differ");
            compared += 1;
            total += rc.len() + rs.len();
            n += 1;
        }
        assert!(n > 0, "{name}: tshark found no TCP stream");
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert!(compared >= 40, "compared {compared} streams");
    assert!(total > 140_000, "compared only {total} bytes");
}
