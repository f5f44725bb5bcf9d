//! `rc1 lab N`: runs an exercise of the lab guide end to end on loopback,
//! captures it, draws its ladder and answers the exercise's questions from
//! what this run measured.
//!
//! ```text
//! server (lab::Server, its log kept)   capture on lo (capture::run)
//!        ^                                   |-> observe::Observed (facts)
//!        |  script::play (the clients)       |-> Ladder (text, mermaid)
//!        +-----------------------------------+
//!                       answers::answer(run) -> text or JSON
//! ```
//!
//! Capturing needs root or CAP_NET_RAW; without it the exercise still runs
//! (its clients' ports are still the OS's choice), and the wire facts come
//! from the exercise's shipped fixture instead, said on every answer.

pub mod answers;
pub mod observe;
pub mod script;

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};

use crate::capture::event::{Sink, Tee};
use crate::capture::output::ladder::{Ladder, LadderOptions, LadderStyle};
use crate::capture::session::{ProtoChoice, TrackerOptions};
use crate::capture::source::Timestamp;
use crate::capture::{self, CaptureOptions, Input};
use crate::lab::event::{Format, Log};
use crate::lab::{Server, ServerOptions, ServerProto};
use crate::stop::Stop;
use observe::Observed;
use script::Exchange;

/// An exercise, or one question of it (`4`, `4.2`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exercise {
    /// 1 to 5.
    pub number: u8,
    /// The question within it (`2` of `4.2`), or all of them.
    pub part: Option<u8>,
}

impl Exercise {
    /// Questions of each exercise: x.1 and x.2, and x.3 (the echo) for 4
    /// and 5.
    pub fn parts(self) -> u8 {
        if self.number >= 4 { 3 } else { 2 }
    }

    /// The lab's server script.
    pub fn python_server(self) -> &'static str {
        [
            "serverUDP.py",
            "serverTCP.py",
            "serverTCPsel.py",
            "serverTCPv2.py",
            "serverTCPv3.py",
        ][usize::from(self.number.clamp(1, 5) - 1)]
    }

    /// The lab's client script.
    pub fn python_client(self) -> &'static str {
        [
            "clientUDP.py",
            "clientTCP.py",
            "clientTCP.py",
            "clientTCPv2.py",
            "clientTCPv3.py",
        ][usize::from(self.number.clamp(1, 5) - 1)]
    }

    /// rc1's server for it.
    pub fn server(self) -> ServerProto {
        match self.number {
            1 => ServerProto::Udp,
            2 => ServerProto::Text,
            3 => ServerProto::TextSel,
            4 => ServerProto::V2,
            _ => ServerProto::V3,
        }
    }

    /// rc1's client `--proto` for it.
    pub fn client_proto(self) -> &'static str {
        match self.number {
            1 => "udp",
            2 | 3 => "text",
            4 => "v2",
            _ => "v3",
        }
    }

    /// The shipped capture of this exercise, by name, and its bytes.
    pub fn fixture(self) -> (&'static str, &'static [u8]) {
        match self.number {
            1 => (
                "fixtures/udp.pcap",
                include_bytes!("../../fixtures/udp.pcap"),
            ),
            2 => (
                "fixtures/text-threaded.pcap",
                include_bytes!("../../fixtures/text-threaded.pcap"),
            ),
            3 => (
                "fixtures/text-selector.pcap",
                include_bytes!("../../fixtures/text-selector.pcap"),
            ),
            4 => (
                "fixtures/v2-echo.pcap",
                include_bytes!("../../fixtures/v2-echo.pcap"),
            ),
            _ => (
                "fixtures/v3-echo.pcap",
                include_bytes!("../../fixtures/v3-echo.pcap"),
            ),
        }
    }

    /// Whether question `part` is wanted.
    pub fn wants(self, part: u8) -> bool {
        self.part.is_none_or(|p| p == part)
    }
}

impl std::fmt::Display for Exercise {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.part {
            Some(p) => write!(f, "{}.{p}", self.number),
            None => write!(f, "{}", self.number),
        }
    }
}

impl FromStr for Exercise {
    type Err = String;

    fn from_str(s: &str) -> Result<Exercise, String> {
        let bad = || {
            format!(
                "no exercise {s:?} in the lab guide: give 1 to 5, or one question: \
                 1.1 1.2 2.1 2.2 3.1 3.2 4.1 4.2 4.3 5.1 5.2 5.3"
            )
        };
        let (n, part) = match s.split_once('.') {
            Some((n, p)) => (n, Some(p.parse::<u8>().map_err(|_| bad())?)),
            None => (s, None),
        };
        let number = n.parse::<u8>().map_err(|_| bad())?;
        if !(1..=5).contains(&number) {
            return Err(bad());
        }
        let e = Exercise { number, part };
        if part.is_some_and(|p| p == 0 || p > e.parts()) {
            return Err(bad());
        }
        Ok(e)
    }
}

/// Settings of `rc1 lab`.
#[derive(Debug, Clone)]
pub struct LabOptions {
    /// Which exercise.
    pub exercise: Exercise,
    /// The server's port (the lab's 5005; 0: any free port).
    pub port: u16,
    /// The interface to capture on (loopback).
    pub iface: String,
    /// Keep the capture and the Mermaid diagram in this directory.
    pub keep: Option<PathBuf>,
    /// Decode the shipped fixture even when capturing is allowed.
    pub fixture: bool,
    /// Width of the text ladder.
    pub width: usize,
    /// Colour in the text ladder.
    pub color: bool,
}

/// Where the wire facts came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wire {
    /// Captured live in this run.
    Live {
        /// The interface.
        iface: String,
    },
    /// The shipped fixture, because capturing was not possible (or asked).
    Fixture {
        /// Its name.
        name: &'static str,
        /// Why not live.
        why: String,
    },
}

/// One line of the server's log, as it was printed (JSON), with its time.
#[derive(Debug, Clone)]
pub struct LogLine {
    /// When it was printed.
    pub ts: Timestamp,
    /// The event.
    pub json: serde_json::Value,
}

impl LogLine {
    /// The event's name (`accept`, `text`, `frame`, `close`, ...).
    pub fn event(&self) -> &str {
        self.json
            .get("event")
            .and_then(|v| v.as_str())
            .unwrap_or("")
    }

    /// A string field.
    pub fn str(&self, key: &str) -> Option<&str> {
        self.json.get(key).and_then(|v| v.as_str())
    }

    /// An integer field.
    pub fn num(&self, key: &str) -> Option<u64> {
        self.json.get(key).and_then(|v| v.as_u64())
    }

    /// The peer, parsed.
    pub fn peer(&self) -> Option<SocketAddr> {
        self.str("peer").and_then(|p| p.parse().ok())
    }
}

/// A finished run: everything the answers are built from.
pub struct Run {
    /// The exercise.
    pub exercise: Exercise,
    /// The server's address in this run.
    pub server: SocketAddr,
    /// What the clients did.
    pub exchange: Exchange,
    /// The server's log.
    pub log: Vec<LogLine>,
    /// Where the wire facts come from.
    pub wire: Wire,
    /// The wire facts.
    pub observed: Observed,
    /// The text ladder.
    pub ladder: Ladder,
    /// The same as Mermaid.
    pub mermaid: Ladder,
    /// The OS's ephemeral port range (`ip_local_port_range`).
    pub port_range: Option<(u16, u16)>,
    /// Files kept (`--keep`).
    pub kept: Vec<PathBuf>,
}

/// A writer that keeps what the server's log prints.
#[derive(Clone, Default)]
struct Kept(Arc<Mutex<Vec<Stamped>>>);

/// A line the server printed, and when.
type Stamped = (Timestamp, Vec<u8>);

impl Write for Kept {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut v = self.0.lock().unwrap_or_else(|p| p.into_inner());
        // One log line is one write of its text and one of the newline:
        // a piece is stamped when it starts a line.
        match v.last_mut() {
            Some((_, line)) if !line.ends_with(b"\n") => line.extend_from_slice(buf),
            _ => v.push((now(), buf.to_vec())),
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn now() -> Timestamp {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    Timestamp {
        sec: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        usec: d.subsec_micros(),
    }
}

/// The OS's ephemeral port range.
pub fn port_range() -> Option<(u16, u16)> {
    let s = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok()?;
    let mut it = s.split_whitespace().map(|p| p.parse::<u16>().ok());
    Some((it.next()??, it.next()??))
}

/// How long the capture keeps reading after the last client is done: more
/// than libpcap's read timeout, so the last packets are delivered.
const SETTLE: Duration = Duration::from_millis(350);

fn ladders(o: &LabOptions) -> (Ladder, Ladder) {
    let text = Ladder::new(LadderOptions {
        style: LadderStyle::Text,
        width: o.width,
        color: o.color,
        max_events: 400,
        from: None,
        to: None,
        session: None,
    });
    let mermaid = Ladder::new(LadderOptions {
        style: LadderStyle::Mermaid,
        width: 200,
        color: false,
        max_events: 400,
        from: None,
        to: None,
        session: None,
    });
    (text, mermaid)
}

fn capture_options(input: Input, port: u16, filter: Option<String>) -> CaptureOptions {
    CaptureOptions {
        input,
        filter,
        tracker: TrackerOptions {
            port,
            proto: ProtoChoice::Auto,
            max_frame: crate::spec::DEFAULT_MAX_FRAME,
            max_buffered: 4 << 20,
            framings: &[],
        },
        count: None,
        tcp_events: true,
        write: None,
        buffer: capture::source::LIVE_BUFFER,
        progress: false,
    }
}

struct Sinks {
    ladder: Ladder,
    mermaid: Ladder,
    observed: Observed,
}

impl Sinks {
    fn drive(
        &mut self,
        opts: &CaptureOptions,
        source: capture::source::Source,
        stop: &Stop,
    ) -> Result<()> {
        let mut both = Tee(&mut self.ladder, &mut self.mermaid);
        let mut all = Tee(&mut both as &mut dyn Sink, &mut self.observed);
        let outcome = capture::run(opts, source, stop, &mut all)?;
        if let Some(e) = outcome.truncated {
            bail!("reading the capture: {e}");
        }
        Ok(())
    }
}

/// Runs exercise `o.exercise`: server, clients, capture, then the facts.
pub fn run(o: &LabOptions) -> Result<Run> {
    let ex = o.exercise;
    let bind = SocketAddr::from(([127, 0, 0, 1], o.port));
    let server = Server::bind(ServerOptions {
        proto: ex.server(),
        addr: bind,
        echo: false,
        max_conns: 64,
        max_frame: crate::spec::DEFAULT_MAX_FRAME,
        idle_timeout: Duration::from_secs(30),
    })
    .map_err(|e| {
        let text = format!("{e:#}");
        if text.contains("in use") {
            let l4 = if ex.number == 1 { "u" } else { "t" };
            anyhow!(
                "cannot listen on {bind}: the port is in use (the lab's Python server, or \
                 another rc1 server, still running? `ss -{l4}lnp 'sport = :{}'` shows which); \
                 stop it, or run `rc1 lab {ex} --port 0` to use any free port",
                bind.port()
            )
        } else {
            e
        }
    })?;
    let addr = server.local_addr()?;
    let (ladder, mermaid) = ladders(o);
    let mut sinks = Sinks {
        ladder,
        mermaid,
        observed: Observed::default(),
    };
    let mut kept = Vec::new();
    if let Some(dir) = &o.keep {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("--keep: cannot create {}", dir.display()))?;
    }

    // The capture opens before the server serves: nothing is missed.
    let mut live_opts = capture_options(
        Input::Live(o.iface.clone()),
        addr.port(),
        Some(format!("port {}", addr.port())),
    );
    if let Some(dir) = &o.keep {
        let p = dir.join(format!("exercise-{}.pcap", ex.number));
        live_opts.write = Some(p.clone());
        kept.push(p);
    }
    let live = if o.fixture {
        Err("--fixture asks for the shipped capture".to_string())
    } else {
        capture::open(&live_opts).map_err(|e| format!("{e:#}"))
    };

    let kept_log = Kept::default();
    let log = Arc::new(Log::to(
        Format::Json,
        false,
        Box::new(kept_log.clone()),
        Box::new(kept_log.clone()),
    ));
    let server_stop = Stop::new();
    let serving = {
        let stop = server_stop.clone();
        std::thread::spawn(move || server.run(log, stop))
    };

    let capture_stop = Stop::new();
    let (capturing, wire) = match live {
        Ok(mut source) => {
            if let Some(h) = source.break_handle() {
                capture_stop.on_stop(move || h.breakloop());
            }
            let stop = capture_stop.clone();
            let opts = live_opts.clone();
            let handle = std::thread::spawn(move || {
                let r = sinks.drive(&opts, source, &stop);
                r.map(|()| sinks)
            });
            (
                Some(handle),
                Wire::Live {
                    iface: o.iface.clone(),
                },
            )
        }
        Err(why) => {
            kept.clear();
            (
                None,
                Wire::Fixture {
                    name: ex.fixture().0,
                    why,
                },
            )
        }
    };

    let played = script::play(ex.number, addr);
    std::thread::sleep(SETTLE);
    server_stop.stop();
    let served = serving.join();
    capture_stop.stop();
    let mut sinks = match capturing {
        Some(h) => h
            .join()
            .map_err(|_| anyhow!("the capture thread stopped unexpectedly"))??,
        None => {
            let (name, bytes) = ex.fixture();
            let path = std::env::temp_dir().join(format!(
                "rc1-lab-{}-{}.pcap",
                ex.number,
                std::process::id()
            ));
            std::fs::write(&path, bytes)
                .with_context(|| format!("cannot write {name} to {}", path.display()))?;
            let opts = capture_options(Input::File(path.clone()), 5005, None);
            let source = capture::open(&opts);
            let (ladder, mermaid) = ladders(o);
            let mut sinks = Sinks {
                ladder,
                mermaid,
                observed: Observed::default(),
            };
            let r = source.and_then(|s| sinks.drive(&opts, s, &Stop::new()));
            let _ = std::fs::remove_file(&path);
            r.with_context(|| format!("decoding the shipped {name}"))?;
            sinks
        }
    };
    let exchange = played.with_context(|| format!("exercise {ex}: the clients failed"))?;
    match served {
        Ok(r) => {
            r.context("the server failed")?;
        }
        Err(_) => bail!("the server thread stopped unexpectedly"),
    }

    let log: Vec<LogLine> = kept_log
        .0
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .filter_map(|(ts, line)| {
            let json = serde_json::from_slice(line).ok()?;
            Some(LogLine { ts: *ts, json })
        })
        .collect();
    if matches!(wire, Wire::Live { .. }) {
        for line in &log {
            if let Some(text) = answers::server_note(ex, line) {
                // On the server's lane: the server did it (the text names
                // the client).
                sinks.ladder.note(line.ts, Some(addr), &text);
                sinks.mermaid.note(line.ts, Some(addr), &text);
            }
        }
    }
    if let Some(dir) = &o.keep {
        let p = dir.join(format!("exercise-{}.mmd", ex.number));
        let mut f = std::fs::File::create(&p)
            .with_context(|| format!("--keep: cannot write {}", p.display()))?;
        sinks.mermaid.render(&mut f)?;
        kept.push(p);
    }
    Ok(Run {
        exercise: ex,
        server: addr,
        exchange,
        log,
        wire,
        observed: sinks.observed,
        ladder: sinks.ladder,
        mermaid: sinks.mermaid,
        port_range: port_range(),
        kept,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exercises_parse_as_the_guide_numbers_them() {
        assert_eq!(
            "4.2".parse::<Exercise>(),
            Ok(Exercise {
                number: 4,
                part: Some(2)
            })
        );
        assert_eq!(
            "5".parse::<Exercise>(),
            Ok(Exercise {
                number: 5,
                part: None
            })
        );
        for bad in ["0", "6", "1.3", "4.4", "2.0", "x", "4.", ".2", ""] {
            let e = bad.parse::<Exercise>().unwrap_err();
            assert!(e.contains("give 1 to 5"), "{bad}: {e}");
        }
        assert_eq!("3.2".parse::<Exercise>().unwrap().to_string(), "3.2");
    }

    #[test]
    fn each_exercise_ships_its_capture() {
        for n in 1..=5 {
            let (name, bytes) = Exercise {
                number: n,
                part: None,
            }
            .fixture();
            assert!(name.ends_with(".pcap"));
            // A pcap file's magic, either byte order.
            assert!(
                bytes.starts_with(&[0xd4, 0xc3, 0xb2, 0xa1])
                    || bytes.starts_with(&[0xa1, 0xb2, 0xc3, 0xd4]),
                "{name}"
            );
        }
    }
}
