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

/// A field's value as text: integers in decimal, bytes as their text.
fn rc1_value(v: &Value) -> String {
    match v {
        Value::Number(n) => n.to_string(),
        Value::Object(o) => o["text"].as_str().unwrap_or_default().to_string(),
        other => panic!("unexpected field value {other}"),
    }
}

/// tshark prints unsigned integers in decimal or, for hex-based fields,
/// as 0x…: both as decimal.
fn tshark_value(s: &str) -> String {
    match s.strip_prefix("0x") {
        Some(h) => u128::from_str_radix(h, 16)
            .map(|n| n.to_string())
            .unwrap_or_else(|_| s.to_string()),
        None => s.to_string(),
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
