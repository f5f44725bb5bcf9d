//! `rc1 dissector --framing FILE`: for each framing of fixtures/framings,
//! the independent Python peer (tests/peers/framed_peer.py) talks on
//! loopback while `rc1 capture -i lo -w` records; tshark with the generated
//! Lua then reads the file, and every frame's fields must be what the peer
//! printed, the damaged frames must carry the expert info with rc1's code,
//! and a frame sent in two segments must be reassembled. Needs root or
//! CAP_NET_RAW, tshark and python3 (said loudly when missing; a failure
//! under `CI=true`).

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::dissector::tshark_present;
use crate::util::{ctrl_c_and_wait, have_prerequisite, live_capture, peer, rc1, run};

const FRAMINGS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/framings");

/// What the test knows of a framing (nothing rc1 computed).
struct Case {
    /// The file's name and the peer's framing argument.
    name: &'static str,
    /// The Wireshark protocol: the filter prefix.
    proto: &'static str,
    /// Its fields, in wire order, as the peer names them.
    fields: &'static [&'static str],
    /// The echo key (the peer's frame counter) and the body.
    key: &'static str,
    body: &'static str,
    /// The info column of the first request (`hello`, key 1).
    first_info: &'static str,
    /// Per damage: frames tshark decodes client to server, and the codes.
    damages: &'static [(&'static str, usize, &'static [&'static str])],
}

const CASES: &[Case] = &[
    Case {
        name: "le16",
        proto: "le16",
        fields: &["version", "order", "len", "data"],
        key: "order",
        body: "data",
        first_info: "le16 order=1 len=5 \"hello\"",
        damages: &[
            // No checksum field: the flipped body byte is just data.
            ("checksum", 2, &[]),
            ("constant", 2, &["framing.constant"]),
            // 0xFFFF is within max_body (65535): a frame that never ends.
            ("length", 1, &[]),
        ],
    },
    Case {
        name: "crc-trailer",
        proto: "crc_trailer",
        fields: &["version", "seq", "length", "payload", "crc"],
        key: "seq",
        body: "payload",
        first_info: "crc-trailer version=1 seq=1 length=5 payload=\"hello\" crc=2351254198",
        damages: &[
            ("checksum", 2, &["framing.checksum"]),
            // version has `expect` (reported, decoded) and the CRC covers it.
            (
                "constant",
                2,
                &["framing.unexpected_value", "framing.checksum"],
            ),
            // 0xFFFF is within max_body (65535): a frame that never ends.
            ("length", 1, &[]),
        ],
    },
    Case {
        name: "typed",
        proto: "typed",
        fields: &["version", "kind", "length", "body"],
        key: "kind",
        body: "body",
        first_info: "typed type=1 length=5 \"hello\"",
        damages: &[
            ("checksum", 2, &[]),
            ("constant", 2, &["framing.constant"]),
            ("length", 2, &["framing.length_over_max"]),
        ],
    },
];

/// The messages the peer's client sends, in order (no `|` or `,`: tshark
/// joins occurrences with them).
const MESSAGES: &[&str] = &["hello", "wor ld", "", "olá"];

/// Sent in two segments with a pause between them.
const SPLIT: &str = "one frame, two segments";

/// A child process killed when dropped.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn python_present() -> bool {
    Command::new("python3").arg("--version").output().is_ok()
}

/// The JSON lines the peer printed.
fn peer_run(args: &[&str]) -> Vec<Value> {
    let out = Command::new("python3")
        .arg(peer("framed_peer.py"))
        .args(args)
        .output()
        .expect("run framed_peer.py");
    assert!(
        out.status.success(),
        "framed_peer.py {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("peer prints JSON lines"))
        .collect()
}

/// A value as tshark prints it, bytes fields as plain hex: tshark 4.0 may
/// put `:` between bytes, and prints an empty bytes field (present, zero
/// bytes long) as `<MISSING>`.
fn tshark_bytes(s: &str) -> String {
    if s == "<MISSING>" {
        return String::new();
    }
    s.replace(':', "")
}

/// Bytes in lowercase hex, as a bytes field shows them.
fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap())
        .collect()
}

/// One frame's fields as text: integers in decimal, the body in hex (a
/// bytes field).
type Fields = BTreeMap<String, String>;

/// A frame as the peer printed it.
fn peer_fields(case: &Case, v: &Value) -> Fields {
    case.fields
        .iter()
        .map(|f| {
            let text = if *f == case.body {
                v[*f].as_str().unwrap().to_ascii_lowercase()
            } else {
                v[*f].as_u64().unwrap().to_string()
            };
            ((*f).to_string(), text)
        })
        .collect()
}

/// A frame as tshark shows it.
#[derive(Debug, Default)]
struct Seen {
    src: u16,
    dst: u16,
    /// Segments the frame's packet reassembled (0: one).
    segments: u32,
    fields: Vec<Fields>,
    info: String,
    codes: BTreeSet<String>,
}

/// The diagnostic codes in expert messages: `[framing.checksum] ...`.
fn codes_of(experts: &str) -> BTreeSet<String> {
    experts
        .split('[')
        .skip(1)
        .filter_map(|s| s.split_once(']').map(|(code, _)| code.to_string()))
        .collect()
}

/// Runs tshark on `pcap` with the dissector `lua`; the packets it gave to
/// the protocol, and its stderr without the note about running as root.
fn tshark_frames(case: &Case, lua: &str, pcap: &str, port: u16) -> (Vec<Seen>, String) {
    let mut args: Vec<String> = [
        "-r",
        pcap,
        "-X",
        &format!("lua_script:{lua}"),
        "-d",
        &format!("tcp.port=={port},{}", case.proto),
        "-o",
        "tcp.reassemble_out_of_order:TRUE",
        "-Y",
        case.proto,
        "-T",
        "fields",
        "-E",
        "aggregator=|",
        "-e",
        "tcp.srcport",
        "-e",
        "tcp.dstport",
        "-e",
        "tcp.segment.count",
        "-e",
        "_ws.col.Info",
        "-e",
        "_ws.expert.message",
    ]
    .iter()
    .map(ToString::to_string)
    .collect();
    for f in case.fields {
        args.extend(["-e".to_string(), format!("{}.{f}", case.proto)]);
    }
    let out = Command::new("tshark").args(&args).output().unwrap();
    let err: String = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| !l.starts_with("Running as user"))
        .collect();
    assert!(out.status.success(), "tshark {args:?}: {err}");
    // A Lua error while dissecting is an expert info, not stderr.
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains("Lua Error"), "{}: {text}", case.name);
    let seen = text
        .lines()
        .map(|line| {
            let cols: Vec<&str> = line.split('\t').collect();
            assert_eq!(cols.len(), 5 + case.fields.len(), "{line}");
            let values: Vec<Vec<&str>> = cols[5..].iter().map(|c| c.split('|').collect()).collect();
            let n = values[0].len();
            let fields = (0..n)
                .map(|i| {
                    case.fields
                        .iter()
                        .zip(&values)
                        .map(|(f, v)| ((*f).to_string(), tshark_bytes(v.get(i).unwrap_or(&""))))
                        .collect()
                })
                .collect();
            Seen {
                src: cols[0].parse().unwrap(),
                dst: cols[1].parse().unwrap(),
                segments: cols[2].parse().unwrap_or(0),
                fields,
                info: cols[3].to_string(),
                codes: codes_of(cols[4]),
            }
        })
        .collect();
    (seen, err)
}

/// Sends `frame` to `port` in two writes with a pause between them, and
/// reads its echo back.
fn send_split(port: u16, frame: &[u8]) -> (u16, Vec<u8>) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_nodelay(true).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let (a, b) = frame.split_at(frame.len() / 2);
    s.write_all(a).unwrap();
    std::thread::sleep(Duration::from_millis(150));
    s.write_all(b).unwrap();
    let mut echo = vec![0; frame.len()];
    s.read_exact(&mut echo).unwrap();
    (s.local_addr().unwrap().port(), echo)
}

#[test]
fn tshark_with_a_framings_dissector_reads_what_the_python_peer_sent() {
    let test = "tshark_with_a_framings_dissector_reads_what_the_python_peer_sent";
    if !have_prerequisite(tshark_present(), test, "tshark")
        || !have_prerequisite(python_present(), test, "python3")
    {
        return;
    }
    let Some(_one_at_a_time) = live_capture(test) else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("rc1-framing-diss-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut failures = Vec::new();
    for case in CASES {
        let file = format!("{FRAMINGS}/{}.toml", case.name);
        let lua = dir.join(format!("{}.lua", case.name));
        let lua_s = lua.to_str().unwrap();
        let out = run(&["dissector", "--framing", &file, "-o", lua_s, "-q"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );

        let mut server = Killed(
            Command::new("python3")
                .arg(peer("framed_peer.py"))
                .args(["server", case.name])
                .stdout(Stdio::piped())
                .spawn()
                .unwrap(),
        );
        let mut first = String::new();
        let mut server_out = BufReader::new(server.0.stdout.take().unwrap());
        server_out.read_line(&mut first).unwrap();
        // The server prints every frame: keep reading so it never blocks
        // or dies on a closed pipe.
        let drain_server =
            std::thread::spawn(move || std::io::copy(&mut server_out, &mut std::io::sink()));
        let port = serde_json::from_str::<Value>(&first).unwrap()["port"]
            .as_u64()
            .unwrap() as u16;
        let pcap = dir.join(format!("{}.pcap", case.name));
        let pcap_s = pcap.to_str().unwrap();
        let mut cap = Killed(
            rc1()
                .args(["capture", "-i", "lo", "-f", &format!("tcp port {port}")])
                .args(["-w", pcap_s, "-q"])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap(),
        );
        let mut line = String::new();
        let mut cap_err = BufReader::new(cap.0.stderr.take().unwrap());
        cap_err.read_line(&mut line).unwrap();
        assert!(line.contains("capturing on lo"), "{line}");
        let drain_cap =
            std::thread::spawn(move || std::io::copy(&mut cap_err, &mut std::io::sink()));
        std::thread::sleep(Duration::from_millis(200));

        let port_s = port.to_string();
        let mut client_args = vec!["client", case.name, &port_s];
        client_args.extend(MESSAGES);
        let said = peer_run(&client_args);
        let client_port = said[0]["local_port"].as_u64().unwrap() as u16;
        let want: Vec<Fields> = said[1..].iter().map(|v| peer_fields(case, v)).collect();
        assert_eq!(want.len(), MESSAGES.len());

        // `encode` prints the frame's bytes as bare hex.
        let out = Command::new("python3")
            .arg(peer("framed_peer.py"))
            .args(["encode", case.name, "9", SPLIT])
            .output()
            .unwrap();
        assert!(out.status.success());
        let split_frame = unhex(String::from_utf8_lossy(&out.stdout).trim());
        let (split_port, echo) = send_split(port, &split_frame);
        assert_eq!(
            echo, split_frame,
            "{}: the peer echoes the split frame",
            case.name
        );

        let mut damaged = Vec::new();
        for (what, frames, codes) in case.damages {
            let said = peer_run(&["damage", case.name, &port_s, what]);
            let p = said[0]["local_port"].as_u64().unwrap() as u16;
            damaged.push((p, *what, *frames, *codes));
        }
        std::thread::sleep(Duration::from_millis(300));
        ctrl_c_and_wait(&mut cap.0);
        drop(server);
        let _ = drain_server.join();
        let _ = drain_cap.join();

        let (seen, err) = tshark_frames(case, lua_s, pcap_s, port);
        if !err.is_empty() {
            failures.push(format!("{}: tshark said on stderr: {err}", case.name));
        }
        let frames = |from: u16, to: u16| -> Vec<&Seen> {
            seen.iter()
                .filter(|s| s.src == from && s.dst == to)
                .collect()
        };
        let fields = |v: &[&Seen]| -> Vec<Fields> {
            v.iter().flat_map(|s| s.fields.iter().cloned()).collect()
        };
        // The client's frames and their echoes, field by field.
        let requests = frames(client_port, port);
        for (dir, got) in [
            ("requests", fields(&requests)),
            ("echoes", fields(&frames(port, client_port))),
        ] {
            if got != want {
                failures.push(format!(
                    "{}: {dir} differ from the peer's\n  tshark: {got:?}\n  peer:   {want:?}",
                    case.name
                ));
            }
        }
        match requests.first() {
            Some(s) if s.info == case.first_info => {}
            other => failures.push(format!(
                "{}: info column {:?}, want {:?}",
                case.name,
                other.map(|s| &s.info),
                case.first_info
            )),
        }
        if requests
            .iter()
            .chain(&frames(port, client_port))
            .any(|s| !s.codes.is_empty())
        {
            failures.push(format!("{}: expert info on good frames", case.name));
        }
        // The split frame: reassembled from two segments, its fields right.
        let split = frames(split_port, port);
        let ok = split.len() == 1
            && split[0].segments >= 2
            && split[0].fields.len() == 1
            && split[0].fields[0].get(case.key).map(String::as_str) == Some("9")
            && split[0].fields[0].get(case.body).map(String::as_str)
                == Some(hex(SPLIT.as_bytes()).as_str())
            && fields(&frames(port, split_port)) == split[0].fields;
        if !ok {
            failures.push(format!(
                "{}: the frame sent in two segments is not one reassembled frame: {split:?}",
                case.name
            ));
        }
        // Damaged frames: the good one first, then the bad one's codes.
        for (p, what, n, codes) in damaged {
            let got = frames(p, port);
            let all = fields(&got);
            let codes_got: BTreeSet<String> =
                got.iter().flat_map(|s| s.codes.iter().cloned()).collect();
            let codes_want: BTreeSet<String> = codes.iter().map(ToString::to_string).collect();
            let good_first = all.first().is_some_and(|f| {
                f.get(case.key).map(String::as_str) == Some("1")
                    && f.get(case.body).map(String::as_str) == Some(hex(b"good").as_str())
            });
            if all.len() != n || !good_first || codes_got != codes_want {
                failures.push(format!(
                    "{} damage {what}: {} frames (want {n}), codes {codes_got:?} (want \
                     {codes_want:?}), good frame first: {good_first}: {got:?}",
                    case.name,
                    all.len()
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn install_and_check_a_framings_dissector_in_a_fresh_home() {
    let test = "install_and_check_a_framings_dissector_in_a_fresh_home";
    let home = std::env::temp_dir().join(format!("rc1-home-framing-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&home);
    std::fs::create_dir_all(&home).unwrap();
    let file = format!("{FRAMINGS}/le16.toml");
    let rc1_in_home = |args: &[&str], path: Option<&str>| {
        let mut c = rc1();
        c.args(args).env("HOME", &home);
        if let Some(p) = path {
            c.env("PATH", p);
        }
        c.output().unwrap()
    };
    let err = |o: &std::process::Output| String::from_utf8_lossy(&o.stderr).into_owned();
    let lua = run(&["dissector", "--framing", &file]);
    assert!(lua.status.success(), "{}", err(&lua));
    let text = String::from_utf8(lua.stdout).unwrap();
    assert!(text.starts_with("-- le16.lua: Wireshark dissector for the framing le16"));
    // Without tshark: the documented default folder, named after the framing.
    let out = rc1_in_home(
        &["dissector", "--framing", &file, "--install", "--json"],
        Some("/nonexistent"),
    );
    assert!(out.status.success(), "{}", err(&out));
    let installed = home.join(".local/lib/wireshark/plugins/le16.lua");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["path"].as_str(), installed.to_str());
    assert_eq!(v["bytes"].as_u64(), Some(text.len() as u64));
    assert_eq!(std::fs::read_to_string(&installed).unwrap(), text);
    // A bad framing file: its mistake and status 1, as `rc1 framing check`.
    let bad = home.join("bad.toml");
    std::fs::write(&bad, "name = \"Bad Name\"\nstruct = \"!B\"\n").unwrap();
    let out = run(&["dissector", "--framing", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        err(&out).starts_with(&format!("rc1 dissector: {}:1:", bad.display())),
        "{}",
        err(&out)
    );
    if have_prerequisite(tshark_present(), test, "tshark") {
        let _ = std::fs::remove_dir_all(home.join(".local"));
        let out = rc1_in_home(&["dissector", "--framing", &file, "--check"], None);
        assert_eq!(out.status.code(), Some(1));
        assert!(
            err(&out).contains(&format!("rc1 dissector --framing {file} --install")),
            "{}",
            err(&out)
        );
        let out = rc1_in_home(&["dissector", "--framing", &file, "--install"], None);
        assert!(out.status.success(), "{}", err(&out));
        let out = rc1_in_home(
            &["dissector", "--framing", &file, "--check", "--json"],
            None,
        );
        assert!(out.status.success(), "{}", err(&out));
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert!(v["plugin"].as_str().unwrap().contains("le16.lua"), "{v}");
        let fields: Vec<&str> = v["fields"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        for f in [
            "le16.version",
            "le16.order",
            "le16.len",
            "le16.data",
            "le16.framing.constant",
        ] {
            assert!(fields.contains(&f), "no {f} in {v}");
        }
        assert_eq!(v["current"], true, "{v}");
        // The v2/v3 dissector is not installed: its check still says so.
        let out = rc1_in_home(&["dissector", "--check"], None);
        assert_eq!(out.status.code(), Some(1));
    }
    let _ = std::fs::remove_dir_all(&home);
}

/// The `rc1.*` frames tshark shows in `pcap` with the Lua `lua`: each
/// frame's version, order, size and message, sorted (the packets that
/// carry them may differ: rc1.lua holds a lone request for its echo).
/// `message_hex`: the message is a bytes field (the generic dissector's),
/// shown here as tshark shows a string (rc1.lua's): lossy UTF-8.
fn rc1_frames(lua: &str, pcap: &str, message_hex: bool) -> (Vec<[String; 4]>, String) {
    let out = Command::new("tshark")
        .args(["-r", pcap, "-X", &format!("lua_script:{lua}")])
        .args(["-o", "tcp.reassemble_out_of_order:TRUE", "-Y", "rc1"])
        .args(["-T", "fields", "-E", "aggregator=\u{1f}"])
        .args(["-e", "tcp.srcport", "-e", "rc1.version", "-e", "rc1.order"])
        .args([
            "-e",
            "rc1.size",
            "-e",
            "rc1.message",
            "-e",
            "_ws.expert.message",
        ])
        .output()
        .unwrap();
    let err: String = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| !l.starts_with("Running as user"))
        .collect();
    let mut frames = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let cols: Vec<Vec<&str>> = line
            .split('\t')
            .map(|c| c.split('\u{1f}').collect())
            .collect();
        assert_eq!(cols.len(), 6, "{line}");
        // A Lua error while dissecting is an expert info, not stderr.
        assert!(
            !cols[5].iter().any(|e| e.contains("Lua Error")),
            "{lua}: {line:.200}"
        );
        for i in 0..cols[2].len() {
            let at = |c: usize| cols[c].get(i).unwrap_or(&"").to_string();
            let message = if message_hex {
                String::from_utf8_lossy(&unhex(&tshark_bytes(&at(4)))).into_owned()
            } else {
                at(4)
            };
            frames.push([at(1), at(2), at(3), message]);
        }
    }
    frames.sort();
    (frames, err)
}

#[test]
fn the_generic_dissector_of_v2_and_v3_reads_what_rc1_lua_reads() {
    let test = "the_generic_dissector_of_v2_and_v3_reads_what_rc1_lua_reads";
    if !have_prerequisite(tshark_present(), test, "tshark") {
        return;
    }
    let dir = std::env::temp_dir().join(format!("rc1-generic-v2v3-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let rc1_lua = concat!(env!("CARGO_MANIFEST_DIR"), "/dissectors/rc1.lua");
    // v2: fixed 29-byte frames (no length field); v3: a header and a body.
    for (framing, pcap, frames) in [("v2", "v2-echo.pcap", 8), ("v3", "v3-echo.pcap", 14)] {
        let lua = dir.join(format!("{framing}.lua"));
        let lua_s = lua.to_str().unwrap();
        let out = run(&["dissector", "--framing", framing, "-o", lua_s, "-q"]);
        assert!(out.status.success());
        let pcap = format!("{}/fixtures/{pcap}", env!("CARGO_MANIFEST_DIR"));
        // rc1.lua's message is a string; the generic dissector's bytes.
        let (want, _) = rc1_frames(rc1_lua, &pcap, false);
        let (got, err) = rc1_frames(lua_s, &pcap, true);
        assert!(err.is_empty(), "{framing}: tshark said {err}");
        assert!(
            want.len() >= frames,
            "{framing}: rc1.lua shows {} frames",
            want.len()
        );
        assert_eq!(got.len(), want.len(), "{framing}: frames");
        for (a, b) in got.iter().zip(&want) {
            assert!(
                a == b,
                "{framing}: generic {:.80?} vs rc1.lua {:.80?}",
                a.join(" "),
                b.join(" ")
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A framing with every other shape: signed and 64-bit little-endian
/// integers, an `Ns` field without a length (shown whole, padding
/// included; its content in the info column), a body and an Internet
/// checksum trailer.
const WIDE: &str = r#"
name = "wide"
byte_order = "<"
echo_key = "c"
port = 5007
max_body = 100
show = "a={a} c={c} d={d} tag={tag} \"{body}\""

[[field]]
name = "a"
type = "b"

[[field]]
name = "c"
type = "q"

[[field]]
name = "d"
type = "Q"

[[field]]
name = "tag"
type = "4s"

[[field]]
name = "length"
type = "H"

[[field]]
name = "body"
type = "body"
length = "length"

[[field]]
name = "sum"
type = "H"
checksum = "internet"
over = ["a", "c", "d", "tag", "length", "body"]
"#;

/// The frames of [`WIDE`], built with Python's `struct` (the last one with
/// a wrong checksum), one hex line each.
const WIDE_FRAMES_PY: &str = r#"
import struct
def inet(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF
def frame(a, c, d, tag, body, bad=False):
    head = struct.pack("<bqQ4sH", a, c, d, tag, len(body))
    return head + body + struct.pack("<H", inet(head + body) ^ (1 if bad else 0))
print(frame(-5, -1234567890123, 18446744073709551615, b"ab", b"hi there").hex())
print(frame(127, 9007199254740993, 1, b"full", b"").hex())
print(frame(-128, 0, 0, b"", b"a frame cut in two", True).hex())
"#;

#[test]
fn signed_64_bit_padded_fields_and_an_internet_checksum_read_as_python_packed_them() {
    let test = "signed_64_bit_padded_fields_and_an_internet_checksum_read_as_python_packed_them";
    if !have_prerequisite(tshark_present(), test, "tshark")
        || !have_prerequisite(python_present(), test, "python3")
    {
        return;
    }
    let dir = std::env::temp_dir().join(format!("rc1-wide-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let toml = dir.join("wide.toml");
    std::fs::write(&toml, WIDE).unwrap();
    let lua = dir.join("wide.lua");
    let out = run(&[
        "dissector",
        "--framing",
        toml.to_str().unwrap(),
        "-o",
        lua.to_str().unwrap(),
        "-q",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let py = Command::new("python3")
        .args(["-c", WIDE_FRAMES_PY])
        .output()
        .unwrap();
    assert!(
        py.status.success(),
        "{}",
        String::from_utf8_lossy(&py.stderr)
    );
    let frames: Vec<Vec<u8>> = String::from_utf8_lossy(&py.stdout)
        .lines()
        .map(unhex)
        .collect();
    let mut two = frames[0].clone();
    two.extend_from_slice(&frames[1]);
    let (cut_a, cut_b) = frames[2].split_at(10);
    // Two frames in one segment, then one across two; on the file's port.
    let pcap = dir.join("wide.pcap");
    std::fs::write(
        &pcap,
        crate::util::tcp_pcap(5007, &[(true, &two), (true, cut_a), (true, cut_b)]),
    )
    .unwrap();
    let fields = ["a", "c", "d", "tag", "length", "body", "sum"];
    let tshark = |extra: &[&str]| {
        let mut c = Command::new("tshark");
        c.args(["-r", pcap.to_str().unwrap()])
            .arg("-X")
            .arg(format!("lua_script:{}", lua.display()))
            .args(extra)
            .args(["-Y", "wide", "-T", "fields", "-E", "aggregator=\u{1f}"])
            .args(["-e", "_ws.col.Info", "-e", "_ws.expert.message"]);
        for f in fields {
            c.args(["-e", &format!("wide.{f}")]);
        }
        let out = c.output().unwrap();
        let err: String = String::from_utf8_lossy(&out.stderr)
            .lines()
            .filter(|l| !l.starts_with("Running as user"))
            .collect();
        assert!(out.status.success(), "{err}");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        // A Lua error while dissecting is an expert info, not stderr.
        assert!(!text.contains("Lua Error"), "{text}");
        (text, err)
    };
    let (text, err) = tshark(&[]);
    assert!(err.is_empty(), "tshark said: {err}");
    let mut got: Vec<Vec<String>> = Vec::new();
    let mut infos = Vec::new();
    let mut experts = Vec::new();
    for line in text.lines() {
        let cols: Vec<Vec<&str>> = line
            .split('\t')
            .map(|c| c.split('\u{1f}').collect())
            .collect();
        infos.push(cols[0][0].to_string());
        experts.push(cols[1][0].to_string());
        for i in 0..cols[2].len() {
            got.push(
                cols[2..]
                    .iter()
                    .map(|c| tshark_bytes(c.get(i).unwrap_or(&"")))
                    .collect(),
            );
        }
    }
    let sum = |f: &[u8]| u16::from_le_bytes([f[f.len() - 2], f[f.len() - 1]]).to_string();
    let want: Vec<Vec<String>> = [
        [
            "-5",
            "-1234567890123",
            "18446744073709551615",
            "61620000",
            "8",
            "6869207468657265", // "hi there"
        ],
        ["127", "9007199254740993", "1", "66756c6c", "0", ""],
        [
            "-128",
            "0",
            "0",
            "00000000",
            "18",
            "61206672616d652063757420696e2074776f", // "a frame cut in two"
        ],
    ]
    .iter()
    .zip(&frames)
    .map(|(w, f)| w.iter().map(ToString::to_string).chain([sum(f)]).collect())
    .collect();
    assert_eq!(got, want);
    assert_eq!(infos.len(), 2, "{infos:?}");
    assert_eq!(
        infos[0],
        "wide a=-5 c=-1234567890123 d=18446744073709551615 tag=ab \"hi there\" ; \
         wide a=127 c=9007199254740993 d=1 tag=full \"\""
    );
    assert!(experts[0].is_empty(), "{experts:?}");
    assert!(
        experts[1].starts_with("[framing.checksum] sum is 0x"),
        "{experts:?}"
    );
    // Desegmentation off: the cut frame is not whole, and no Lua error.
    let (_, err) = tshark(&["-o", "tcp.desegment_tcp_streams:FALSE"]);
    assert!(err.is_empty(), "tshark said: {err}");
    let _ = std::fs::remove_dir_all(&dir);
}
