//! Printing capture events: one text line per event, or one JSON object per
//! line (`--json`), then the sessions table and totals. Writes to any
//! `io::Write`, so tests print into a buffer.
//!
//! # JSON lines
//!
//! Every object has `type`. Times are capture timestamps in seconds.
//!
//! | `type` | keys |
//! |---|---|
//! | `frame` | `time`, `session`, `client`, `server`, `dir` (`c>s`/`s>c`), `offset`, `framing`, `version`, `order`, `size`, `message`, `message_hex`*, `cut`, `echo` (`ok`/`mismatch`/`unsolicited`/null), `latency_us` |
//! | `text` | `time`, `session`, `client`, `server`, `dir`, `offset`, `len`, `message`, `message_hex`*, `echo`, `latency_us` |
//! | `udp` | `time`, `session`, `client`, `server`, `dir`, `len`, `message`, `message_hex`* |
//! | `detected` | `time`, `session`, `framing`, `reason` |
//! | `tcp` | `time`, `session`, `what` (`syn`, `syn-ack`, `established`, `fin`, `rst`, `retransmission`, `picked-up`), `dir`, `rtt_us` |
//! | `diagnostic` | `time`, `session` (or null), `dir`, `code`, `message` |
//! | `session` | the session summary (see [`SessionSummary`]) |
//! | `totals` | `packets`, `unparsed`, `ignored`, `sessions`, `frames`, `diagnostics`, `kernel_received`, `kernel_dropped`, `interface_dropped` |
//!
//! (*) `message_hex` only when the bytes are not valid UTF-8; `message` is
//! then the escaped form.

use std::io::Write;

use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use serde_json::{Map, Value, json};

use crate::capture::event::{Dir, EchoMatch, Event, SessionSummary, Sink, TcpWhat, Totals, Where};
use crate::capture::source::Timestamp;
use crate::codec::escape::{escape, hex, preview};

/// Output settings.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReportOptions {
    /// JSON lines instead of text.
    pub json: bool,
    /// Print TCP control events.
    pub tcp_events: bool,
    /// Print only diagnostics and the summary.
    pub quiet: bool,
    /// Flush after every line (live captures).
    pub flush_each: bool,
}

/// Rows of the sessions table at most.
pub const MAX_TABLE_ROWS: usize = 1000;

/// A sink that prints.
pub struct Printer<W: Write> {
    out: W,
    opts: ReportOptions,
    sessions: Vec<SessionSummary>,
    sessions_not_shown: u64,
    /// Set when writing failed (e.g. a closed pipe): printing stops.
    pub broken: bool,
}

impl<W: Write> Printer<W> {
    /// A printer to `out`.
    pub fn new(out: W, opts: ReportOptions) -> Printer<W> {
        Printer {
            out,
            opts,
            sessions: Vec::new(),
            sessions_not_shown: 0,
            broken: false,
        }
    }

    /// The writer back.
    pub fn into_inner(self) -> W {
        self.out
    }

    fn line(&mut self, s: &str) {
        if self.broken {
            return;
        }
        if writeln!(self.out, "{s}").is_err() || (self.opts.flush_each && self.out.flush().is_err())
        {
            self.broken = true;
        }
    }
}

fn time(ts: Timestamp) -> String {
    // HH:MM:SS.micro in UTC, like tcpdump's default.
    let secs = ts.sec.rem_euclid(86_400);
    format!(
        "{:02}:{:02}:{:02}.{:06}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60,
        ts.usec
    )
}

fn arrow(at: &Where, dir: Dir) -> String {
    match dir {
        Dir::ToServer => format!("#{} {} -> {}", at.session, at.client, at.server),
        Dir::ToClient => format!("#{} {} <- {}", at.session, at.client, at.server),
    }
}

fn echo_note(e: Option<EchoMatch>) -> String {
    match e {
        Some(EchoMatch::Ok { latency_us }) => format!(" echo ok ({})", micros(latency_us)),
        Some(EchoMatch::Mismatch) => " ECHO MISMATCH".into(),
        Some(EchoMatch::Unsolicited) => {
            " (no captured request to match: it may lie in a capture gap)".into()
        }
        None => String::new(),
    }
}

/// `1.234 ms` style.
pub fn micros(us: u64) -> String {
    if us >= 1_000_000 {
        format!("{:.3} s", us as f64 / 1e6)
    } else if us >= 1000 {
        format!("{:.3} ms", us as f64 / 1e3)
    } else {
        format!("{us} µs")
    }
}

/// Adds `len`, `message` and, for bytes that are not UTF-8, the escaped
/// `message` plus a lossless `message_hex`.
pub fn put_message(m: &mut Map<String, Value>, data: &[u8]) {
    m.insert("len".into(), json!(data.len()));
    match std::str::from_utf8(data) {
        Ok(s) => {
            m.insert("message".into(), json!(s));
        }
        Err(_) => {
            m.insert("message".into(), json!(escape(data)));
            m.insert("message_hex".into(), json!(hex(data)));
        }
    }
}

fn put_where(m: &mut Map<String, Value>, at: &Where) {
    m.insert("time".into(), json!(at.ts.as_secs_f64()));
    m.insert("session".into(), json!(at.session));
    m.insert("client".into(), json!(at.client.to_string()));
    m.insert("server".into(), json!(at.server.to_string()));
}

fn put_echo(m: &mut Map<String, Value>, e: Option<EchoMatch>) {
    let (name, lat) = match e {
        Some(EchoMatch::Ok { latency_us }) => (json!("ok"), json!(latency_us)),
        Some(EchoMatch::Mismatch) => (json!("mismatch"), Value::Null),
        Some(EchoMatch::Unsolicited) => (json!("unsolicited"), Value::Null),
        None => (Value::Null, Value::Null),
    };
    m.insert("echo".into(), name);
    m.insert("latency_us".into(), lat);
}

/// The JSON object of a session summary.
pub fn session_json(s: &SessionSummary) -> Value {
    let (p50, max) = (s.echo_latency_p50_us, s.echo_latency_max_us);
    let dir = |i: usize| {
        let d = &s.dirs[i];
        let r = &d.reassembly;
        json!({
            "messages": d.messages,
            "bytes": d.bytes,
            "retransmitted_segments": r.retransmitted_segments,
            "retransmitted_bytes": r.retransmitted_bytes,
            "overlap_conflicts": r.overlap_conflicts,
            "out_of_order_segments": r.out_of_order_segments,
            "gaps": r.gaps,
            "missed_bytes": r.missed_bytes,
        })
    };
    json!({
        "type": "session",
        "session": s.id,
        "transport": s.transport,
        "client": s.client.to_string(),
        "client_port": s.client.port(),
        "server": s.server.to_string(),
        "server_port": s.server.port(),
        "framing": s.framing,
        "state": s.state,
        "first": s.first.as_secs_f64(),
        "last": s.last.as_secs_f64(),
        "to_server": dir(0),
        "to_client": dir(1),
        "handshake_rtt_us": s.handshake_rtt_us,
        "echoes_ok": s.echoes_ok,
        "echo_mismatches": s.echo_mismatches,
        "echoes_missing": s.echoes_missing,
        "echo_latency_p50_us": p50,
        "echo_latency_max_us": max,
        "anomalies": s.anomalies,
    })
}

impl<W: Write> Sink for Printer<W> {
    fn event(&mut self, ev: &Event<'_>) {
        let is_diag = matches!(ev, Event::Diagnostic { .. });
        if self.opts.quiet && !is_diag {
            return;
        }
        if matches!(ev, Event::Tcp { .. }) && !self.opts.tcp_events {
            return;
        }
        if self.opts.json {
            let mut m = Map::new();
            match ev {
                Event::Frame {
                    at,
                    dir,
                    offset,
                    framing,
                    frame,
                    echo,
                } => {
                    m.insert("type".into(), json!("frame"));
                    put_where(&mut m, at);
                    m.insert("dir".into(), json!(dir.arrow()));
                    m.insert("offset".into(), json!(offset));
                    m.insert("framing".into(), json!(framing.name()));
                    m.insert("version".into(), json!(frame.version));
                    m.insert("order".into(), json!(frame.order));
                    m.insert("size".into(), json!(frame.size));
                    put_message(&mut m, frame.message);
                    m.remove("len");
                    m.insert(
                        "cut".into(),
                        json!(*framing == crate::codec::Framing::V2 && frame.is_cut()),
                    );
                    put_echo(&mut m, *echo);
                }
                Event::Text {
                    at,
                    dir,
                    offset,
                    data,
                    echo,
                } => {
                    m.insert("type".into(), json!("text"));
                    put_where(&mut m, at);
                    m.insert("dir".into(), json!(dir.arrow()));
                    m.insert("offset".into(), json!(offset));
                    put_message(&mut m, data);
                    put_echo(&mut m, *echo);
                }
                Event::Udp { at, dir, data } => {
                    m.insert("type".into(), json!("udp"));
                    put_where(&mut m, at);
                    m.insert("dir".into(), json!(dir.arrow()));
                    put_message(&mut m, data);
                }
                Event::Detected {
                    at,
                    framing,
                    reason,
                } => {
                    m.insert("type".into(), json!("detected"));
                    put_where(&mut m, at);
                    m.insert("framing".into(), json!(framing));
                    m.insert("reason".into(), json!(reason));
                }
                Event::Tcp { at, what } => {
                    m.insert("type".into(), json!("tcp"));
                    put_where(&mut m, at);
                    let (name, dir, rtt) = tcp_what(*what);
                    m.insert("what".into(), json!(name));
                    m.insert("dir".into(), json!(dir.map(Dir::arrow)));
                    m.insert("rtt_us".into(), json!(rtt));
                }
                Event::Diagnostic {
                    ts,
                    at,
                    dir,
                    code,
                    message,
                } => {
                    m.insert("type".into(), json!("diagnostic"));
                    m.insert("time".into(), json!(ts.as_secs_f64()));
                    m.insert("session".into(), json!(at.map(|a| a.session)));
                    m.insert("dir".into(), json!(dir.map(Dir::arrow)));
                    m.insert("code".into(), json!(code));
                    m.insert("message".into(), json!(message));
                }
            }
            let line = Value::Object(m).to_string();
            self.line(&line);
            return;
        }
        let line = match ev {
            Event::Frame {
                at,
                dir,
                framing,
                frame,
                echo,
                ..
            } => format!(
                "{} {} {}{}",
                time(at.ts),
                arrow(at, *dir),
                frame.describe(*framing),
                echo_note(*echo)
            ),
            Event::Text {
                at,
                dir,
                data,
                echo,
                ..
            } => format!(
                "{} {} text {} bytes {}{}",
                time(at.ts),
                arrow(at, *dir),
                data.len(),
                preview(data),
                echo_note(*echo)
            ),
            Event::Udp { at, dir, data } => format!(
                "{} {} udp {} bytes {}",
                time(at.ts),
                arrow(at, *dir),
                data.len(),
                preview(data)
            ),
            Event::Detected {
                at,
                framing,
                reason,
            } => format!(
                "{} #{} {} <-> {} framing {framing}: {reason}",
                time(at.ts),
                at.session,
                at.client,
                at.server
            ),
            Event::Tcp { at, what } => {
                let (name, dir, rtt) = tcp_what(*what);
                let d = dir.map(|d| format!(" {}", d.arrow())).unwrap_or_default();
                let r = rtt
                    .map(|r| format!(" (handshake RTT {})", micros(r)))
                    .unwrap_or_default();
                format!(
                    "{} #{} {} <-> {} tcp {name}{d}{r}",
                    time(at.ts),
                    at.session,
                    at.client,
                    at.server
                )
            }
            Event::Diagnostic {
                ts,
                at,
                dir,
                code,
                message,
            } => {
                let place = match (at, dir) {
                    (Some(a), Some(d)) => format!("{} ", arrow(a, *d)),
                    (Some(a), None) => format!("#{} ", a.session),
                    _ => String::new(),
                };
                format!("{} {place}{code}: {message}", time(*ts))
            }
        };
        self.line(&line);
    }

    fn session_end(&mut self, s: &SessionSummary) {
        if self.opts.json {
            let line = session_json(s).to_string();
            self.line(&line);
            return;
        }
        // The table keeps the first rows; the rest are counted, so memory
        // does not grow with the number of sessions in a capture.
        if self.sessions.len() < MAX_TABLE_ROWS {
            self.sessions.push(s.clone());
        } else {
            self.sessions_not_shown = self.sessions_not_shown.saturating_add(1);
        }
    }

    fn finish(&mut self, t: &Totals) {
        if self.opts.json {
            let (r, d, i) = match t.kernel {
                Some((r, d, i)) => (json!(r), json!(d), json!(i)),
                None => (Value::Null, Value::Null, Value::Null),
            };
            let line = json!({
                "type": "totals",
                "packets": t.packets,
                "unparsed": t.unparsed,
                "ignored": t.ignored,
                "sessions": t.sessions,
                "frames": t.frames,
                "diagnostics": t.diagnostics,
                "kernel_received": r,
                "kernel_dropped": d,
                "interface_dropped": i,
            })
            .to_string();
            self.line(&line);
            let _ = self.out.flush();
            return;
        }
        let mut sessions = std::mem::take(&mut self.sessions);
        sessions.sort_by_key(|s| s.id);
        if !sessions.is_empty() {
            let table = sessions_table(&sessions);
            self.line("");
            self.line(&table);
        }
        if self.sessions_not_shown > 0 {
            let more = format!(
                "({} more sessions not in the table; --json lists every one)",
                self.sessions_not_shown
            );
            self.line(&more);
        }
        let mut totals = format!(
            "{} packets, {} sessions, {} frames, {} diagnostics",
            t.packets, t.sessions, t.frames, t.diagnostics
        );
        if t.unparsed > 0 {
            totals.push_str(&format!(", {} unparsed packets (see above)", t.unparsed));
        }
        if t.ignored > 0 {
            totals.push_str(&format!(
                ", {} packets outside any session (not TCP/UDP, or ACK/FIN/RST after their session ended)",
                t.ignored
            ));
        }
        if let Some((r, d, i)) = t.kernel {
            totals.push_str(&format!(
                "; kernel: {r} received, {d} dropped by the kernel, {i} dropped by the interface"
            ));
        }
        self.line(&totals);
        let _ = self.out.flush();
    }
}

fn tcp_what(w: TcpWhat) -> (&'static str, Option<Dir>, Option<u64>) {
    match w {
        TcpWhat::Syn => ("syn", Some(Dir::ToServer), None),
        TcpWhat::SynAck => ("syn-ack", Some(Dir::ToClient), None),
        TcpWhat::Established { rtt_us } => ("established", None, Some(rtt_us)),
        TcpWhat::Fin(d) => ("fin", Some(d), None),
        TcpWhat::Rst(d) => ("rst", Some(d), None),
        TcpWhat::Retransmission(d) => ("retransmission", Some(d), None),
        TcpWhat::PickedUp => ("picked-up", None, None),
    }
}

/// The sessions table: what the lab asks students to explain.
pub fn sessions_table(sessions: &[SessionSummary]) -> String {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED);
    t.set_header(vec![
        "#",
        "client",
        "client port",
        "server",
        "framing",
        "msgs c>s / s>c",
        "bytes c>s / s>c",
        "handshake RTT",
        "echo p50 / max",
        "retrans",
        "gaps (bytes)",
        "state",
        "anomalies",
    ]);
    for s in sessions {
        let (p50, max) = (s.echo_latency_p50_us, s.echo_latency_max_us);
        let lat = match (p50, max) {
            (Some(a), Some(b)) => format!("{} / {}", micros(a), micros(b)),
            _ => "-".into(),
        };
        let r0 = &s.dirs[0].reassembly;
        let r1 = &s.dirs[1].reassembly;
        let mut anomalies = s.anomalies.to_string();
        if s.echo_mismatches > 0 || s.echoes_missing > 0 {
            anomalies.push_str(&format!(
                " ({} mismatched, {} missing echoes)",
                s.echo_mismatches, s.echoes_missing
            ));
        }
        t.add_row(vec![
            s.id.to_string(),
            s.client.ip().to_string(),
            s.client.port().to_string(),
            s.server.to_string(),
            s.framing.to_string(),
            format!("{} / {}", s.dirs[0].messages, s.dirs[1].messages),
            format!("{} / {}", s.dirs[0].bytes, s.dirs[1].bytes),
            s.handshake_rtt_us.map_or("-".into(), micros),
            lat,
            (r0.retransmitted_segments + r1.retransmitted_segments).to_string(),
            format!(
                "{} ({})",
                r0.gaps + r1.gaps,
                r0.missed_bytes + r1.missed_bytes
            ),
            s.state.to_string(),
            anomalies,
        ]);
    }
    t.to_string()
}
