//! `rc1 flood` against each rc1 server, against a server that corrupts and
//! drops echoes, against no server, and beside a live capture on `lo`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::util::{Server, WAIT, json_lines, rc1, run, stderr};

/// The final JSON object of a flood.
fn summary(out: &Output) -> Value {
    json_lines(out)
        .into_iter()
        .rfind(|v| v["type"] == "summary")
        .unwrap_or_else(|| panic!("no summary: {}", stderr(out)))
}

#[test]
fn each_rc1_server_echoes_every_frame_of_a_bounded_flood() {
    let cases: &[(&[&str], &str, &str)] = &[
        (&["--proto", "v2"], "v2", "1..30"),
        (&["--proto", "v3"], "v3", "0..3000"),
        (&["--proto", "text"], "text", "1..200"),
        (&["--proto", "text-sel"], "text", "1..200"),
        // UDP keeps fewer requests in flight: the server's receive queue
        // (rmem_default) overflows at 3 x 64 datagrams of a few hundred
        // bytes, and the kernel drops for real (the flood counts them).
        (&["--proto", "udp", "--echo"], "udp", "0..500"),
    ];
    for (server_args, proto, size) in cases {
        let mut args = server_args.to_vec();
        args.push("-q");
        let server = Server::start(&args);
        let port = server.port();
        let pipeline = if *proto == "udp" { "16" } else { "64" };
        let out = run(&[
            "flood",
            "-p",
            proto,
            "--port",
            &port,
            "-c",
            "3",
            "-n",
            "5000",
            "--size",
            size,
            "--pipeline",
            pipeline,
            "--json",
        ]);
        let s = summary(&out);
        let what = format!("{server_args:?}: {s}");
        assert!(out.status.success(), "{what} {}", stderr(&out));
        assert_eq!(s["sent"], 5000, "{what}");
        assert_eq!(s["echoed"], 5000, "{what}");
        assert_eq!(s["verified"], 5000, "{what}");
        assert_eq!(s["mismatched"], 0, "{what}");
        assert_eq!(s["missing"], 0, "{what}");
        assert_eq!(s["errors"], serde_json::json!({}), "{what}");
        assert!(s["latency_us"]["p50"].as_u64().is_some(), "{what}");
        assert_eq!(s["connect"]["opened"], 3, "{what}");
        if *proto != "udp" {
            assert!(s["bytes_in"].as_u64() == s["bytes_out"].as_u64(), "{what}");
        }
    }
}

#[test]
fn a_corrupted_echo_and_a_dropped_echo_are_counted_exactly() {
    // A v2 server that flips a byte of echo 3 and never sends echo 5.
    let (port, server) = odd_server(|n, mut f| {
        match n {
            3 => f[12] ^= 0x20,
            5 => return Some(Vec::new()),
            _ => {}
        }
        Some(f.to_vec())
    });
    let out = run(&[
        "flood", "-p", "v2", "--port", &port, "-n", "20", "--drain", "1s", "--json",
    ]);
    let s = summary(&out);
    assert_eq!(out.status.code(), Some(1), "{s}");
    assert_eq!(s["sent"], 20, "{s}");
    assert_eq!(s["echoed"], 19, "{s}");
    assert_eq!(s["verified"], 18, "{s}");
    assert_eq!(s["mismatched"], 1, "{s}");
    assert_eq!(s["missing"], 1, "{s}");
    assert_eq!(s["ok"], false);
    assert_eq!(server.join().unwrap(), 20);
}

/// A v2 server on a free loopback port that answers each frame with
/// `answer(n, frame)` (n from 1) until it returns `None`, then closes.
fn odd_server(
    answer: impl Fn(usize, [u8; 29]) -> Option<Vec<u8>> + Send + 'static,
) -> (String, std::thread::JoinHandle<usize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let h = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(WAIT)).unwrap();
        let mut n = 0;
        let mut frame = [0u8; 29];
        while s.read_exact(&mut frame).is_ok() {
            n += 1;
            match answer(n, frame) {
                Some(bytes) => {
                    if s.write_all(&bytes).is_err() {
                        break;
                    }
                }
                None => break,
            }
        }
        n
    });
    (port, h)
}

fn exact(s: &Value) {
    let n = |k: &str| s[k].as_u64().unwrap();
    assert_eq!(n("sent"), n("echoed") + n("missing"), "{s}");
    assert_eq!(n("echoed"), n("verified") + n("mismatched"), "{s}");
}

#[test]
fn a_server_that_closes_mid_run_is_an_error_and_nothing_is_lost_unnoticed() {
    let (port, server) = odd_server(|n, f| (n <= 100).then(|| f.to_vec()));
    let out = run(&["flood", "-p", "v2", "--port", &port, "-n", "1000", "--json"]);
    let s = summary(&out);
    assert_eq!(out.status.code(), Some(1), "{s}");
    exact(&s);
    // At most the 100 echoes sent (a close with unread bytes is a reset,
    // which may discard echoes already on their way).
    let v = s["verified"].as_u64().unwrap();
    assert!((1..=100).contains(&v), "{s}");
    let errors = s["errors"].as_object().unwrap();
    assert!(
        errors.contains_key("conn.closed") || errors.contains_key("conn.reset"),
        "{s}"
    );
    server.join().unwrap();
}

#[test]
fn a_server_that_never_answers_ends_the_run_after_the_drain_time() {
    let (port, server) = odd_server(|_, _| Some(Vec::new()));
    let t0 = Instant::now();
    let out = run(&[
        "flood", "-p", "v2", "--port", &port, "-n", "100000", "--drain", "500ms", "--json",
    ]);
    let took = t0.elapsed();
    let s = summary(&out);
    assert_eq!(out.status.code(), Some(1), "{s}");
    assert!(took < Duration::from_secs(5), "took {took:?}");
    exact(&s);
    assert_eq!(s["echoed"], 0);
    assert!(s["missing"].as_u64().unwrap() > 0);
    assert_eq!(s["errors"]["echo.timeout"], 1, "{s}");
    drop(server);
}

#[test]
fn duplicate_echoes_are_unexpected_and_unchecked_echoes_are_not_called_verified() {
    let (port, server) = odd_server(|_, f| Some([f, f].concat()));
    let out = run(&["flood", "-p", "v2", "--port", &port, "-n", "50", "--json"]);
    let s = summary(&out);
    assert_eq!(out.status.code(), Some(1), "{s}");
    exact(&s);
    assert_eq!(s["verified"], 50, "{s}");
    assert_eq!(s["unexpected"], 50, "{s}");
    server.join().unwrap();

    // --no-verify: a garbling server's echoes are counted, not checked.
    let (port, server) = odd_server(|_, mut f| {
        f[12] ^= 0x20;
        Some(f.to_vec())
    });
    let out = run(&[
        "flood",
        "-p",
        "v2",
        "--port",
        &port,
        "-n",
        "50",
        "--no-verify",
        "--json",
    ]);
    let s = summary(&out);
    assert!(out.status.success(), "{s}");
    assert_eq!(s["echoed"], 50);
    assert_eq!(s["verified"], 0, "nothing was checked: {s}");
    assert_eq!(s["mismatched"], 0);
    server.join().unwrap();
}

#[test]
fn flooding_a_port_with_no_server_is_a_clear_error() {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port().to_string()
    };
    let out = run(&["flood", "-p", "v2", "--port", &port, "-n", "10"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("cannot connect to 127.0.0.1:"), "{err}");
    assert!(
        err.contains("is a server running? rc1 server --proto v2"),
        "{err}"
    );
}

#[test]
fn usage_errors_are_refused_before_anything_is_sent() {
    for (args, says) in [
        (&["--rate", "0"][..], "--rate"),
        (&["--count", "0"][..], "--count 0"),
        (&["--size", "9..3"][..], "minimum is above"),
        (&["--connections", "0"][..], "--connections"),
        (&["--pipeline", "0"][..], "--pipeline"),
    ] {
        let mut a = vec!["flood", "-p", "v2", "--port", "9"];
        a.extend(args);
        let out = run(&a);
        assert_eq!(out.status.code(), Some(2), "{args:?} is a usage error");
        assert!(stderr(&out).contains(says), "{args:?}: {}", stderr(&out));
    }
    let out = run(&["flood", "-p", "v2", "--rate", "10", "--max"]);
    assert_eq!(out.status.code(), Some(2), "--rate and --max together");
}

#[test]
fn rate_mode_paces_and_interval_reports_stream_as_json() {
    let server = Server::start(&["--proto", "v3", "-q"]);
    let out = run(&[
        "flood",
        "-p",
        "v3",
        "--port",
        &server.port(),
        "--rate",
        "2000",
        "-d",
        "1500ms",
        "-i",
        "0.5",
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let lines = json_lines(&out);
    let intervals: Vec<&Value> = lines.iter().filter(|v| v["type"] == "interval").collect();
    assert!(intervals.len() >= 2, "{lines:?}");
    assert_eq!(lines.last().unwrap()["type"], "summary");
    let s = summary(&out);
    // 2000/s for 1.5 s: 3000 requests, give or take the last tick.
    let sent = s["sent"].as_u64().unwrap();
    assert!((2990..=3000).contains(&sent), "{s}");
    assert_eq!(s["echoed"], s["sent"]);
    assert_eq!(s["mode"], "rate 2000/s");
}

#[test]
fn quiet_prints_only_the_final_report() {
    let server = Server::start(&["--proto", "v2", "-q"]);
    let port = server.port();
    let base = ["flood", "-p", "v2", "--port", &port, "-n", "500", "-q"];
    let out = run(&[&base[..], &["--json"]].concat());
    assert!(out.status.success(), "{}", stderr(&out));
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["type"], "summary");
    assert_eq!(lines[0]["verified"], 500);
    let out = run(&base);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = crate::util::stdout(&out);
    assert!(text.starts_with("rc1 flood v2 "), "{text}");
    assert!(
        text.contains("verified") && text.contains("errors: none"),
        "{text}"
    );
    assert!(!text.contains("echoes/s"), "no interval line: {text}");
    assert!(stderr(&out).is_empty(), "{}", stderr(&out));
    // -q asks for no interval lines: -i with it is a usage error.
    let out = run(&[&base[..], &["-i", "1"]].concat());
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--interval"), "{}", stderr(&out));
}

/// `rc1 capture -i lo --json` for a server port, its output read as it
/// comes (a full pipe would block it).
struct Capture {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<Value>,
    seen: Vec<Value>,
}

impl Drop for Capture {
    /// A failed test must not leave the capture running.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Capture {
    fn start(port: &str, extra: &[&str]) -> Capture {
        let mut child = rc1()
            .args(["capture", "-i", "lo", "--port", port, "--json"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut err = BufReader::new(child.stderr.take().unwrap());
        let mut line = String::new();
        err.read_line(&mut line).unwrap();
        assert!(line.contains("capturing on lo"), "{line}");
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for l in stdout.lines() {
                let Ok(l) = l else { break };
                let v: Value = serde_json::from_str(&l).unwrap();
                if tx.send(v).is_err() {
                    break;
                }
            }
        });
        std::thread::sleep(Duration::from_millis(200));
        Capture {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits (bounded) until `n` lines match `pred`.
    fn wait_for(&mut self, n: usize, what: &str, pred: impl Fn(&Value) -> bool) {
        let deadline = Instant::now() + WAIT;
        // Counted as lines come (a capture prints hundreds of thousands).
        let mut count = self.seen.iter().filter(|e| pred(e)).count();
        while count < n {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(v) => {
                    count += usize::from(pred(&v));
                    self.seen.push(v);
                }
                Err(_) => panic!("no {n} {what} within {WAIT:?}"),
            }
        }
    }

    /// Waits (bounded) until `n` sessions have ended: the capture has
    /// then read their last packets.
    fn wait_sessions(&mut self, n: usize) {
        self.wait_for(n, "ended sessions", |e| e["type"] == "session");
    }

    /// Ctrl+C; every JSON line it printed.
    fn stop(mut self) -> Vec<Value> {
        self.stop_and_collect()
    }

    fn stop_and_collect(&mut self) -> Vec<Value> {
        crate::util::ctrl_c_and_wait(&mut self.child);
        let status = self.child.wait().unwrap();
        assert!(status.success());
        // Every line up to the end of its output (the reader thread ends
        // at EOF, which closes the channel).
        let rest: Vec<Value> = self.lines.iter().collect();
        self.seen.extend(rest);
        std::mem::take(&mut self.seen)
    }

    /// Sends a signal to the capture (SIGSTOP, SIGCONT).
    fn signal(&self, sig: &str) {
        let ok = std::process::Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill {sig}");
    }
}

#[test]
fn a_live_capture_beside_a_flood_decodes_exactly_what_it_sent_and_got() {
    let test = "a_live_capture_beside_a_flood_decodes_exactly_what_it_sent_and_got";
    let Some(_one_at_a_time) = crate::util::live_capture(test) else {
        return;
    };
    let server = Server::start(&["--proto", "v2", "-q"]);
    let port = server.port();
    let mut cap = Capture::start(&port, &[]);
    // Paced, so the kernel keeps every packet for the capture.
    let out = run(&[
        "flood", "-p", "v2", "--port", &port, "-c", "2", "--rate", "5000", "-n", "3000", "--json",
    ]);
    let s = summary(&out);
    assert!(out.status.success(), "{s}");
    cap.wait_sessions(2);
    let live = cap.stop();
    let count = |dir: &str| {
        live.iter()
            .filter(|e| e["type"] == "frame" && e["dir"] == dir)
            .count() as u64
    };
    let totals = live.last().unwrap();
    assert_eq!(
        totals["kernel_dropped"], 0,
        "the kernel dropped packets: {totals}"
    );
    assert_eq!(count("c>s"), s["sent"].as_u64().unwrap(), "{s}");
    assert_eq!(count("s>c"), s["echoed"].as_u64().unwrap(), "{s}");
    let echoes_ok = live
        .iter()
        .filter(|e| e["type"] == "frame" && e["echo"] == "ok")
        .count() as u64;
    assert_eq!(echoes_ok, s["verified"].as_u64().unwrap());
    let sessions: Vec<_> = live.iter().filter(|e| e["type"] == "session").collect();
    assert_eq!(sessions.len(), 2);
}

#[test]
fn a_capture_overrun_by_a_flood_accounts_for_every_frame_in_its_gaps() {
    let test = "a_capture_overrun_by_a_flood_accounts_for_every_frame_in_its_gaps";
    let Some(_one_at_a_time) = crate::util::live_capture(test) else {
        return;
    };
    let server = Server::start(&["--proto", "v2", "-q"]);
    let port = server.port();
    // A 4 MiB kernel buffer, and the capture frozen (SIGSTOP) three times
    // for 300 ms while a paced flood (3 s) runs: each time the kernel
    // keeps what fits and must drop the rest, however fast the machine,
    // and the streams go on after each hole. (v2 forced: a connection's
    // first bytes may be lost too, and with them what detection needs.)
    let mut cap = Capture::start(&port, &["-B", "4M", "--proto", "v2", "--tcp-events"]);
    // The connections stay open 3 s after the last echo: the capture
    // catches up before the FINs, so it knows where each stream ends.
    let flood = rc1()
        .args([
            "flood", "-p", "v2", "--port", &port, "-c", "2", "--rate", "100000", "-n", "300000",
            "--hold", "3s", "--json",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    for _ in 0..3 {
        std::thread::sleep(Duration::from_millis(400));
        cap.signal("-STOP");
        std::thread::sleep(Duration::from_millis(300));
        cap.signal("-CONT");
    }
    let out = flood.wait_with_output().unwrap();
    let s = summary(&out);
    assert!(out.status.success(), "{s}");
    assert_eq!(s["verified"], 300_000, "{s}");
    // Both FINs of both connections read: the capture has caught up.
    cap.wait_for(4, "FINs", |e| e["type"] == "tcp" && e["what"] == "fin");
    let live = cap.stop();
    let totals = live.last().unwrap();
    assert_eq!(totals["type"], "totals");
    let dropped = totals["kernel_dropped"].as_u64().unwrap();
    assert!(dropped > 0, "the capture kept up; nothing tested: {totals}");
    let sessions: Vec<_> = live.iter().filter(|e| e["type"] == "session").collect();
    assert_eq!(sessions.len(), 2, "{sessions:#?}");
    let (mut gaps, mut frames) = (0, [0u64; 2]);
    for x in &sessions {
        // Each stream's end was seen, so every gap in it is known.
        assert_eq!(x["state"], "SF", "{x}");
        for (i, dir) in ["to_server", "to_client"].iter().enumerate() {
            gaps += x[dir]["gaps"].as_u64().unwrap();
            frames[i] += x[dir]["messages"].as_u64().unwrap()
                + x[dir]["frames_in_gaps"]
                    .as_u64()
                    .unwrap_or_else(|| panic!("{x}"));
        }
    }
    // Holes in the middle of the streams, not only at their ends.
    assert!(
        gaps > 4,
        "{dropped} packets dropped, {gaps} gaps: {sessions:#?}"
    );
    // And frames decoded after a hole: the decoder resynchronised.
    let mut first_gap = std::collections::HashMap::new();
    let mut after_a_gap = 0;
    for e in live.iter().filter(|e| e["dir"] == "c>s") {
        let session = e["session"].as_u64();
        if e["code"] == "tcp.gap" {
            first_gap.entry(session).or_insert(());
        } else if e["type"] == "frame" && first_gap.contains_key(&session) {
            after_a_gap += 1;
        }
    }
    assert!(after_a_gap > 0, "no request decoded after a gap");
    let decoded: u64 = sessions
        .iter()
        .map(|x| x["to_server"]["messages"].as_u64().unwrap())
        .sum();
    assert!(decoded > 0, "nothing decoded: {sessions:#?}");
    // Frames decoded plus frames in the reported gaps: every frame sent,
    // and every echo.
    assert_eq!(frames[0], s["sent"].as_u64().unwrap(), "{sessions:#?}");
    assert_eq!(frames[1], s["echoed"].as_u64().unwrap(), "{sessions:#?}");
    // And the frames it printed are the ones it counted.
    let printed = live.iter().filter(|e| e["type"] == "frame").count() as u64;
    let decoded: u64 = sessions
        .iter()
        .map(|x| {
            x["to_server"]["messages"].as_u64().unwrap()
                + x["to_client"]["messages"].as_u64().unwrap()
        })
        .sum();
    assert_eq!(printed, decoded);
    eprintln!(
        "{test}: kernel dropped {dropped} packets; {gaps} gaps; {} of {} requests decoded",
        sessions
            .iter()
            .map(|x| x["to_server"]["messages"].as_u64().unwrap())
            .sum::<u64>(),
        frames[0]
    );
}
