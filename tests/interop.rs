//! Interop with the lab's language: Python `struct` peers (tests/peers/) as
//! the independent oracle, byte-exact both ways.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use serde_json::Value;

use crate::util::{Server, json_lines, peer, run, stderr};

/// Python's own bytes for a v2 frame, computed by `struct` here and now.
fn python_v2(order: u32, msg: &str) -> String {
    let code = format!(
        "import struct\nm={msg:?}\ns=len(m)\nm=m+'-'*(20-len(m)) if len(m)<20 else m\nprint(struct.pack('!BLL20s',1,{order},s,m.encode()).hex())"
    );
    let out = Command::new("python3")
        .args(["-c", &code])
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn python_client(proto: &str, port: &str, msgs: &[&str]) -> Vec<Value> {
    let out = Command::new("python3")
        .arg(peer("lab_client.py"))
        .args([proto, port])
        .args(msgs)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "python {proto} client failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    json_lines(&out)
}

#[test]
fn python_clients_against_rc1_servers() {
    let long = "hello world, how are you today";
    for (server_proto, proto) in [
        ("text", "text"),
        ("text-sel", "text"),
        ("v2", "v2"),
        ("v3", "v3"),
        ("udp", "udp"),
    ] {
        let mut args = vec!["--proto", server_proto];
        if proto == "udp" {
            args.push("--echo");
        }
        let mut server = Server::start(&args);
        // 100 kB over TCP; UDP's datagram limit is 65,507 bytes.
        let big = if proto == "udp" { "*60000" } else { "*100000" };
        let lines = python_client(proto, &server.port(), &["hello", long, big]);
        assert_eq!(lines.len(), 3);
        for l in &lines {
            assert!(l.get("echo_ok").is_none_or(|v| v == true), "{proto}: {l}");
            if let Some(sent) = l.get("sent") {
                assert_eq!(sent, &l["echo"], "{proto}: byte-exact echo");
            }
        }
        if proto == "v2" {
            let frames = server.wait_count(3, |e| e["event"] == "frame");
            assert_eq!(frames[1]["size"], 30);
            assert_eq!(frames[1]["message"], &long[..20]);
            assert_eq!(frames[1]["cut"], true);
            assert_eq!(lines[1]["sent"], python_v2(2, long));
            // The 100 kB message: v2 keeps 20 bytes and size 100000.
            assert_eq!(frames[2]["size"], 100_000);
        }
        if proto == "v3" {
            let frames = server.wait_count(3, |e| e["event"] == "frame");
            assert_eq!(frames[2]["size"], 100_000);
            assert_eq!(frames[2]["message"].as_str().unwrap().len(), 100_000);
        }
        assert!(server.stop().0.success());
    }
}

struct PyServer {
    child: Child,
    port: String,
    lines: std::io::Lines<BufReader<std::process::ChildStdout>>,
}

impl PyServer {
    fn start(proto: &str) -> PyServer {
        let mut child = Command::new("python3")
            .arg(peer("lab_server.py"))
            .arg(proto)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let first: Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
        PyServer {
            child,
            port: first["port"].to_string(),
            lines,
        }
    }

    fn next(&mut self) -> Value {
        serde_json::from_str(&self.lines.next().unwrap().unwrap()).unwrap()
    }
}

impl Drop for PyServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn rc1_v2_client_against_python_server_is_byte_exact() {
    let mut py = PyServer::start("v2");
    let long = "hello world, how are you today";
    let out = run(&[
        "client", "-p", "v2", "--port", &py.port, "-m", "hi", "-m", long,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let a = py.next();
    assert_eq!(
        (
            a["version"].as_u64(),
            a["order"].as_u64(),
            a["size"].as_u64()
        ),
        (Some(1), Some(1), Some(2))
    );
    assert_eq!(a["raw"], python_v2(1, "hi"));
    let b = py.next();
    assert_eq!(b["size"], 30);
    assert_eq!(b["raw"], python_v2(2, long));
}

#[test]
fn rc1_v3_client_against_python_server_100k() {
    let mut py = PyServer::start("v3");
    let big: String = "abcdefghij".repeat(10_000);
    let out = run(&[
        "client", "-p", "v3", "--port", &py.port, "-m", "short", "-m", &big,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let a = py.next();
    assert_eq!(
        (a["order"].as_u64(), a["size"].as_u64(), a["len"].as_u64()),
        (Some(1), Some(5), Some(5))
    );
    assert_eq!(a["head"], "73686f7274"); // "short"
    let b = py.next();
    assert_eq!(
        (b["order"].as_u64(), b["size"].as_u64(), b["len"].as_u64()),
        (Some(2), Some(100_000), Some(100_000))
    );
}

#[test]
fn rc1_text_and_udp_clients_against_python_servers() {
    for proto in ["text", "udp"] {
        let mut py = PyServer::start(proto);
        let mut args = vec![
            "client",
            "-p",
            proto,
            "--port",
            &py.port,
            "-m",
            "olá mundo",
            "--json",
        ];
        if proto == "udp" {
            args.push("--echo");
        }
        let out = run(&args);
        assert!(out.status.success(), "{proto}: {}", stderr(&out));
        let got = py.next();
        assert_eq!(got["text"], "6f6cc3a1206d756e646f"); // "olá mundo" in UTF-8
        let events = json_lines(&out);
        let local: std::net::SocketAddr = events[0]["local"].as_str().unwrap().parse().unwrap();
        assert_eq!(got["peer_port"], local.port());
        assert!(
            events
                .iter()
                .any(|e| e["event"] == "echo" && e["ok"] == true)
        );
    }
}
