//! Shared helpers: run the `rc1` binary, start servers on port 0 and read
//! their JSON events, with every wait bounded.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The longest any single wait in these tests may take.
pub const WAIT: Duration = Duration::from_secs(10);

/// A command running the built `rc1`.
pub fn rc1() -> Command {
    Command::new(env!("CARGO_BIN_EXE_rc1"))
}

/// Runs `rc1 ARGS` to completion (its own --timeout bounds it).
pub fn run(args: &[&str]) -> Output {
    rc1()
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run rc1")
}

/// Lines of stdout.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Lines of stderr.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Parses every stdout line as JSON.
pub fn json_lines(o: &Output) -> Vec<Value> {
    stdout(o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l:?}: {e}")))
        .collect()
}

/// A running `rc1 server … --json`, on a port the OS chose.
pub struct Server {
    child: Option<Child>,
    /// Where it listens (loopback form of the bound address).
    pub addr: SocketAddr,
    events: Receiver<Value>,
    /// Events read so far.
    pub seen: Vec<Value>,
}

impl Server {
    /// Starts `rc1 server ARGS --port 0 --json` bound to 127.0.0.1 unless
    /// ARGS says `--bind`.
    pub fn start(args: &[&str]) -> Server {
        let mut cmd = rc1();
        cmd.arg("server").args(args).args(["--port", "0", "--json"]);
        if !args.contains(&"--bind") {
            cmd.args(["--bind", "127.0.0.1"]);
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .stdin(Stdio::null())
            .spawn()
            .expect("start rc1 server");
        let out = child.stdout.take().expect("stdout");
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                let v: Value = serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("server printed non-JSON {line:?}: {e}"));
                if tx.send(v).is_err() {
                    break;
                }
            }
        });
        let mut s = Server {
            child: Some(child),
            addr: "0.0.0.0:0".parse().unwrap(),
            events: rx,
            seen: Vec::new(),
        };
        let listening = s.wait_for(|e| e["event"] == "listening");
        let bound: SocketAddr = listening["addr"].as_str().unwrap().parse().unwrap();
        s.addr = bound;
        s
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// The port, as a string for command lines.
    pub fn port(&self) -> String {
        self.addr.port().to_string()
    }

    /// Waits (bounded) for an event matching `pred`, keeping all events seen.
    pub fn wait_for(&mut self, pred: impl Fn(&Value) -> bool) -> Value {
        if let Some(v) = self.seen.iter().find(|v| pred(v)) {
            return v.clone();
        }
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(left) {
                Ok(v) => {
                    self.seen.push(v.clone());
                    if pred(&v) {
                        return v;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    panic!(
                        "no matching server event within {WAIT:?}; seen: {:#?}",
                        self.seen
                    )
                }
                Err(RecvTimeoutError::Disconnected) => {
                    panic!("server exited; events: {:#?}", self.seen)
                }
            }
        }
    }

    /// Waits until `n` events match `pred` (counted as they come: cheap for
    /// tens of thousands of events).
    pub fn wait_count(&mut self, n: usize, pred: impl Fn(&Value) -> bool) -> Vec<Value> {
        self.wait_count_or(n, pred, |seen| {
            format!(
                "last events seen: {:#?}",
                seen.iter().rev().take(20).collect::<Vec<_>>()
            )
        })
    }

    /// [`Server::wait_count`], explaining a timeout with `why(seen)`.
    pub fn wait_count_or(
        &mut self,
        n: usize,
        pred: impl Fn(&Value) -> bool,
        why: impl Fn(&[Value]) -> String,
    ) -> Vec<Value> {
        let deadline = Instant::now() + WAIT;
        let mut count = self.seen.iter().filter(|v| pred(v)).count();
        while count < n {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(left) {
                Ok(v) => {
                    count += usize::from(pred(&v));
                    self.seen.push(v);
                }
                Err(_) => panic!(
                    "wanted {n} matching events within {WAIT:?}, got {count}; {}",
                    why(&self.seen)
                ),
            }
        }
        self.seen.iter().filter(|v| pred(v)).cloned().collect()
    }

    /// Sends SIGINT (Ctrl+C) and waits (bounded) for the exit; returns the
    /// status and every event printed.
    pub fn stop(mut self) -> (ExitStatus, Vec<Value>) {
        let mut child = self.child.take().expect("running");
        let _ = Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + WAIT;
        let status = loop {
            if let Some(s) = child.try_wait().expect("wait") {
                break s;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("server did not stop within {WAIT:?} of Ctrl+C");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        while let Ok(v) = self.events.recv_timeout(Duration::from_secs(2)) {
            self.seen.push(v);
        }
        (status, std::mem::take(&mut self.seen))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Path of a Python peer in tests/peers.
pub fn peer(name: &str) -> String {
    format!("{}/tests/peers/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// Whether a test's prerequisite is here. When it is not, says loudly that
/// the test is skipped — and under `CI=true` fails instead: CI must have it.
pub fn have_prerequisite(present: bool, test: &str, what: &str) -> bool {
    if present {
        return true;
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{test}: {what} is missing on this CI machine"
    );
    eprintln!("SKIPPED {test}: {what} is missing on this machine");
    false
}

/// Runs `rc1 ARGS` with `input` on stdin (for messages too long for a
/// command-line argument), writing from a thread so neither side blocks.
pub fn run_with_stdin(args: &[&str], input: Vec<u8>) -> Output {
    let mut child = rc1()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run rc1");
    let mut stdin = child.stdin.take().expect("stdin");
    let writer = std::thread::spawn(move || {
        use std::io::Write;
        // The client may exit early (that can be the point of the test).
        let _ = stdin.write_all(&input);
    });
    let out = child.wait_with_output().expect("wait rc1");
    writer.join().expect("stdin writer");
    out
}

/// A pcap (Ethernet, IPv4) of one TCP connection from 10.0.0.1:40100 to
/// 10.0.0.2:`port` with no handshake: each payload a segment, `true` for
/// client to server. tshark does not check checksums by default.
pub fn tcp_pcap(port: u16, segments: &[(bool, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for v in [
        0xA1B2_C3D4u32.to_le_bytes().as_slice(),
        &2u16.to_le_bytes(),
        &4u16.to_le_bytes(),
    ] {
        out.extend_from_slice(v);
    }
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(&65535u32.to_le_bytes());
    out.extend_from_slice(&1u32.to_le_bytes()); // Ethernet
    let mut seq = [1000u32, 2000u32];
    for (i, (to_server, payload)) in segments.iter().enumerate() {
        let (src, dst, sport, dport) = if *to_server {
            ([10, 0, 0, 1], [10, 0, 0, 2], 40100u16, port)
        } else {
            ([10, 0, 0, 2], [10, 0, 0, 1], port, 40100u16)
        };
        let me = usize::from(!*to_server);
        let mut tcp = Vec::new();
        tcp.extend_from_slice(&sport.to_be_bytes());
        tcp.extend_from_slice(&dport.to_be_bytes());
        tcp.extend_from_slice(&seq[me].to_be_bytes());
        tcp.extend_from_slice(&seq[1 - me].to_be_bytes());
        tcp.extend_from_slice(&[0x50, 0x18, 0xFF, 0xFF, 0, 0, 0, 0]); // PSH|ACK
        tcp.extend_from_slice(payload);
        seq[me] = seq[me].wrapping_add(u32::try_from(payload.len()).unwrap());
        let mut ip = vec![0x45, 0];
        ip.extend_from_slice(&u16::try_from(20 + tcp.len()).unwrap().to_be_bytes());
        ip.extend_from_slice(&[0, 1, 0x40, 0, 64, 6, 0, 0]);
        ip.extend_from_slice(&src);
        ip.extend_from_slice(&dst);
        ip.extend_from_slice(&tcp);
        let mut frame = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00];
        frame.extend_from_slice(&ip);
        let len = u32::try_from(frame.len()).unwrap();
        out.extend_from_slice(&1_700_000_000u32.to_le_bytes());
        out.extend_from_slice(&u32::try_from(i).unwrap().to_le_bytes());
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&frame);
    }
    out
}

/// Sends SIGINT (Ctrl+C) to `child` and waits, bounded by [`WAIT`], for it
/// to exit.
pub fn ctrl_c_and_wait(child: &mut Child) {
    Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("run kill");
    let deadline = Instant::now() + WAIT;
    while child.try_wait().expect("try_wait").is_none() {
        assert!(Instant::now() < deadline, "did not stop on Ctrl+C");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Held by each test that captures live on lo, so two of them never run at
/// once: a flood frozen under one capture must not starve the other.
pub fn live_capture_lock() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Whether this process may open a live capture on lo.
pub fn can_capture() -> bool {
    run(&["capture", "-i", "lo", "-c", "0", "-q"])
        .status
        .success()
}

/// For a test that captures live on lo: the lock that runs such tests one
/// at a time, or `None` (said loudly; a failure under `CI=true`) when this
/// process may not capture.
pub fn live_capture(test: &str) -> Option<std::sync::MutexGuard<'static, ()>> {
    let lock = live_capture_lock();
    have_prerequisite(
        can_capture(),
        test,
        "capture privilege (root or CAP_NET_RAW)",
    )
    .then_some(lock)
}
