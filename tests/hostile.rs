//! Servers under hostile clients: hundreds of clients that send nothing or
//! trickle a byte a second must not stop a well-behaved client from being
//! served, on every TCP server; a silent client is closed after
//! --idle-timeout, with a log line.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::util::{Server, run, stderr};

/// Clients that trickle a byte at a time, per server.
const TRICKLING: usize = 1000;
/// Clients that connect and send nothing, per server.
const SILENT: usize = 500;

#[test]
fn a_well_behaved_client_is_served_beside_a_thousand_idle_and_trickling_ones() {
    // The test holds a socket per hostile client.
    let _ = rlimit::increase_nofile_limit(8192);
    for (proto, client) in [
        ("text", "text"),
        ("text-sel", "text"),
        ("v2", "v2"),
        ("v3", "v3"),
    ] {
        let server = Server::start(&["--proto", proto, "--max-conns", "2000", "-q"]);
        let addr = server.addr;
        let mut socks: Vec<TcpStream> = (0..TRICKLING + SILENT)
            .map(|i| {
                TcpStream::connect(addr).unwrap_or_else(|e| {
                    panic!("{proto}: hostile client {i} could not connect: {e}")
                })
            })
            .collect();
        // The first TRICKLING send a byte each round; the rest nothing.
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(2) {
            for s in socks.iter_mut().take(TRICKLING) {
                let _ = s.write_all(b"x");
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        // With all of them connected, a lab client gets its echo as usual.
        lab_client_ok(&server, proto, client, "still served?");
        drop(socks);
        let (status, _) = server.stop();
        assert!(status.success(), "{proto}");
    }
}

#[test]
fn a_silent_client_is_closed_after_the_idle_timeout_with_a_log_line() {
    for proto in ["text", "text-sel", "v2", "v3"] {
        let mut server = Server::start(&["--proto", proto, "--idle-timeout", "500ms"]);
        let _silent = TcpStream::connect(server.addr).unwrap();
        let closed = server.wait_for(|e| e["event"] == "close");
        let reason = closed["reason"].as_str().unwrap_or_default().to_string();
        assert!(reason.contains("--idle-timeout"), "{proto}: {closed}");
        server.stop();
    }
}

#[test]
fn a_client_that_keeps_talking_is_not_idle() {
    for (proto, _) in SERVERS {
        let mut server = Server::start(&["--proto", proto, "--idle-timeout", "1s"]);
        let mut talker = TcpStream::connect(server.addr).unwrap();
        talker.set_read_timeout(Some(crate::util::WAIT)).unwrap();
        let talker_conn = server.wait_for(|e| e["event"] == "accept")["conn"].clone();
        let silent = TcpStream::connect(server.addr).unwrap();
        // For 3 s (three timeouts), one request and its echo every 200 ms.
        let t0 = Instant::now();
        let mut order = 1;
        while t0.elapsed() < Duration::from_secs(3) {
            let req = request(proto, order);
            talker.write_all(&req).unwrap();
            let mut echo = vec![0u8; req.len()];
            talker
                .read_exact(&mut echo)
                .unwrap_or_else(|e| panic!("{proto}: talker lost after {:?}: {e}", t0.elapsed()));
            assert_eq!(echo, req, "{proto}");
            order += 1;
            std::thread::sleep(Duration::from_millis(200));
        }
        // The silent one beside it was closed; the talker never was.
        let closed = server.wait_for(|e| e["event"] == "close");
        assert_ne!(closed["conn"], talker_conn, "{proto}: {closed}");
        assert!(
            closed["reason"]
                .as_str()
                .unwrap()
                .contains("nothing received"),
            "{proto}: {closed}"
        );
        assert!(
            !server
                .seen
                .iter()
                .any(|e| e["event"] == "close" && e["conn"] == talker_conn),
            "{proto}: the talker was closed"
        );
        drop(silent);
        assert!(server.stop().0.success(), "{proto}");
    }
}

/// A v2 frame (29 bytes): version 1, `order`, the message padded with '-'.
fn v2_frame(order: u32, msg: &[u8]) -> Vec<u8> {
    let mut f = vec![1u8];
    f.extend_from_slice(&order.to_be_bytes());
    f.extend_from_slice(&(msg.len() as u32).to_be_bytes());
    let mut body = msg.to_vec();
    body.resize(20, b'-');
    f.extend_from_slice(&body[..20]);
    f
}

/// A v3 frame: the 9-byte header and the message.
fn v3_frame(order: u32, msg: &[u8]) -> Vec<u8> {
    let mut f = vec![1u8];
    f.extend_from_slice(&order.to_be_bytes());
    f.extend_from_slice(&(msg.len() as u32).to_be_bytes());
    f.extend_from_slice(msg);
    f
}

/// A whole request of this protocol, whose echo is the same bytes.
fn request(proto: &str, order: u32) -> Vec<u8> {
    match proto {
        "v2" => v2_frame(order, b"storm"),
        "v3" => v3_frame(order, b"storm of short connections"),
        _ => b"storm".to_vec(),
    }
}

/// The first part of a request: a frame (or a message) the client never
/// finishes.
fn half_request(proto: &str) -> Vec<u8> {
    match proto {
        "v2" => v2_frame(1, b"cut")[..10].to_vec(),
        "v3" => v3_frame(1, &[b'h'; 100])[..50].to_vec(),
        _ => b"half a mess".to_vec(),
    }
}

/// Closes with RST instead of FIN (SO_LINGER 0).
fn reset(s: TcpStream) {
    socket2::SockRef::from(&s)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(s);
}

const SERVERS: [(&str, &str); 4] = [
    ("text", "text"),
    ("text-sel", "text"),
    ("v2", "v2"),
    ("v3", "v3"),
];

/// A lab client sends `msg` and must get its echo.
fn lab_client_ok(server: &Server, proto: &str, client: &str, msg: &str) {
    let out = run(&["client", "-p", client, "--port", &server.port(), "-m", msg]);
    assert!(out.status.success(), "{proto}: {}", stderr(&out));
}

/// A lab client gets its echo; returns the server's `accept` event for it.
fn lab_client_served(server: &mut Server, proto: &str, client: &str) -> serde_json::Value {
    // A message no other client sent identifies the connection (ports are
    // reused, so the peer address would not).
    let nonce = format!(
        "served? {}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
    );
    lab_client_ok(server, proto, client, &nonce);
    let seen = server.wait_for(|e| {
        (e["event"] == "text" || e["event"] == "frame") && e["message"] == nonce.as_str()
    });
    let conn = seen["conn"].clone();
    server.wait_for(|e| e["event"] == "accept" && e["conn"] == conn)
}

#[test]
fn a_client_that_never_reads_its_echoes_is_paused_then_closed() {
    for (proto, client) in SERVERS {
        // Quiet: the server logs no line per frame (the pause and its own
        // close still show), so the test holds few events.
        let mut server = Server::start(&["--proto", proto, "--idle-timeout", "1s", "-q"]);
        let hog = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        // A small receive window: the server's echoes back up sooner.
        hog.set_recv_buffer_size(4096).unwrap();
        hog.connect(&server.addr.into()).unwrap();
        let mut hog: TcpStream = hog.into();
        hog.set_write_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        // Send whole requests, never read, until the server stops taking
        // them (bounded: 64 MB or the wait).
        let mut batch = Vec::new();
        let mut order = 1u32;
        while batch.len() < 64 * 1024 {
            batch.extend(request(proto, order));
            order += 1;
        }
        let t0 = Instant::now();
        let mut pushed = 0usize;
        while pushed < 64 << 20 && t0.elapsed() < crate::util::WAIT {
            match hog.write(&batch) {
                Ok(n) => pushed += n,
                Err(_) => break,
            }
        }
        assert!(
            pushed < 64 << 20,
            "{proto}: the server took {pushed} bytes from a client that reads nothing"
        );
        let pause = server.wait_for(|e| e["event"] == "pause");
        assert!(pause["queued"].as_u64().unwrap() > 0, "{proto}: {pause}");
        let conn = pause["conn"].clone();
        // Paused, the server still serves everyone else.
        lab_client_ok(&server, proto, client, "served?");
        let closed = server.wait_for(|e| e["event"] == "close" && e["conn"] == conn);
        let reason = closed["reason"].as_str().unwrap();
        assert!(
            reason.contains("read none of its echoes") && reason.contains("paused"),
            "{proto}: {closed}"
        );
        // Not a byte more was echoed than the client sent.
        assert!(
            closed["bytes_out"].as_u64().unwrap() <= closed["bytes_in"].as_u64().unwrap(),
            "{proto}: {closed}"
        );
        drop(hog);
        assert!(server.stop().0.success(), "{proto}");
    }
}

#[test]
fn a_reset_in_the_middle_of_a_frame_is_reported_and_only_that_client_is_closed() {
    for (proto, client) in SERVERS {
        let mut server = Server::start(&["--proto", proto]);
        let mut s = TcpStream::connect(server.addr).unwrap();
        let accepted = server.wait_for(|e| e["event"] == "accept");
        let conn = accepted["conn"].clone();
        s.write_all(&half_request(proto)).unwrap();
        if proto.starts_with("text") {
            // Text has no frames: the server echoes what it read.
            let mut echo = vec![0u8; half_request(proto).len()];
            s.set_read_timeout(Some(crate::util::WAIT)).unwrap();
            s.read_exact(&mut echo).unwrap();
        } else {
            // Let the server read the half frame before the reset.
            std::thread::sleep(Duration::from_millis(300));
        }
        reset(s);
        let closed = server.wait_for(|e| e["event"] == "close" && e["conn"] == conn);
        let reason = closed["reason"].as_str().unwrap();
        if proto.starts_with("text") {
            assert_eq!(reason, "client reset the connection (RST)", "{proto}");
        } else {
            assert_eq!(
                reason, "client reset the connection (RST) mid-frame",
                "{proto}"
            );
            let err = server.wait_for(|e| e["event"] == "error" && e["conn"] == conn);
            assert_eq!(err["code"], "frame.truncated", "{proto}: {err}");
            let msg = err["message"].as_str().unwrap();
            assert!(msg.contains("RST"), "{proto}: {msg}");
        }
        lab_client_served(&mut server, proto, client);
        assert!(server.stop().0.success(), "{proto}");
    }
}

/// Short connections per server in the storm.
const STORM: usize = 10_000;
/// Client threads storming at once.
const STORMERS: usize = 4;

#[test]
fn a_storm_of_ten_thousand_short_connections_leaves_every_server_serving() {
    for (proto, client) in SERVERS {
        let mut server = Server::start(&["--proto", proto]);
        let addr = server.addr;
        let t0 = Instant::now();
        let echoed: usize = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..STORMERS)
                .map(|w| {
                    scope.spawn(move || {
                        let mut echoed = 0;
                        for i in (w..STORM).step_by(STORMERS) {
                            let mut s = TcpStream::connect(addr).unwrap_or_else(|e| {
                                panic!("{proto}: storm connection {i} could not connect: {e}")
                            });
                            match i % 4 {
                                // Connect and leave.
                                0 => drop(s),
                                // Connect and reset.
                                1 => reset(s),
                                // One request, its echo, and leave.
                                2 => {
                                    let req = request(proto, 1);
                                    s.set_read_timeout(Some(crate::util::WAIT)).unwrap();
                                    s.write_all(&req).unwrap();
                                    let mut echo = vec![0u8; req.len()];
                                    s.read_exact(&mut echo).unwrap_or_else(|e| {
                                        panic!("{proto}: no echo on storm connection {i}: {e}")
                                    });
                                    assert_eq!(echo, req, "{proto}: storm connection {i}");
                                    echoed += 1;
                                }
                                // Half a request, then a reset.
                                _ => {
                                    s.write_all(&half_request(proto)).unwrap();
                                    reset(s);
                                }
                            }
                        }
                        echoed
                    })
                })
                .collect();
            workers.into_iter().map(|w| w.join().unwrap()).sum()
        });
        let took = t0.elapsed();
        assert_eq!(echoed, STORM / 4, "{proto}");
        // Served at once after the storm. The accept queue is first in,
        // first out: once this client is accepted, so is every storm
        // connection that reached the server.
        let after = lab_client_served(&mut server, proto, client);
        let accepted = after["conn"].as_u64().unwrap() - 1;
        // Only a connection reset right after its connect may miss the
        // server: the kernel drops it if the reset comes before its
        // handshake reached the accept queue. Every other one arrives.
        let vanished = STORM as u64 - accepted;
        assert!(
            vanished <= (STORM / 4) as u64,
            "{proto}: {accepted} accepted"
        );
        // Every accepted connection is closed, once.
        let closes = server.wait_count_or(
            accepted as usize,
            |e| e["event"] == "close" && e["conn"].as_u64().is_some_and(|c| c <= accepted),
            |seen| {
                let closed: std::collections::HashSet<_> = seen
                    .iter()
                    .filter(|e| e["event"] == "close")
                    .map(|e| e["conn"].clone())
                    .collect();
                let open: Vec<_> = seen
                    .iter()
                    .filter(|e| e["event"] == "accept" && !closed.contains(&e["conn"]))
                    .collect();
                format!("{proto}: accepted, never closed: {open:#?}")
            },
        );
        let mut ids: Vec<u64> = closes.iter().map(|e| e["conn"].as_u64().unwrap()).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(
            ids.len() as u64,
            accepted,
            "{proto}: each connection closes once"
        );
        // Each request-and-echo connection was served whole and closed cleanly.
        let clean = closes
            .iter()
            .filter(|e| e["reason"] == "client closed" && e["messages"] == 1)
            .count();
        assert_eq!(clean, STORM / 4, "{proto}");
        let unexpected: Vec<_> = server
            .seen
            .iter()
            .filter(|e| {
                e["event"] == "refuse" || (e["event"] == "error" && e["code"] != "frame.truncated")
            })
            .collect();
        assert!(unexpected.is_empty(), "{proto}: {unexpected:#?}");
        // No slot or thread leaked: the next client is alone.
        let accept = lab_client_served(&mut server, proto, client);
        assert_eq!(accept["active"], 1, "{proto}: {accept}");
        eprintln!(
            "{proto}: {STORM} short connections in {took:?}; {vanished} reset before the server could see them"
        );
        assert!(server.stop().0.success(), "{proto}");
    }
}
