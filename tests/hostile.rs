//! Servers under hostile clients: hundreds of clients that send nothing or
//! trickle a byte a second must not stop a well-behaved client from being
//! served, on every TCP server; a silent client is closed after
//! --idle-timeout, with a log line.

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::util::{Server, run, stderr};

/// Idle and trickling clients at once, per server.
const HOSTILE: usize = 1000;

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
        let server = Server::start(&["--proto", proto, "--max-conns", "1500", "-q"]);
        let addr = server.addr;
        let mut socks: Vec<TcpStream> = (0..HOSTILE)
            .map(|i| {
                TcpStream::connect(addr).unwrap_or_else(|e| {
                    panic!("{proto}: hostile client {i} could not connect: {e}")
                })
            })
            .collect();
        // Half of them trickle one byte a second; the rest send nothing.
        let t0 = Instant::now();
        let mut rounds = 0;
        while t0.elapsed() < Duration::from_secs(2) {
            for s in socks.iter_mut().step_by(2) {
                let _ = s.write_all(b"x");
            }
            rounds += 1;
            std::thread::sleep(Duration::from_millis(500));
            if rounds == 2 {
                // Meanwhile, a lab client gets its echo as usual.
                let out = run(&[
                    "client",
                    "-p",
                    client,
                    "--port",
                    &server.port(),
                    "-m",
                    "still served?",
                ]);
                assert!(out.status.success(), "{proto}: {}", stderr(&out));
            }
        }
        drop(socks);
        let (status, _) = server.stop();
        assert!(status.success(), "{proto}");
    }
}

#[test]
fn a_silent_client_is_closed_after_the_idle_timeout_with_a_log_line() {
    for proto in ["text", "v2", "v3"] {
        let mut server = Server::start(&["--proto", proto, "--idle-timeout", "500ms"]);
        let _silent = TcpStream::connect(server.addr).unwrap();
        let closed = server.wait_for(|e| e["event"] == "close");
        let reason = closed["reason"].as_str().unwrap_or_default().to_string();
        assert!(reason.contains("--idle-timeout"), "{proto}: {closed}");
        server.stop();
    }
}
