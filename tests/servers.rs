//! rc1's servers and clients on loopback: every client against its server,
//! concurrency, connection caps, IPv6, Ctrl+C, and hostile clients.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::time::Duration;

use serde_json::Value;

use crate::util::{
    Server, WAIT, have_prerequisite, json_lines, run, run_with_stdin, stderr, stdout,
};

fn is(event: &'static str) -> impl Fn(&Value) -> bool {
    move |v| v["event"] == event
}

/// Five concurrent rc1 clients, three messages each, against `server`.
fn matrix(server_args: &[&str], client_args: &[&str], message_event: &'static str) {
    let mut server = Server::start(server_args);
    let port = server.port();
    let handles: Vec<_> = (0..5)
        .map(|c| {
            let port = port.clone();
            let mut args: Vec<String> = ["client", "--port", &port, "--json"]
                .iter()
                .map(|s| s.to_string())
                .collect();
            args.extend(client_args.iter().map(|s| s.to_string()));
            for m in 0..3 {
                args.push("-m".into());
                // Message 2 is longer than 20 characters (v2 cuts it).
                args.push(format!("client {c} message {m}{}", "!".repeat(m * 10)));
            }
            std::thread::spawn(move || {
                let a: Vec<&str> = args.iter().map(String::as_str).collect();
                run(&a)
            })
        })
        .collect();
    let mut client_ports = Vec::new();
    for h in handles {
        let out = h.join().unwrap();
        assert!(out.status.success(), "client failed: {}", stderr(&out));
        let events = json_lines(&out);
        let connect = events.iter().find(|e| e["event"] == "connect").unwrap();
        let local: std::net::SocketAddr = connect["local"].as_str().unwrap().parse().unwrap();
        assert_ne!(local.port(), 0);
        client_ports.push(local.port());
        let echoes: Vec<_> = events.iter().filter(|e| e["event"] == "echo").collect();
        assert_eq!(echoes.len(), 3, "{}", stdout(&out));
        assert!(echoes.iter().all(|e| e["ok"] == true));
        let sent: Vec<_> = events.iter().filter(|e| e["event"] == "sent").collect();
        for (s, e) in sent.iter().zip(&echoes) {
            assert_eq!(s["message"], e["message"]);
            assert_eq!(s["order"], e["order"]);
        }
    }
    // Each client has its own ephemeral port.
    let mut unique = client_ports.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), 5, "{client_ports:?}");
    let msgs = server.wait_count(15, is(message_event));
    for m in &msgs {
        let peer: std::net::SocketAddr = m["peer"].as_str().unwrap().parse().unwrap();
        assert!(client_ports.contains(&peer.port()), "{m}");
    }
    if message_event == "frame" {
        let mut orders: Vec<u64> = msgs.iter().map(|m| m["order"].as_u64().unwrap()).collect();
        orders.sort_unstable();
        assert_eq!(orders, [1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3]);
    }
    let (status, _) = server.stop();
    assert!(status.success());
}

#[test]
fn udp_client_against_udp_server_with_echo() {
    matrix(
        &["--proto", "udp", "--echo"],
        &["--proto", "udp", "--echo"],
        "datagram",
    );
}

#[test]
fn text_client_against_threaded_text_server() {
    matrix(&["--proto", "text"], &["--proto", "text"], "text");
}

#[test]
fn text_client_against_selector_server() {
    matrix(&["--proto", "text-sel"], &["--proto", "text"], "text");
}

#[test]
fn v2_client_against_v2_server() {
    matrix(&["--proto", "v2"], &["--proto", "v2"], "frame");
}

#[test]
fn v3_client_against_v3_server() {
    matrix(&["--proto", "v3"], &["--proto", "v3"], "frame");
}

fn connect(server: &Server) -> TcpStream {
    let s = TcpStream::connect(server.addr).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    s
}

fn read_exact_n(s: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut b = vec![0; n];
    s.read_exact(&mut b).unwrap();
    b
}

#[test]
fn selector_serves_fifty_connections_at_once() {
    let mut server = Server::start(&["--proto", "text-sel"]);
    let mut socks: Vec<TcpStream> = (0..50).map(|_| connect(&server)).collect();
    let accepts = server.wait_count(50, is("accept"));
    assert!(
        accepts.iter().any(|a| a["active"] == 50),
        "all 50 open at once"
    );
    let mut tokens: Vec<u64> = accepts
        .iter()
        .map(|a| a["token"].as_u64().unwrap())
        .collect();
    tokens.sort_unstable();
    tokens.dedup();
    assert_eq!(tokens.len(), 50, "one selector token per connection");
    // Interleave: all send, then all read, twice, in opposite orders.
    for round in 0..2 {
        for (i, s) in socks.iter_mut().enumerate() {
            s.write_all(format!("r{round} c{i:02}").as_bytes()).unwrap();
        }
        for (i, s) in socks.iter_mut().enumerate().rev() {
            let want = format!("r{round} c{i:02}");
            assert_eq!(read_exact_n(s, want.len()), want.as_bytes());
        }
    }
    drop(socks);
    let closes = server.wait_count(50, is("close"));
    assert!(closes.iter().all(|c| c["reason"] == "client closed"));
    // The selector key (token) is on every connect, data and close line.
    let texts = server.wait_count(100, is("text"));
    for e in texts.iter().chain(&closes) {
        let t = e["token"].as_u64().expect("token");
        assert!(tokens.binary_search(&t).is_ok(), "{e}");
    }
    assert!(server.stop().0.success());
}

#[test]
fn selector_does_not_drop_bytes_when_the_client_reads_slowly() {
    // 4 MB echoed through partial writes: the client writes everything
    // first (in a thread) while reading slowly here.
    let server = Server::start(&["--proto", "text-sel"]);
    let mut s = connect(&server);
    let data: Vec<u8> = (0..4_000_000u32).map(|i| (i % 253) as u8).collect();
    let mut w = s.try_clone().unwrap();
    let expected = data.clone();
    let writer = std::thread::spawn(move || {
        w.write_all(&data).unwrap();
        w.shutdown(Shutdown::Write).unwrap();
    });
    let mut got = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        let n = s
            .read(&mut buf)
            .unwrap_or_else(|e| panic!("read failed after {} echoed bytes: {e:?}", got.len()));
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
    }
    writer.join().unwrap();
    assert_eq!(got.len(), expected.len());
    assert!(got == expected, "echo differs");
}

#[test]
fn connection_cap_refuses_with_a_log_line_and_recovers() {
    let mut server = Server::start(&["--proto", "v2", "--max-conns", "2"]);
    let a = connect(&server);
    let _b = connect(&server);
    server.wait_count(2, is("accept"));
    let mut c = connect(&server);
    let refused = server.wait_for(is("refuse"));
    assert_eq!(refused["limit"], 2);
    let mut buf = [0u8; 1];
    assert!(
        matches!(c.read(&mut buf), Ok(0) | Err(_)),
        "refused socket is closed"
    );
    drop(a);
    server.wait_for(is("close"));
    let out = run(&[
        "client",
        "-p",
        "v2",
        "--port",
        &server.port(),
        "-m",
        "after",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn ipv6_bind_and_connect() {
    if !have_prerequisite(
        TcpListener::bind("[::1]:0").is_ok(),
        "ipv6_bind_and_connect",
        "IPv6 loopback (::1)",
    ) {
        return;
    }
    let mut server = Server::start(&["--proto", "v3", "--bind", "::1"]);
    let out = run(&[
        "client",
        "-p",
        "v3",
        "--host",
        "::1",
        "--port",
        &server.port(),
        "-m",
        "over ipv6",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).starts_with("[::1]:"), "{}", stdout(&out));
    let f = server.wait_for(is("frame"));
    assert_eq!(f["message"], "over ipv6");
}

#[test]
fn ctrl_c_stops_cleanly_and_closes_open_connections() {
    for proto in ["text", "text-sel", "v2", "udp"] {
        let mut server = Server::start(&["--proto", proto]);
        let _held = (proto != "udp").then(|| {
            let s = connect(&server);
            server.wait_for(is("accept"));
            s
        });
        let (status, events) = server.stop();
        assert!(status.success(), "{proto}: {status:?}");
        assert!(events.iter().any(|e| e["event"] == "stop"), "{proto}");
        if proto != "udp" {
            assert!(
                events
                    .iter()
                    .any(|e| e["event"] == "close" && e["reason"] == "server stopping"),
                "{proto}: {events:#?}"
            );
        }
    }
}

/// A deterministic byte soup (no RNG crate needed for 1 kB of noise).
fn garbage(n: usize, seed: u32) -> Vec<u8> {
    let mut x = seed;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 8) as u8
        })
        .collect()
}

fn hostile(proto: &str) {
    let mut server = Server::start(&["--proto", proto]);
    // A client that connects and sends nothing, held open throughout.
    let _silent = connect(&server);
    // A frame cut off by a disconnect.
    let mut cut = connect(&server);
    cut.write_all(&[1, 0, 0, 0, 1, 0, 0, 0, 5, b'h', b'e'])
        .unwrap();
    drop(cut);
    // A v3 header claiming 4,000,000,000 bytes.
    let mut huge = connect(&server);
    huge.write_all(&[1, 0, 0, 0, 1, 0xEE, 0x6B, 0x28, 0x00])
        .unwrap();
    // Random garbage, then a reset-free close.
    let mut junk = connect(&server);
    junk.write_all(&garbage(1000, 7)).unwrap();
    drop(junk);
    if proto == "v3" {
        // (The garbage connection may report its own oversized claim first.)
        server.wait_for(|e| {
            e["event"] == "error"
                && e["code"] == "v3.size_over_max"
                && e["message"].as_str().unwrap().contains("4000000000")
        });
        // The server closed that connection.
        let mut b = [0u8; 1];
        assert!(matches!(huge.read(&mut b), Ok(0) | Err(_)));
    }
    if proto == "v2" || proto == "v3" {
        server.wait_for(|e| e["event"] == "error" && e["code"] == "frame.truncated");
    }
    // Everyone else is still served, while the silent client sits there.
    let client_proto = if proto == "text-sel" { "text" } else { proto };
    let out = run(&[
        "client",
        "-p",
        client_proto,
        "--port",
        &server.port(),
        "-m",
        "still served",
    ]);
    assert!(out.status.success(), "{proto}: {}", stderr(&out));
    assert!(stdout(&out).contains("ok"), "{}", stdout(&out));
    assert!(server.stop().0.success());
}

#[test]
fn hostile_clients_text() {
    hostile("text");
}

#[test]
fn hostile_clients_text_sel() {
    hostile("text-sel");
}

#[test]
fn hostile_clients_v2() {
    hostile("v2");
}

#[test]
fn hostile_clients_v3() {
    hostile("v3");
}

#[test]
fn v2_server_reads_whole_frames_across_splits_and_packs() {
    // Three frames: the first split in two writes, the next two packed in one.
    let mut server = Server::start(&["--proto", "v2"]);
    let mut s = connect(&server);
    let frames: Vec<Vec<u8>> = (1..=3)
        .map(|o| {
            rc1::codec::Frame::v2(1, o, format!("msg {o}").as_bytes())
                .unwrap()
                .to_bytes(rc1::codec::Framing::V2)
        })
        .collect();
    s.write_all(&frames[0][..10]).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    s.write_all(&frames[0][10..]).unwrap();
    s.write_all(&[frames[1].clone(), frames[2].clone()].concat())
        .unwrap();
    let echo = read_exact_n(&mut s, 87);
    assert_eq!(echo, frames.concat());
    let got = server.wait_count(3, is("frame"));
    let msgs: Vec<_> = got.iter().map(|f| f["message"].as_str().unwrap()).collect();
    assert_eq!(msgs, ["msg 1", "msg 2", "msg 3"]);
}

#[test]
fn non_utf8_text_is_shown_escaped_and_kept_in_hex() {
    let mut server = Server::start(&["--proto", "text"]);
    let mut s = connect(&server);
    s.write_all(b"caf\xc3").unwrap();
    assert_eq!(read_exact_n(&mut s, 4), b"caf\xc3");
    let t = server.wait_for(is("text"));
    assert_eq!(t["message"], "caf\\xC3");
    assert_eq!(t["message_hex"], "636166c3");
}

/// A port with nothing listening (bound, then released).
fn free_port() -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port().to_string()
}

#[test]
fn client_says_when_no_server_runs() {
    let port = free_port();
    let out = run(&["client", "-p", "v2", "--port", &port, "-m", "x"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("connection refused"), "{err}");
    assert!(
        err.contains(&format!("is a server running on 127.0.0.1:{port}")),
        "{err}"
    );
}

#[test]
fn client_times_out_when_no_echo_comes() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port().to_string();
    let t = std::thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        s.set_read_timeout(Some(WAIT)).unwrap();
        let mut b = [0u8; 29];
        let _ = s.read_exact(&mut b);
        std::thread::sleep(Duration::from_millis(800));
    });
    let out = run(&[
        "client",
        "-p",
        "v2",
        "--port",
        &port,
        "--timeout",
        "300ms",
        "-m",
        "x",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("no echo from the server within 300ms"),
        "{}",
        stderr(&out)
    );
    t.join().unwrap();
}

#[test]
fn client_exits_non_zero_on_a_wrong_echo() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port().to_string();
    let t = std::thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        s.set_read_timeout(Some(WAIT)).unwrap();
        for _ in 0..2 {
            let mut b = [0u8; 29];
            s.read_exact(&mut b).unwrap();
            if b[4] == 2 {
                b[4] = 9; // the second echo comes back with order 9
            }
            s.write_all(&b).unwrap();
        }
    });
    let out = run(&["client", "-p", "v2", "--port", &port, "-m", "a", "-m", "b"]);
    t.join().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(
        text.contains("echo v2 ver=1 order=1 size=1 \"a\" ok"),
        "{text}"
    );
    assert!(
        text.contains("order=9") && text.contains("MISMATCH"),
        "{text}"
    );
    assert!(
        stderr(&out).contains("1 of 2 echoes differed"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn udp_client_shows_its_ephemeral_port_and_the_server_sees_it() {
    let mut server = Server::start(&["--proto", "udp"]);
    let out = run(&[
        "client",
        "-p",
        "udp",
        "--port",
        &server.port(),
        "-m",
        "hi",
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let ev = json_lines(&out);
    let local = ev[0]["local"].as_str().unwrap().to_string();
    let d = server.wait_for(is("datagram"));
    assert_eq!(d["peer"], local.as_str());
    assert_eq!(d["message"], "hi");
    assert_eq!(d["echoed"], false);
}

#[test]
fn quiet_client_prints_nothing_on_success_and_the_error_on_failure() {
    let server = Server::start(&["--proto", "v3"]);
    let out = run(&[
        "client",
        "-p",
        "v3",
        "-q",
        "--port",
        &server.port(),
        "-m",
        "x",
    ]);
    assert!(out.status.success());
    assert_eq!(stdout(&out), "");
    let out = run(&[
        "client",
        "-p",
        "v3",
        "-q",
        "--port",
        &free_port(),
        "-m",
        "x",
    ]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("connection refused"));
}

#[test]
fn piped_stdin_sends_one_message_per_line() {
    use std::process::Stdio;
    let mut server = Server::start(&["--proto", "v2"]);
    let mut child = crate::util::rc1()
        .args(["client", "-p", "v2", "--port", &server.port()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"first\r\nsecond\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    // Piped: no interactive prompt in the output.
    assert!(!stdout(&out).contains("Message to send"));
    let frames = server.wait_count(2, is("frame"));
    assert_eq!(frames[0]["message"], "first");
    assert_eq!(frames[1]["message"], "second");
    assert_eq!(frames[1]["order"], 2);
}

#[test]
fn ipv4_clients_of_an_ipv6_server_are_shown_as_ipv4() {
    if !have_prerequisite(
        TcpListener::bind("[::]:0").is_ok(),
        "ipv4_clients_of_an_ipv6_server_are_shown_as_ipv4",
        "IPv6",
    ) {
        return;
    }
    for proto in ["v2", "udp"] {
        let mut args = vec!["--proto", proto, "--bind", "::"];
        if proto == "udp" {
            args.push("--echo");
        }
        let mut server = Server::start(&args);
        let port = server.port();
        let mut client = vec!["client", "-p", proto, "--port", &port];
        client.extend(["-m", "mapped", "--json"]);
        if proto == "udp" {
            client.push("--echo");
        }
        let out = run(&client);
        assert!(out.status.success(), "{proto}: {}", stderr(&out));
        let local = json_lines(&out)[0]["local"].as_str().unwrap().to_string();
        let ev = server.wait_for(|e| e["event"] == "frame" || e["event"] == "datagram");
        assert_eq!(ev["peer"], local.as_str(), "{proto}");
    }
}

#[test]
fn quiet_server_prints_only_where_it_listens_and_errors() {
    use std::process::Stdio;
    let port = free_port();
    let child = crate::util::rc1()
        .args([
            "server",
            "-p",
            "v3",
            "--bind",
            "127.0.0.1",
            "--port",
            &port,
            "--quiet",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait (bounded) until it accepts connections.
    let deadline = std::time::Instant::now() + WAIT;
    let mut probe = loop {
        if let Ok(s) = TcpStream::connect(format!("127.0.0.1:{port}")) {
            break s;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "quiet server never listened"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = run(&["client", "-p", "v3", "--port", &port, "-m", "shh"]);
    assert!(out.status.success(), "{}", stderr(&out));
    // One hostile frame: its error must still be printed.
    probe
        .write_all(&[1, 0, 0, 0, 1, 0xFF, 0xFF, 0xFF, 0xFF])
        .unwrap();
    let mut b = [0u8; 1];
    probe.set_read_timeout(Some(WAIT)).unwrap();
    let _ = probe.read(&mut b);
    let _ = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    // Only the line saying where it listens (the port matters with
    // --port 0), then nothing per connection or message.
    let said = stdout(&out);
    assert_eq!(said.lines().count(), 1, "{said}");
    assert!(
        said.starts_with("listening: v3 server on 127.0.0.1:"),
        "{said}"
    );
    let err = stderr(&out);
    assert!(
        err.contains("v3.size_over_max") && err.contains("4294967295"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn max_frame_can_be_raised_on_both_sides() {
    let big = [vec![b'z'; 1_500_000], b"\n".to_vec()].concat();
    // Default server limit (1 MiB): the 1.5 MB frame closes the connection.
    let server = Server::start(&["--proto", "v3"]);
    let port = server.port();
    let client = ["client", "-p", "v3", "--port", &port, "--max-frame", "2M"];
    let out = run_with_stdin(&client, big.clone());
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("closed the connection before echoing"),
        "{err}"
    );
    // Raised on the server too: echoed.
    let server = Server::start(&["--proto", "v3", "--max-frame", "2M"]);
    let port = server.port();
    let client = ["client", "-p", "v3", "--port", &port, "--max-frame", "2M"];
    let out = run_with_stdin(&client, big.clone());
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("size=1500000"), "{}", stdout(&out));
    // The client refuses to send over its own (default) limit.
    let out = run_with_stdin(&["client", "-p", "v3", "--port", &port], big);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("--max-frame"), "{}", stderr(&out));
}

#[test]
fn large_text_message_does_not_deadlock() {
    // 8 MB on one line: the server echoes while the client is still
    // sending; the client must read while it writes.
    use std::process::Stdio;
    let server = Server::start(&["--proto", "text"]);
    let mut child = crate::util::rc1()
        .args([
            "client",
            "-p",
            "text",
            "--port",
            &server.port(),
            "-q",
            "--timeout",
            "10s",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let line = [vec![b'q'; 8_000_000], b"\n".to_vec()].concat();
    let w = std::thread::spawn(move || stdin.write_all(&line));
    let out = child.wait_with_output().unwrap();
    w.join().unwrap().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn client_fails_when_the_server_drops_it_mid_send() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port().to_string();
    let t = std::thread::spawn(move || {
        let (s, _) = l.accept().unwrap();
        drop(s); // closes at once, reading nothing
    });
    let big = [vec![b'y'; 4_000_000], b"\n".to_vec()].concat();
    let out = run_with_stdin(
        &["client", "-p", "v3", "--port", &port, "--max-frame", "8M"],
        big,
    );
    t.join().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let err = stderr(&out);
    assert!(err.starts_with("rc1: "), "{err}");
    assert!(err.contains("closed") || err.contains("failed"), "{err}");
}

#[test]
fn client_reports_an_echo_sent_twice() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port().to_string();
    let t = std::thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        s.set_read_timeout(Some(WAIT)).unwrap();
        let mut b = [0u8; 29];
        s.read_exact(&mut b).unwrap();
        s.write_all(&b).unwrap();
        s.write_all(&b).unwrap(); // once too often
        let mut rest = Vec::new();
        let _ = s.read_to_end(&mut rest);
    });
    let out = run(&["client", "-p", "v2", "--port", &port, "-m", "once"]);
    t.join().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("29 byte(s) after the last echo"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_second_udp_server_on_the_same_port_is_refused() {
    let server = Server::start(&["--proto", "udp"]);
    let out = run(&[
        "server",
        "-p",
        "udp",
        "--bind",
        "127.0.0.1",
        "--port",
        &server.port(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("the port is in use"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn ctrl_c_stops_even_when_clients_do_not_read_their_echoes() {
    let server = Server::start(&["--proto", "text"]);
    let big = vec![b'r'; 8_000_000];
    // Clients that send 8 MB and never read: the server's echo writes block.
    let hogs: Vec<TcpStream> = (0..4)
        .map(|_| {
            let mut s = TcpStream::connect(server.addr).unwrap();
            s.set_write_timeout(Some(Duration::from_millis(300)))
                .unwrap();
            let _ = s.write_all(&big); // stops when buffers fill
            s
        })
        .collect();
    let started = std::time::Instant::now();
    let (status, events) = server.stop();
    assert!(status.success());
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    let closes = events.iter().filter(|e| e["event"] == "close").count();
    assert_eq!(closes, hogs.len(), "{events:#?}");
}

#[test]
fn a_prompt_reader_of_the_selector_is_not_reported_as_slow() {
    let mut server = Server::start(&["--proto", "text-sel"]);
    let mut s = connect(&server);
    let mut r = s.try_clone().unwrap();
    let reader = std::thread::spawn(move || {
        let mut buf = vec![0u8; 1 << 16];
        let mut got = 0usize;
        while got < 20_000_000 {
            match r.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => got += n,
            }
        }
        got
    });
    s.write_all(&vec![b'p'; 20_000_000]).unwrap();
    assert_eq!(reader.join().unwrap(), 20_000_000);
    drop(s);
    server.wait_for(is("close"));
    assert!(
        !server.seen.iter().any(|e| e["event"] == "error"),
        "{:#?}",
        server.seen
    );
}

#[test]
fn clients_beyond_the_fd_limit_wait_and_are_served_later() {
    use std::process::Command;
    let have = Command::new("prlimit").arg("--version").output().is_ok();
    if !have_prerequisite(have, "clients_beyond_the_fd_limit", "prlimit (util-linux)") {
        return;
    }
    for proto in ["v2", "text-sel"] {
        let mut server = Server::start(&["--proto", proto]);
        let pid = server.pid().to_string();
        let ok = Command::new("prlimit")
            .args(["--pid", &pid, "--nofile=40:40"])
            .status()
            .unwrap();
        assert!(ok.success());
        let mut socks: Vec<TcpStream> = (0..50).map(|_| connect(&server)).collect();
        server.wait_for(|e| e["event"] == "error" && e["code"] == "io.accept");
        // Free room: the waiting clients are accepted and served.
        socks.drain(..25);
        let msg = format!("{proto} late");
        for s in socks.iter_mut() {
            if proto == "v2" {
                let f = rc1::codec::Frame::v2(1, 1, msg.as_bytes()).unwrap();
                let b = f.to_bytes(rc1::codec::Framing::V2);
                s.write_all(&b).unwrap();
                assert_eq!(read_exact_n(s, 29), b);
            } else {
                s.write_all(msg.as_bytes()).unwrap();
                assert_eq!(read_exact_n(s, msg.len()), msg.as_bytes());
            }
        }
    }
}

#[test]
fn selector_resumes_a_paused_client_whose_fin_came_while_paused() {
    // The client sends 3 MB without reading (the server pauses reads at
    // 256 KiB queued), closes its side while paused, then reads: it must get
    // every byte back and the server's close, not a stall.
    let server = Server::start(&["--proto", "text-sel"]);
    let mut s = connect(&server);
    let data = vec![b'f'; 3_000_000];
    let mut w = s.try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        w.write_all(&data).unwrap();
        w.shutdown(Shutdown::Write).unwrap();
    });
    std::thread::sleep(Duration::from_millis(300)); // let it pause with the FIN queued
    let mut got = 0usize;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = s
            .read(&mut buf)
            .expect("no stall: bytes or EOF within WAIT");
        if n == 0 {
            break;
        }
        got += n;
    }
    writer.join().unwrap();
    assert_eq!(got, 3_000_000);
}

#[test]
fn options_that_make_no_sense_are_usage_errors() {
    for (args, says) in [
        (
            &["server", "-p", "v2", "--idle-timeout", "0"][..],
            "--idle-timeout 0 ms",
        ),
        (
            &["server", "-p", "v2", "--idle-timeout", "50ms"][..],
            "at least 100ms",
        ),
        (
            &["server", "-p", "v2", "--max-conns", "0"][..],
            "--max-conns 0",
        ),
        (&["client", "-p", "v2", "--port", "0"][..], "--port 0"),
        (
            &["capture", "-i", "lo", "-B", "1k"][..],
            "-B/--buffer-size 1024",
        ),
    ] {
        let out = run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = stderr(&out);
        assert!(err.contains(says), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
    }
}

#[test]
fn a_flood_of_refused_connections_is_logged_once_a_second_and_counted() {
    let mut server = Server::start(&["--proto", "text", "--max-conns", "1"]);
    let _held = connect(&server);
    server.wait_for(is("accept"));
    for _ in 0..200 {
        let mut c = connect(&server);
        // Each is closed at once.
        let mut b = [0u8; 1];
        c.set_read_timeout(Some(WAIT)).unwrap();
        assert!(matches!(c.read(&mut b), Ok(0) | Err(_)));
    }
    let (status, events) = server.stop();
    assert!(status.success());
    let lines: Vec<_> = events.iter().filter(|e| e["event"] == "refuse").collect();
    let said: u64 = lines.iter().map(|e| 1 + e["more"].as_u64().unwrap()).sum();
    let stop = events.iter().find(|e| e["event"] == "stop").unwrap();
    assert_eq!(stop["refused"], 200, "{stop}");
    assert!(!lines.is_empty() && said <= 200, "{lines:#?}");
    // 200 refusals in a few seconds at most: a handful of lines, not 200.
    assert!(lines.len() <= 10, "{} refuse lines", lines.len());
}
