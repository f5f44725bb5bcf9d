//! `rc1 server/client/flood --framing FILE` for the three framings of
//! `fixtures/framings/` that no code of rc1 knows, against the independent
//! Python peer (`tests/peers/framed_peer.py`, written with `struct` and
//! `zlib` from the framings' descriptions) in both directions, against
//! damaged frames, and under a flood.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};

use serde_json::Value;

use crate::util::{Server, WAIT, json_lines, peer, run, run_with_stdin, stderr, stdout};

const FRAMINGS: [&str; 3] = ["le16", "crc-trailer", "typed"];

fn file(name: &str) -> String {
    format!(
        "{}/fixtures/framings/{name}.toml",
        env!("CARGO_MANIFEST_DIR")
    )
}

/// Each framing's echo key, length and body fields, by the names its file
/// (and the Python peer) gives them.
fn names(framing: &str) -> (&'static str, &'static str, &'static str) {
    match framing {
        "le16" => ("order", "len", "data"),
        "crc-trailer" => ("seq", "length", "payload"),
        "typed" => ("kind", "length", "body"),
        other => panic!("no framing {other}"),
    }
}

/// The Python peer's encoding of one frame, as hex.
fn python_encode(framing: &str, key: u64, msg: &str) -> String {
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
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out).trim().to_string()
}

fn have_python(test: &str) -> bool {
    let ok = Command::new("python3")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    crate::util::have_prerequisite(ok, test, "python3")
}

/// `framed_peer.py server FRAMING`, killed when dropped.
struct PyServer {
    child: Child,
    port: u16,
    lines: Receiver<Value>,
}

impl PyServer {
    fn start(framing: &str) -> PyServer {
        let mut child = Command::new("python3")
            .args([&peer("framed_peer.py"), "server", framing])
            .stdout(Stdio::piped())
            .stdin(Stdio::null())
            .spawn()
            .expect("start the python peer");
        let out = child.stdout.take().expect("stdout");
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                let v: Value = serde_json::from_str(&line).expect("peer prints JSON");
                if tx.send(v).is_err() {
                    break;
                }
            }
        });
        let mut s = PyServer {
            child,
            port: 0,
            lines,
        };
        s.port = u16::try_from(s.next()["port"].as_u64().expect("port line")).unwrap();
        s
    }

    /// The next line it printed (bounded wait).
    fn next(&mut self) -> Value {
        self.lines
            .recv_timeout(WAIT)
            .expect("the python peer printed nothing in time")
    }
}

impl Drop for PyServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const MESSAGES: [&str; 3] = ["hello", "", "wörld, \"quoted\""];

#[test]
fn rc1_client_against_the_python_server_sends_the_bytes_struct_makes() {
    if !have_python("rc1_client_against_the_python_server") {
        return;
    }
    for framing in FRAMINGS {
        let (key, len, body) = names(framing);
        let mut py = PyServer::start(framing);
        let port = py.port.to_string();
        let path = file(framing);
        let mut args = vec!["client", "--framing", &path, "--port", &port, "--json"];
        for m in MESSAGES {
            args.extend(["-m", m]);
        }
        let out = run(&args);
        assert!(out.status.success(), "{framing}: {}", stderr(&out));
        let events = json_lines(&out);
        let sent: Vec<&Value> = events.iter().filter(|e| e["event"] == "sent").collect();
        let echoes: Vec<&Value> = events.iter().filter(|e| e["event"] == "echo").collect();
        assert_eq!(sent.len(), MESSAGES.len(), "{framing}: {events:#?}");
        assert_eq!(echoes.len(), MESSAGES.len(), "{framing}: {events:#?}");
        for (i, m) in MESSAGES.iter().enumerate() {
            let n = i as u64 + 1;
            let got = py.next();
            let what = format!(
                "{framing} message {n}: python saw {got}, rc1 sent {}",
                sent[i]
            );
            // The bytes on the wire: what Python's struct makes of it.
            assert_eq!(got["raw"], python_encode(framing, n, m), "{what}");
            assert_eq!(got["raw"], sent[i]["raw_hex"], "{what}");
            // Field by field, as struct decoded them and as rc1 says.
            assert_eq!(got[key], n, "{what}");
            assert_eq!(got[len], m.len(), "{what}");
            assert_eq!(got[body], hex(m.as_bytes()), "{what}");
            let f = &sent[i]["fields"];
            assert_eq!(f[key], n, "{what}");
            assert_eq!(f[len], m.len(), "{what}");
            assert_eq!(f[body]["text"], *m, "{what}");
            assert_eq!(f[body]["hex"], hex(m.as_bytes()), "{what}");
            if framing == "crc-trailer" {
                assert_eq!(got["crc_ok"], true, "{what}");
                assert_eq!(f["crc"], got["crc"], "{what}");
            }
            // The echo came back whole and equal, echo key included.
            assert_eq!(echoes[i]["ok"], true, "{what}");
            assert_eq!(echoes[i]["raw_hex"], got["raw"], "{what}");
            assert_eq!(echoes[i]["fields"][key], n, "{what}");
        }
    }
}

#[test]
fn the_python_client_against_rc1_server_gets_every_frame_echoed_byte_for_byte() {
    if !have_python("the_python_client_against_rc1_server") {
        return;
    }
    for framing in FRAMINGS {
        let (key, len, body) = names(framing);
        let mut server = Server::start(&["--framing", &file(framing)]);
        let listening = server.wait_for(|e| e["event"] == "listening");
        assert_eq!(listening["proto"], framing);
        let out = Command::new("python3")
            .args([&peer("framed_peer.py"), "client", framing, &server.port()])
            .args(MESSAGES)
            .output()
            .expect("run python3");
        assert!(
            out.status.success(),
            "{framing}: {}{}",
            stdout(&out),
            stderr(&out)
        );
        let lines = json_lines(&out);
        let echoes: Vec<&Value> = lines.iter().filter(|l| l.get("raw").is_some()).collect();
        assert_eq!(echoes.len(), MESSAGES.len(), "{framing}: {lines:#?}");
        let frames = server.wait_count(MESSAGES.len(), |e| e["event"] == "frame");
        for (i, m) in MESSAGES.iter().enumerate() {
            let n = i as u64 + 1;
            let (echo, frame) = (echoes[i], &frames[i]);
            let what = format!("{framing} message {n}: python got {echo}, rc1 logged {frame}");
            assert_eq!(echo["echo_ok"], true, "{what}");
            assert_eq!(echo["raw"], python_encode(framing, n, m), "{what}");
            assert_eq!(frame["raw_hex"], echo["raw"], "{what}");
            assert_eq!(frame["framing"], framing, "{what}");
            assert_eq!(frame["order"], n, "{what}");
            assert_eq!(frame["message"], *m, "{what}");
            assert_eq!(frame["diagnostics"], serde_json::json!([]), "{what}");
            let f = &frame["fields"];
            assert_eq!(f[key], echo[key], "{what}");
            assert_eq!(f[len], echo[len], "{what}");
            assert_eq!(f[body]["hex"], echo[body], "{what}");
            assert_eq!(f["version"], echo["version"], "{what}");
            if framing == "crc-trailer" {
                assert_eq!(f["crc"], echo["crc"], "{what}");
            }
        }
    }
}

/// What rc1's server must make of `framed_peer.py damage FRAMING PORT WHAT`
/// (one good frame, then a damaged one): the code that closes the
/// connection, or `None` when the damage leaves a valid frame.
fn damage_cases() -> Vec<(&'static str, &'static str, Option<&'static str>)> {
    vec![
        ("crc-trailer", "checksum", Some("framing.checksum")),
        // Its version is only `expect`ed, but the CRC covers it.
        ("crc-trailer", "constant", Some("framing.checksum")),
        // 0xFFFF is within its max_body (65535): the frame is waited for,
        // and the client leaves inside it.
        ("crc-trailer", "length", Some("frame.truncated")),
        ("le16", "constant", Some("framing.constant")),
        // 0xFFFF is its max_body: believed, then cut short.
        ("le16", "length", Some("frame.truncated")),
        ("typed", "constant", Some("framing.constant")),
        ("typed", "length", Some("framing.length_over_max")),
        // No checksum in these: the flipped byte is the body's last, data.
        ("le16", "checksum", None),
        ("typed", "checksum", None),
    ]
}

#[test]
fn a_damaged_frame_closes_its_connection_with_its_code_and_others_are_still_served() {
    if !have_python("a_damaged_frame_closes_its_connection") {
        return;
    }
    for (framing, what, code) in damage_cases() {
        let case = format!("{framing} {what}");
        let mut server = Server::start(&["--framing", &file(framing)]);
        let out = Command::new("python3")
            .args([
                &peer("framed_peer.py"),
                "damage",
                framing,
                &server.port(),
                what,
            ])
            .output()
            .expect("run python3");
        assert!(out.status.success(), "{case}: {}", stderr(&out));
        let first = json_lines(&out)[0].clone();
        let local = format!("127.0.0.1:{}", first["local_port"]);
        let close = server.wait_for(|e| e["event"] == "close" && e["peer"] == local.as_str());
        // The good frame before the damage was served.
        let good = server.wait_for(|e| e["event"] == "frame" && e["peer"] == local.as_str());
        assert_eq!(good["raw_hex"], first["good"], "{case}");
        match code {
            Some(code) => {
                let err = server.wait_for(|e| e["event"] == "error" && e["peer"] == local.as_str());
                assert_eq!(err["code"], code, "{case}: {err}");
                let reason = if code == "frame.truncated" {
                    "client closed mid-frame".to_string()
                } else {
                    format!("closed by the server: {code}")
                };
                assert_eq!(close["reason"], reason.as_str(), "{case}: {close}");
                assert_eq!(close["messages"], 1, "{case}: {close}");
            }
            None => {
                assert_eq!(close["reason"], "client closed", "{case}: {close}");
                assert_eq!(close["messages"], 2, "{case}: {close}");
                assert!(
                    !server.seen.iter().any(|e| e["event"] == "error"),
                    "{case}: {:#?}",
                    server.seen
                );
            }
        }
        // Another client is still served.
        let out = run(&[
            "client",
            "--framing",
            &file(framing),
            "--port",
            &server.port(),
            "-m",
            "after",
            "--json",
        ]);
        assert!(out.status.success(), "{case}: {}", stderr(&out));
        let echo = json_lines(&out)
            .into_iter()
            .find(|e| e["event"] == "echo")
            .expect("an echo");
        assert_eq!(echo["ok"], true, "{case}");
        assert_eq!(echo["message"], "after", "{case}");
    }
}

#[test]
fn an_expect_finding_is_logged_and_the_frame_still_echoed() {
    let mut server = Server::start(&["--framing", &file("crc-trailer")]);
    let out = run(&[
        "client",
        "--framing",
        &file("crc-trailer"),
        "--port",
        &server.port(),
        "--version",
        "2",
        "-m",
        "v2?",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("echo crc-trailer version=2 seq=1"),
        "{}",
        stdout(&out)
    );
    let frame = server.wait_for(|e| e["event"] == "frame");
    assert_eq!(frame["fields"]["version"], 2);
    assert_eq!(
        frame["diagnostics"],
        serde_json::json!(["framing.unexpected_value"])
    );
    let close = server.wait_for(|e| e["event"] == "close");
    assert_eq!(close["reason"], "client closed");
    assert_eq!(close["bytes_out"], close["bytes_in"]);
}

#[test]
fn each_framing_floods_rc1_server_and_every_echo_is_verified() {
    for framing in FRAMINGS {
        let server = Server::start(&["--framing", &file(framing), "-q"]);
        // typed's key is one byte: 2000 requests per connection wrap it
        // several times, with 256 in flight.
        let out = run(&[
            "flood",
            "--framing",
            &file(framing),
            "--port",
            &server.port(),
            "-c",
            "2",
            "-n",
            "4000",
            "--size",
            "0..1500",
            "--json",
            "-q",
        ]);
        let s = json_lines(&out).pop().expect("a summary");
        let what = format!("{framing}: {s} {}", stderr(&out));
        assert!(out.status.success(), "{what}");
        assert_eq!(s["proto"], framing, "{what}");
        for k in ["sent", "echoed", "verified"] {
            assert_eq!(s[k], 4000, "{k} {what}");
        }
        for k in ["mismatched", "missing", "unexpected", "late"] {
            assert_eq!(s[k], 0, "{k} {what}");
        }
        assert_eq!(s["bytes_in"], s["bytes_out"], "{what}");
    }
}

#[test]
fn a_flood_against_the_python_server_is_verified_too() {
    if !have_python("a_flood_against_the_python_server") {
        return;
    }
    for framing in FRAMINGS {
        let py = PyServer::start(framing);
        let out = run(&[
            "flood",
            "--framing",
            &file(framing),
            "--port",
            &py.port.to_string(),
            "-n",
            "600",
            "--size",
            "0..300",
            "--json",
            "-q",
        ]);
        let s = json_lines(&out).pop().expect("a summary");
        assert!(out.status.success(), "{framing}: {s} {}", stderr(&out));
        assert_eq!(s["verified"], 600, "{framing}: {s}");
        assert_eq!(s["mismatched"], 0, "{framing}: {s}");
    }
}

#[test]
fn usage_and_file_errors_are_clear() {
    // A message too long for le16's 16-bit length.
    let server = Server::start(&["--framing", &file("le16")]);
    let mut long = vec![b'x'; 70_000];
    long.push(b'\n');
    let out = run_with_stdin(
        &[
            "client",
            "--framing",
            &file("le16"),
            "--port",
            &server.port(),
        ],
        long,
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("message 1 (70000 bytes) cannot be sent as a le16 frame"),
        "{}",
        stderr(&out)
    );
    // A framing file that does not load: 1, as `rc1 framing check`.
    let dir = std::env::temp_dir().join(format!("rc1-framings-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.toml");
    std::fs::write(
        &bad,
        "name = \"bad\"\n[[field]]\nname = \"x\"\ntype = \"Z\"\n",
    )
    .unwrap();
    let bad = bad.to_str().unwrap();
    for cmd in [
        vec!["server", "--framing", bad],
        vec!["client", "--framing", bad, "-m", "x"],
        vec!["flood", "--framing", bad, "-n", "1"],
    ] {
        let out = run(&cmd);
        assert_eq!(out.status.code(), Some(1), "{cmd:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains(&format!("{bad}:4:")),
            "{cmd:?}: {}",
            stderr(&out)
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
    // --proto and --framing together, --field a computed field, a wide
    // --pipeline for typed's one-byte key: usage errors (2).
    for cmd in [
        vec!["server", "--proto", "v2", "--framing", "v2"],
        vec![
            "client",
            "--framing",
            "le16.toml",
            "--proto",
            "v3",
            "-m",
            "x",
        ],
    ] {
        let out = run(&cmd);
        assert_eq!(out.status.code(), Some(2), "{cmd:?}: {}", stderr(&out));
    }
    let typed = file("typed");
    for (cmd, says) in [
        (
            vec![
                "client",
                "--framing",
                &typed,
                "--field",
                "length=3",
                "-m",
                "x",
            ],
            "rc1 computes length",
        ),
        (
            vec![
                "client",
                "--framing",
                &typed,
                "--field",
                "kind=3",
                "-m",
                "x",
            ],
            "echo key",
        ),
        (
            vec!["flood", "--framing", &typed, "--pipeline", "300", "-n", "1"],
            "only 256 echo key values",
        ),
    ] {
        let out = run(&cmd);
        assert_eq!(out.status.code(), Some(2), "{cmd:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(says), "{cmd:?}: {}", stderr(&out));
    }
}

#[test]
fn framing_v2_is_the_built_in_v2() {
    let mut server = Server::start(&["--framing", "v2"]);
    let listening = server.wait_for(|e| e["event"] == "listening");
    assert_eq!(listening["proto"], "v2");
    let out = run(&[
        "client",
        "--framing",
        "v2",
        "--port",
        &server.port(),
        "-m",
        "hi",
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let frame = server.wait_for(|e| e["event"] == "frame");
    assert_eq!(frame["framing"], "v2");
    // The v2 JSON keeps its shape: no fields of framing files.
    assert!(frame.get("fields").is_none(), "{frame}");
    assert_eq!(frame["message"], "hi");
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn a_flood_counts_a_corrupted_and_a_dropped_custom_echo_exactly() {
    use std::io::{Read, Write};
    // An le16 server that flips a body byte of echo 3 and never sends echo 5.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let server = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(WAIT)).unwrap();
        let mut n = 0;
        let mut head = [0u8; 5];
        while s.read_exact(&mut head).is_ok() {
            let len = usize::from(u16::from_le_bytes([head[3], head[4]]));
            let mut frame = head.to_vec();
            frame.resize(5 + len, 0);
            if s.read_exact(&mut frame[5..]).is_err() {
                break;
            }
            n += 1;
            match n {
                3 => frame[5] ^= 0x20,
                5 => continue,
                _ => {}
            }
            if s.write_all(&frame).is_err() {
                break;
            }
        }
        n
    });
    let out = run(&[
        "flood",
        "--framing",
        &file("le16"),
        "--port",
        &port,
        "-n",
        "20",
        "--size",
        "4",
        "--drain",
        "1s",
        "--json",
        "-q",
    ]);
    let s = json_lines(&out).pop().expect("a summary");
    assert_eq!(out.status.code(), Some(1), "{s}");
    assert_eq!(s["sent"], 20, "{s}");
    assert_eq!(s["echoed"], 19, "{s}");
    assert_eq!(s["verified"], 18, "{s}");
    assert_eq!(s["mismatched"], 1, "{s}");
    assert_eq!(s["missing"], 1, "{s}");
    assert_eq!(server.join().unwrap(), 20);
}
