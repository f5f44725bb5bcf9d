//! `rc1 capture -r` on the shipped fixtures (fixtures/README.md says what
//! each holds and what it must decode to), and the errors a user meets.

use serde_json::Value;

use crate::util::{json_lines, run, stderr, stdout};

fn fixture(name: &str) -> String {
    format!("{}/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// `rc1 capture -r FIXTURE --json`: (exit code, events).
fn decode(name: &str, extra: &[&str]) -> (Option<i32>, Vec<Value>, String) {
    let path = fixture(name);
    let mut args = vec!["capture", "-r", &path, "--json"];
    args.extend_from_slice(extra);
    let out = run(&args);
    (out.status.code(), json_lines(&out), stderr(&out))
}

fn of_type<'a>(ev: &'a [Value], t: &str) -> Vec<&'a Value> {
    ev.iter().filter(|e| e["type"] == t).collect()
}

fn messages(ev: &[Value], dir: &str) -> Vec<String> {
    of_type(ev, "frame")
        .iter()
        .filter(|f| f["dir"] == dir)
        .map(|f| f["message"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn v2_echo_fixture_decodes_the_lab_frames_and_matches_echoes() {
    for file in ["v2-echo.pcap", "v2-echo.pcapng"] {
        let (code, ev, err) = decode(file, &[]);
        assert_eq!(code, Some(0), "{file}: {err}");
        let sent = messages(&ev, "c>s");
        assert_eq!(
            sent,
            [
                "hello",
                "this message is long",
                "exactly twenty chars",
                "",
                "ol\\xC3"
            ],
            "{file}"
        );
        assert_eq!(messages(&ev, "s>c"), sent, "{file}");
        let frames = of_type(&ev, "frame");
        let requests: Vec<_> = frames.iter().filter(|f| f["dir"] == "c>s").collect();
        assert_eq!(requests[1]["size"], 36);
        assert_eq!(requests[1]["cut"], true);
        let echoes: Vec<_> = frames.iter().filter(|f| f["dir"] == "s>c").collect();
        assert_eq!(echoes.len(), 5);
        assert!(
            echoes.iter().all(|f| f["echo"] == "ok"),
            "{file}: every echo matches its request"
        );
        let session = of_type(&ev, "session");
        assert_eq!(session.len(), 1);
        assert_eq!(session[0]["framing"], "v2");
        assert_eq!(session[0]["state"], "SF");
        assert_eq!(session[0]["echoes_ok"], 5);
        assert!(session[0]["handshake_rtt_us"].is_u64());
        assert_eq!(session[0]["server_port"], 5005);
    }
}

#[test]
fn reassembly_cases_decode_as_crafted() {
    // (file, client frames, server frames)
    let cases: &[(&str, &[&str], usize)] = &[
        ("ooo.pcap", &["hello", "out of order message", "third"], 3),
        ("overlap.pcap", &["first", "hello, world", "third"], 3),
        (
            "wraparound.pcap",
            &["hello wrap", "this frame crosses 2^32", "after"],
            3,
        ),
        ("nosyn.pcap", &["captured mid-connection", "third"], 2),
        ("vlan.pcap", &["tagged vlan 100", "second"], 2),
        ("ipv6.pcap", &["hello over IPv6", "second"], 2),
        ("sll2.pcap", &["cooked sll2", "second"], 2),
        ("null.pcap", &["bsd loopback", "second"], 2),
    ];
    for (file, sent, echoes) in cases {
        let (code, ev, err) = decode(file, &[]);
        assert_eq!(code, Some(0), "{file}: {err}");
        assert_eq!(messages(&ev, "c>s"), *sent, "{file}");
        assert_eq!(messages(&ev, "s>c").len(), *echoes, "{file}");
        assert!(of_type(&ev, "diagnostic").is_empty(), "{file}: {ev:#?}");
    }
    let (_, ev, _) = decode("retransmission.pcap", &[]);
    let s = &of_type(&ev, "session")[0];
    assert_eq!(s["to_server"]["retransmitted_segments"], 1);
    assert_eq!(s["to_server"]["retransmitted_bytes"], 29);
    assert_eq!(
        messages(&ev, "c>s").len(),
        3,
        "the copy is not decoded twice"
    );
}

#[test]
fn overlap_conflict_keeps_the_first_copy_and_says_so() {
    let (_, ev, _) = decode("overlap-conflict.pcap", &[]);
    assert_eq!(messages(&ev, "c>s"), ["first", "hello, world", "third"]);
    let d = of_type(&ev, "diagnostic");
    assert_eq!(d.len(), 1, "{d:#?}");
    assert_eq!(d[0]["code"], "tcp.overlap_conflict");
    assert!(d[0]["message"].as_str().unwrap().contains("5 byte(s)"));
}

#[test]
fn a_permanent_gap_is_reported_with_its_size_and_frames_around_it_survive() {
    let (_, ev, _) = decode("gap.pcap", &[]);
    let d = of_type(&ev, "diagnostic");
    let gap: Vec<_> = d.iter().filter(|e| e["code"] == "tcp.gap").collect();
    assert_eq!(gap.len(), 1, "{d:#?}");
    let msg = gap[0]["message"].as_str().unwrap();
    assert!(msg.contains("40 byte(s) at stream offset 29"), "{msg}");
    // Frame 2 lost, frame 3 damaged (never decoded from wrong bytes), 4 fine.
    assert_eq!(messages(&ev, "c>s"), ["one", "four"]);
    assert!(d.iter().any(|e| e["code"] == "frame.damaged"));
    let s = &of_type(&ev, "session")[0];
    assert_eq!(s["to_server"]["missed_bytes"], 40);
    assert_eq!(s["echoes_ok"], 2);
}

#[test]
fn an_oversized_v3_claim_is_flagged_and_nothing_after_it_is_trusted() {
    let (_, ev, _) = decode("v3-oversized.pcap", &[]);
    assert_eq!(messages(&ev, "c>s"), ["ok"]);
    let codes: Vec<_> = of_type(&ev, "diagnostic")
        .iter()
        .map(|d| d["code"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(codes, ["v3.size_over_max", "frame.unsynchronised"]);
    assert_eq!(of_type(&ev, "session")[0]["state"], "RST");
}

#[test]
fn split_and_packed_frames() {
    let (_, ev, _) = decode("split-packed.pcap", &[]);
    assert_eq!(
        messages(&ev, "c>s"),
        [
            "split in three",
            "packed A",
            "this one is longer t",
            "packed C",
            "straddles segments"
        ]
    );
    assert_eq!(messages(&ev, "s>c").len(), 5);
}

#[test]
fn a_file_cut_short_decodes_what_came_before_and_fails() {
    let (code, ev, err) = decode("truncated.pcap", &[]);
    assert_eq!(code, Some(1));
    assert_eq!(messages(&ev, "c>s"), ["one", "two"]);
    // Record 10 starts at byte 770 (24 + nine records); the file holds 76
    // of its 16 + 83 bytes.
    assert!(
        err.contains(
            "cut short after packet 9: the record at byte 770 needs 99 bytes, the file has 76 left"
        ),
        "{err}"
    );
    assert!(err.contains("everything before it was decoded"), "{err}");
}

#[test]
fn udp_and_text_sessions() {
    let (_, ev, _) = decode("udp.pcap", &[]);
    assert_eq!(of_type(&ev, "udp").len(), 8);
    let sessions = of_type(&ev, "session");
    assert_eq!(sessions.len(), 2, "one flow per client port");
    assert_ne!(sessions[0]["client_port"], sessions[1]["client_port"]);
    for file in ["text-threaded.pcap", "text-selector.pcap"] {
        let (_, ev, _) = decode(file, &[]);
        let s = of_type(&ev, "session");
        assert!(s.iter().all(|s| s["framing"] == "text"), "{file}");
        assert!(
            s.iter()
                .all(|s| s["echo_mismatches"] == 0 && s["echoes_ok"].as_u64() > Some(0)),
            "{file}"
        );
    }
}

#[test]
fn forced_framing_and_tcp_events() {
    let path = fixture("v2-echo.pcap");
    let out = run(&["capture", "-r", &path, "--proto", "v2", "--tcp-events"]);
    let text = stdout(&out);
    assert!(text.contains("framing v2: forced by --proto"), "{text}");
    assert!(
        text.contains("tcp syn c>s") && text.contains("tcp fin s>c"),
        "{text}"
    );
    assert!(text.contains("handshake RTT"), "{text}");
    // The sessions table and totals close the text output.
    assert!(
        text.contains("client port") && text.contains("18 packets"),
        "{text}"
    );
}

#[test]
fn user_errors_are_one_clear_line() {
    let out = run(&["capture", "-r", "/nonexistent/x.pcap"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).starts_with("rc1: cannot read /nonexistent/x.pcap"),
        "{}",
        stderr(&out)
    );

    let readme = fixture("README.md");
    let out = run(&["capture", "-r", &readme]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("not a capture file"),
        "{}",
        stderr(&out)
    );

    let path = fixture("v2-echo.pcap");
    let out = run(&["capture", "-r", &path, "-f", "port and and"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("invalid capture filter"),
        "{}",
        stderr(&out)
    );

    let out = run(&["capture", "-i", "no-such-iface0"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("no interface called \"no-such-iface0\""),
        "{err}"
    );
    assert!(err.contains("lo"), "lists the real interfaces: {err}");

    // Options that do not go together: a usage error, status 2.
    let out = run(&["capture", "-r", &path, "-B", "1M"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("-B/--buffer-size is the kernel's buffer of a live capture"),
        "{}",
        stderr(&out)
    );

    let out = run(&["capture"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "usage error: -i, -r or -D is required"
    );
}

/// A v2 frame as the lab's client packs it (ASCII message under 20 bytes).
fn v2(order: u32, msg: &[u8]) -> Vec<u8> {
    let mut f = vec![1];
    f.extend_from_slice(&order.to_be_bytes());
    f.extend_from_slice(&u32::try_from(msg.len()).unwrap().to_be_bytes());
    f.extend_from_slice(msg);
    f.resize(29, b'-');
    f
}

fn decode_crafted(name: &str, segments: &[(bool, &[u8])]) -> Vec<Value> {
    let path = std::env::temp_dir().join(format!("rc1-{name}-{}.pcap", std::process::id()));
    std::fs::write(&path, crate::util::tcp_pcap(5005, segments)).unwrap();
    let out = run(&["capture", "-r", path.to_str().unwrap(), "--json"]);
    let _ = std::fs::remove_file(&path);
    json_lines(&out)
}

#[test]
fn an_echo_that_differs_from_its_request_is_a_mismatch() {
    let (req, bad) = (v2(1, b"hello"), v2(1, b"hellx"));
    let ev = decode_crafted("mismatch", &[(true, &req), (false, &bad)]);
    let echo = ev
        .iter()
        .find(|v| v["type"] == "frame" && v["dir"] == "s>c")
        .unwrap();
    assert_eq!(echo["echo"], "mismatch");
    assert!(ev.iter().any(|v| v["code"] == "echo.mismatch"));
    let s = ev.iter().find(|v| v["type"] == "session").unwrap();
    assert_eq!(s["echo_mismatches"], 1);
}

#[test]
fn an_echo_whose_request_was_not_captured_is_not_called_a_mismatch() {
    // Request 1 is captured, its echo is not; echo 2 comes, its request is
    // not captured (a hole not yet known, or a capture started late). Echo
    // 2 must not be compared with request 1.
    let (r1, e2) = (v2(1, b"one"), v2(2, b"two"));
    let ev = decode_crafted("unsolicited", &[(true, &r1), (false, &e2)]);
    let echo = ev
        .iter()
        .find(|v| v["type"] == "frame" && v["dir"] == "s>c")
        .unwrap();
    assert_eq!(echo["echo"], "unsolicited", "{echo}");
    assert!(!ev.iter().any(|v| v["code"] == "echo.mismatch"));
    let s = ev.iter().find(|v| v["type"] == "session").unwrap();
    assert_eq!(s["echo_mismatches"], 0);
    assert_eq!(s["echoes_missing"], 1, "request 1 never got its echo: {s}");
}

#[test]
fn totals_count_every_message_each_session_counts() {
    let dir = format!("{}/fixtures", env!("CARGO_MANIFEST_DIR"));
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.display().to_string();
        if !(name.ends_with(".pcap") || name.ends_with(".pcapng")) {
            continue;
        }
        let out = run(&["capture", "-r", &name, "--json"]);
        let lines = json_lines(&out);
        let (mut frames, mut text, mut datagrams) = (0, 0, 0);
        for s in lines.iter().filter(|e| e["type"] == "session") {
            let n = s["to_server"]["messages"].as_u64().unwrap()
                + s["to_client"]["messages"].as_u64().unwrap();
            match s["framing"].as_str().unwrap() {
                "v2" | "v3" => frames += n,
                "text" => text += n,
                "udp" => datagrams += n,
                _ => assert_eq!(n, 0, "{name}: {s}"),
            }
        }
        let t = lines.last().unwrap();
        assert_eq!(t["type"], "totals", "{name}");
        assert_eq!(t["frames"], frames, "{name}");
        assert_eq!(t["text_messages"], text, "{name}");
        assert_eq!(t["datagrams"], datagrams, "{name}");
        checked += 1;
    }
    assert!(checked >= 20, "only {checked} fixtures");
}

/// The fixtures' names (pcap and pcapng).
fn fixture_files() -> Vec<String> {
    let dir = format!("{}/fixtures", env!("CARGO_MANIFEST_DIR"));
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("fixtures")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".pcap") || n.ends_with(".pcapng"))
        .collect();
    names.sort();
    names
}

/// `rc1 capture -r FILE -q` with `COLUMNS` set and `EXTRA` flags: stdout.
fn table_of(file: &str, columns: &str, extra: &[&str]) -> String {
    let out = crate::util::rc1()
        .args(["capture", "-r", &fixture(file), "-q"])
        .args(extra)
        .env("COLUMNS", columns)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run rc1");
    stdout(&out)
}

/// The lines of a sessions table in `text`.
fn table_lines(text: &str) -> Vec<&str> {
    text.lines()
        .filter(|l| l.starts_with(['┌', '│', '╞', '└']))
        .collect()
}

#[test]
fn compact_sessions_table_fits_80_and_120_columns() {
    let mut tables = 0;
    for file in fixture_files() {
        for width in [80, 120] {
            let text = table_of(&file, &width.to_string(), &["--table", "compact"]);
            let lines = table_lines(&text);
            if lines.is_empty() {
                continue; // no session in this file
            }
            tables += 1;
            for l in &lines {
                assert!(
                    l.chars().count() <= width,
                    "{file} at {width} columns: a line is {} wide:\n{text}",
                    l.chars().count()
                );
            }
            assert!(
                lines[1].contains("client") && lines[1].contains("anomalies"),
                "{file}: {text}"
            );
            // The full table's wide headers are not in the compact one.
            assert!(!text.contains("client port"), "{file}: {text}");
            // The totals still follow the table.
            assert!(text.contains(" packets, "), "{file}: {text}");
        }
    }
    assert!(tables > 40, "only {tables} tables drawn");
}

#[test]
fn compact_table_folds_gaps_into_anomalies() {
    let text = table_of("gap.pcap", "120", &["--table", "compact"]);
    assert!(text.contains("gap (40 B, 2 frames)"), "{text}");
    let narrow = table_of("gap.pcap", "80", &["--table", "compact"]);
    // Two lines a session at 80: client over server.
    let lines = table_lines(&narrow);
    let at = lines
        .iter()
        .position(|l| l.contains("10.0.0.1:40005"))
        .unwrap_or_else(|| panic!("{narrow}"));
    assert!(lines[at + 1].contains("10.0.0.2:5005"), "{narrow}");
}

#[test]
fn a_pipe_gets_the_full_table_whatever_columns_says() {
    for file in ["mixed.pcap", "v2-damaged.pcap", "udp.pcap"] {
        let piped = table_of(file, "80", &[]);
        assert!(
            piped.contains("client port") && piped.contains("gaps (bytes)"),
            "{piped}"
        );
        assert_eq!(piped, table_of(file, "80", &["--table", "full"]), "{file}");
        assert_eq!(piped, table_of(file, "80", &["--table", "auto"]), "{file}");
        assert!(
            table_lines(&piped).iter().any(|l| l.chars().count() > 120),
            "{piped}"
        );
    }
}

#[test]
fn list_interfaces_as_text_names_or_json() {
    let text = run(&["capture", "-D"]);
    assert!(text.status.success(), "{}", stderr(&text));
    let names = run(&["capture", "-D", "-q"]);
    assert!(names.status.success(), "{}", stderr(&names));
    let json = run(&["capture", "-D", "--json"]);
    assert!(json.status.success(), "{}", stderr(&json));
    let objects = json_lines(&json);
    // Linux's libpcap always has the `any` pseudo-device.
    assert!(!objects.is_empty(), "{}", stdout(&text));
    let names = stdout(&names);
    let names: Vec<&str> = names.lines().collect();
    assert_eq!(names.len(), objects.len());
    assert_eq!(stdout(&text).lines().count(), objects.len());
    for (i, (o, name)) in objects.iter().zip(&names).enumerate() {
        assert_eq!(o["type"], "interface", "{o}");
        assert_eq!(o["index"], i + 1, "{o}");
        assert_eq!(o["name"].as_str(), Some(*name), "{o}");
        assert!(
            o["description"].is_null() || o["description"].is_string(),
            "{o}"
        );
        assert!(o["addresses"].is_array(), "{o}");
        for flag in ["loopback", "up", "running"] {
            assert!(o[flag].is_boolean(), "{flag}: {o}");
        }
        if *name == "lo" {
            assert_eq!(o["loopback"], true, "{o}");
            assert!(
                o["addresses"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|a| a == "127.0.0.1"),
                "{o}"
            );
        }
    }
}
