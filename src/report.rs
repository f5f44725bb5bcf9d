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
//! | `frame` | `time`, `session`, `client`, `server`, `dir` (`c>s`/`s>c`), `offset`, `framing`, `version`, `order`, `size`, `message`, `message_hex`, `cut`, `echo` (`ok`/`mismatch`/`unsolicited`/null), `latency_us` |
//! | `text` | `time`, `session`, `client`, `server`, `dir`, `offset`, `len`, `message`, `message_hex`, `echo`, `latency_us` |
//! | `udp` | `time`, `session`, `client`, `server`, `dir`, `len`, `message`, `message_hex`, `truncated` (longer than what was captured) |
//! | `detected` | `time`, `session`, `framing`, `reason` |
//! | `tcp` | `time`, `session`, `what` (`syn`, `syn-ack`, `established`, `fin`, `rst`, `retransmission`, `out-of-order`, `picked-up`), `dir`, `rtt_us` |
//! | `diagnostic` | `time`, `session` (or null), `dir`, `code`, `message`, and the diagnostic's facts as fields of their own: `offset`, `length` (`tcp.gap` also `seq`; `frame.*`), `from`, `to`, `bytes`, `seq` (`tcp.overlap_conflict`), `src`, `dst`, `ip_id`, `protocol`, `fragments`, `captured`, `total` (`ip.fragment_*`), `packet` (`packet.unparsed`), `interface`, `linktype` (`link.unsupported`), ... |
//! | `session` | the session summary (see [`SessionSummary`]): `state`, `picked_up`, `via` (tags, labels and tunnels, or null), `anomalies` and `anomaly_counts` (by code); per direction (`to_server`, `to_client`): `packets`, `messages`, `bytes`, `gaps`, `missed_bytes`, `frames_in_gaps` (v2 only, else null), retransmission, overlap and out-of-order counts |
//! | `totals` | `packets` (read, after any `-f` filter), `filtered` (rejected by a file's `-f`), `in_sessions`, `not_in_sessions` (by cause: `not_ip`, `encrypted`, `not_tcp_udp`, `unparsed`, `unsupported_link`, `other_port`, `fragments`, `fragments_dropped`, `after_session`; `packets` = `in_sessions` + their sum), `sessions`, `frames` (v2/v3), `text_messages`, `datagrams`, `reassembled` (datagrams from IP fragments), `diagnostics`, `kernel_received`, `kernel_dropped`, `interface_dropped` |
//!
//! `message` is the text, escaped (`\xC3`) where the bytes are not UTF-8;
//! `message_hex` is always the bytes themselves.

use std::fmt::Write as _;
use std::io::Write;
use std::net::SocketAddr;

use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use serde_json::{Map, Value, json};

use crate::capture::event::{
    Dir, EchoMatch, Event, Fact, SessionSummary, Sink, TcpWhat, Totals, Where,
};
use crate::capture::source::Timestamp;
use crate::codec::escape::{escape, escape_into, hex, preview_into, push_u64};

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
    /// The line being built, reused: printing a frame allocates nothing.
    buf: String,
    /// The addresses of the last event's session, already formatted.
    names: Names,
}

/// Sessions' addresses as text, kept between events in a small
/// direct-mapped cache (by session number): formatting two socket
/// addresses costs more than the rest of a frame's line.
struct Names {
    slots: Vec<Slot>,
}

#[derive(Default)]
struct Slot {
    of: Option<(u64, SocketAddr, SocketAddr)>,
    client: String,
    server: String,
}

/// Slots in [`Names`]: more than the sessions a lab capture interleaves.
const NAME_SLOTS: usize = 64;

impl Default for Names {
    fn default() -> Names {
        Names {
            slots: (0..NAME_SLOTS).map(|_| Slot::default()).collect(),
        }
    }
}

impl Names {
    fn get(&mut self, at: &Where) -> (&str, &str) {
        let key = (at.session, at.client, at.server);
        let i = (at.session % NAME_SLOTS as u64) as usize;
        let Some(slot) = self.slots.get_mut(i) else {
            return ("?", "?"); // not reached: i < NAME_SLOTS
        };
        if slot.of != Some(key) {
            slot.client.clear();
            slot.server.clear();
            let _ = write!(slot.client, "{}", at.client);
            let _ = write!(slot.server, "{}", at.server);
            slot.of = Some(key);
        }
        (&slot.client, &slot.server)
    }
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
            buf: String::with_capacity(256),
            names: Names::default(),
        }
    }

    /// The writer back.
    pub fn into_inner(self) -> W {
        self.out
    }

    /// Writes the line built in `buf`.
    fn flush_buf(&mut self) {
        self.buf.push('\n');
        if !self.broken
            && (self.out.write_all(self.buf.as_bytes()).is_err()
                || (self.opts.flush_each && self.out.flush().is_err()))
        {
            self.broken = true;
        }
        self.buf.clear();
    }

    /// The per-message events (frames, text, UDP): built in place, as
    /// they are most of the output.
    fn message(&mut self, ev: &Event<'_>) {
        let (at, dir) = match ev {
            Event::Frame { at, dir, .. }
            | Event::Text { at, dir, .. }
            | Event::Udp { at, dir, .. } => (at, *dir),
            _ => return,
        };
        let (client, server) = self.names.get(at);
        let b = &mut self.buf;
        if self.opts.json {
            // Keys in sorted order, as serde_json writes the other objects.
            b.push_str("{\"client\":");
            json_str(b, client);
            if let Event::Frame { framing, frame, .. } = ev {
                let cut = *framing == crate::codec::Framing::V2 && frame.is_cut();
                b.push_str(if cut {
                    ",\"cut\":true"
                } else {
                    ",\"cut\":false"
                });
            }
            b.push_str(",\"dir\":\"");
            b.push_str(dir.arrow());
            b.push('"');
            match ev {
                Event::Frame {
                    offset,
                    framing,
                    frame,
                    echo,
                    ..
                } => {
                    json_echo(b, *echo);
                    b.push_str(",\"framing\":\"");
                    b.push_str(framing.name());
                    b.push('"');
                    json_latency(b, *echo);
                    json_message(b, frame.message);
                    num(b, ",\"offset\":", *offset);
                    num(b, ",\"order\":", frame.order.into());
                    b.push_str(",\"server\":");
                    json_str(b, server);
                    num(b, ",\"session\":", at.session);
                    num(b, ",\"size\":", frame.size.into());
                    json_time(b, at.ts);
                    num(b, ",\"type\":\"frame\",\"version\":", frame.version.into());
                    b.push('}');
                }
                Event::Text {
                    offset, data, echo, ..
                } => {
                    json_echo(b, *echo);
                    json_latency(b, *echo);
                    num(b, ",\"len\":", data.len() as u64);
                    json_message(b, data);
                    num(b, ",\"offset\":", *offset);
                    b.push_str(",\"server\":");
                    json_str(b, server);
                    num(b, ",\"session\":", at.session);
                    json_time(b, at.ts);
                    b.push_str(",\"type\":\"text\"}");
                }
                Event::Udp {
                    data, truncated, ..
                } => {
                    num(b, ",\"len\":", data.len() as u64);
                    json_message(b, data);
                    b.push_str(",\"server\":");
                    json_str(b, server);
                    num(b, ",\"session\":", at.session);
                    json_time(b, at.ts);
                    b.push_str(if *truncated {
                        ",\"truncated\":true"
                    } else {
                        ",\"truncated\":false"
                    });
                    b.push_str(",\"type\":\"udp\"}");
                }
                _ => {}
            }
        } else {
            push_time(b, at.ts);
            let arrow = match dir {
                Dir::ToServer => "->",
                Dir::ToClient => "<-",
            };
            num(b, " #", at.session);
            for part in [" ", client, " ", arrow, " ", server, " "] {
                b.push_str(part);
            }
            match ev {
                Event::Frame {
                    framing,
                    frame,
                    echo,
                    ..
                } => {
                    frame.describe_into(b, *framing);
                    push_echo_note(b, *echo);
                }
                Event::Text { data, echo, .. } => {
                    num(b, "text ", data.len() as u64);
                    b.push_str(" bytes ");
                    preview_into(b, data);
                    push_echo_note(b, *echo);
                }
                Event::Udp { data, .. } => {
                    num(b, "udp ", data.len() as u64);
                    b.push_str(" bytes ");
                    preview_into(b, data);
                }
                _ => {}
            }
        }
        self.flush_buf();
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
    let mut s = String::with_capacity(15);
    push_time(&mut s, ts);
    s
}

/// `HH:MM:SS.micro` in UTC, like tcpdump's default.
fn push_time(out: &mut String, ts: Timestamp) {
    let secs = ts.sec.rem_euclid(86_400);
    let two = |out: &mut String, n: i64| {
        // n < 100: two digits without the formatting machinery.
        out.push(char::from(b'0' + (n / 10 % 10) as u8));
        out.push(char::from(b'0' + (n % 10) as u8));
    };
    two(out, secs / 3600);
    out.push(':');
    two(out, secs / 60 % 60);
    out.push(':');
    two(out, secs % 60);
    out.push('.');
    // Six digits (a valid microsecond count is below 1,000,000).
    let usec = u64::from(ts.usec);
    let mut scale = 100_000;
    while scale > usec.max(1) && scale > 1 {
        out.push('0');
        scale /= 10;
    }
    push_u64(out, usec);
}

/// `label` then `n`.
fn num(out: &mut String, label: &str, n: u64) {
    out.push_str(label);
    push_u64(out, n);
}

/// ` echo ok (57 µs)` and the like, appended.
fn push_echo_note(out: &mut String, e: Option<EchoMatch>) {
    match e {
        Some(EchoMatch::Ok { latency_us }) => {
            out.push_str(" echo ok (");
            push_micros(out, latency_us);
            out.push(')');
        }
        Some(EchoMatch::Mismatch) => out.push_str(" ECHO MISMATCH"),
        Some(EchoMatch::Unsolicited) => {
            out.push_str(" (no captured request to match: it may lie in a capture gap)")
        }
        None => {}
    }
}

/// A JSON string literal of `s`, escaped exactly as serde_json escapes it.
fn json_str(out: &mut String, s: &str) {
    out.push('"');
    let mut from = 0;
    for (i, c) in s.bytes().enumerate() {
        let esc = match c {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0..0x20 => "",
            _ => continue,
        };
        out.push_str(s.get(from..i).unwrap_or_default());
        if esc.is_empty() {
            let _ = write!(out, "\\u{:04x}", c);
        } else {
            out.push_str(esc);
        }
        from = i + 1;
    }
    out.push_str(s.get(from..).unwrap_or_default());
    out.push('"');
}

/// `"message"` (the text; escaped as `\xNN` where the bytes are not
/// UTF-8) and `"message_hex"` (the bytes themselves, always: a script
/// never has to undo an escape).
fn json_message(out: &mut String, data: &[u8]) {
    out.push_str(",\"message\":");
    match std::str::from_utf8(data) {
        Ok(s) => json_str(out, s),
        Err(_) => {
            let mut esc = String::with_capacity(data.len().saturating_mul(2));
            escape_into(&mut esc, data);
            json_str(out, &esc);
        }
    }
    out.push_str(",\"message_hex\":\"");
    push_hex(out, data);
    out.push('"');
}

/// Lowercase hex of `data`, appended.
fn push_hex(out: &mut String, data: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    out.reserve(data.len().saturating_mul(2));
    for b in data {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0F)]));
    }
}

fn json_echo(out: &mut String, e: Option<EchoMatch>) {
    out.push_str(match e {
        Some(EchoMatch::Ok { .. }) => ",\"echo\":\"ok\"",
        Some(EchoMatch::Mismatch) => ",\"echo\":\"mismatch\"",
        Some(EchoMatch::Unsolicited) => ",\"echo\":\"unsolicited\"",
        None => ",\"echo\":null",
    });
}

fn json_latency(out: &mut String, e: Option<EchoMatch>) {
    match e {
        Some(EchoMatch::Ok { latency_us }) => {
            num(out, ",\"latency_us\":", latency_us);
        }
        _ => out.push_str(",\"latency_us\":null"),
    }
}

/// `,"time":…` as serde_json writes the same `f64`.
fn json_time(out: &mut String, ts: Timestamp) {
    let _ = write!(out, ",\"time\":{}", Value::from(ts.as_secs_f64()));
}

fn arrow(at: &Where, dir: Dir) -> String {
    match dir {
        Dir::ToServer => format!("#{} {} -> {}", at.session, at.client, at.server),
        Dir::ToClient => format!("#{} {} <- {}", at.session, at.client, at.server),
    }
}

/// `1.234 ms` style.
pub fn micros(us: u64) -> String {
    let mut s = String::new();
    push_micros(&mut s, us);
    s
}

fn push_micros(out: &mut String, us: u64) {
    // Integer arithmetic: float formatting with a precision is slow, and
    // this runs for every echo.
    let _ = if us >= 1_000_000 {
        let ms = us.saturating_add(500) / 1000; // rounded to the millisecond
        write!(out, "{}.{:03} s", ms / 1000, ms % 1000)
    } else if us >= 1000 {
        write!(out, "{}.{:03} ms", us / 1000, us % 1000)
    } else {
        write!(out, "{us} µs")
    };
}

/// Adds `len`, `message` (escaped where not UTF-8) and `message_hex`.
pub fn put_message(m: &mut Map<String, Value>, data: &[u8]) {
    m.insert("len".into(), json!(data.len()));
    match std::str::from_utf8(data) {
        Ok(s) => {
            m.insert("message".into(), json!(s));
        }
        Err(_) => {
            m.insert("message".into(), json!(escape(data)));
        }
    }
    m.insert("message_hex".into(), json!(hex(data)));
}

fn put_where(m: &mut Map<String, Value>, at: &Where) {
    m.insert("time".into(), json!(at.ts.as_secs_f64()));
    m.insert("session".into(), json!(at.session));
    m.insert("client".into(), json!(at.client.to_string()));
    m.insert("server".into(), json!(at.server.to_string()));
}

/// The table's gaps cell: count (bytes), and for v2 the frames they took.
fn gaps_cell(s: &SessionSummary) -> String {
    let (r0, r1) = (&s.dirs[0].reassembly, &s.dirs[1].reassembly);
    let mut cell = format!(
        "{} ({})",
        r0.gaps + r1.gaps,
        r0.missed_bytes + r1.missed_bytes
    );
    let frames: Option<u64> = s.dirs.iter().map(|d| d.frames_in_gaps).sum();
    if let Some(f) = frames.filter(|f| *f > 0) {
        cell.push_str(&format!(", {f} frames"));
    }
    cell
}

/// The JSON object of a session summary.
pub fn session_json(s: &SessionSummary) -> Value {
    let (p50, max) = (s.echo_latency_p50_us, s.echo_latency_max_us);
    let dir = |i: usize| {
        let d = &s.dirs[i];
        let r = &d.reassembly;
        json!({
            "packets": d.packets,
            "messages": d.messages,
            "bytes": d.bytes,
            "retransmitted_segments": r.retransmitted_segments,
            "retransmitted_bytes": r.retransmitted_bytes,
            "overlap_conflicts": r.overlap_conflicts,
            "out_of_order_segments": r.out_of_order_segments,
            "gaps": r.gaps,
            "missed_bytes": r.missed_bytes,
            "frames_in_gaps": d.frames_in_gaps,
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
        "picked_up": s.picked_up,
        "via": s.via,
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
        "anomaly_counts": s.anomaly_counts.iter().map(|(c, n)| (c.to_string(), json!(n))).collect::<Map<String, Value>>(),
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
        if matches!(
            ev,
            Event::Frame { .. } | Event::Text { .. } | Event::Udp { .. }
        ) {
            self.message(ev);
            return;
        }
        if self.opts.json {
            let mut m = Map::new();
            match ev {
                // Printed by `message`.
                Event::Frame { .. } | Event::Text { .. } | Event::Udp { .. } => return,
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
                    facts,
                } => {
                    m.insert("type".into(), json!("diagnostic"));
                    m.insert("time".into(), json!(ts.as_secs_f64()));
                    m.insert("session".into(), json!(at.map(|a| a.session)));
                    m.insert("dir".into(), json!(dir.map(Dir::arrow)));
                    m.insert("code".into(), json!(code));
                    m.insert("message".into(), json!(message));
                    for (k, v) in facts {
                        let v = match v {
                            Fact::Num(n) => json!(n),
                            Fact::Text(t) => json!(t),
                        };
                        m.insert((*k).into(), v);
                    }
                }
            }
            let line = Value::Object(m).to_string();
            self.line(&line);
            return;
        }
        let line = match ev {
            // Printed by `message`.
            Event::Frame { .. } | Event::Text { .. } | Event::Udp { .. } => return,
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
                ..
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
            let causes: Map<String, Value> = t
                .causes()
                .iter()
                .map(|(k, n)| (k.to_string(), json!(n)))
                .collect();
            let line = json!({
                "type": "totals",
                "packets": t.packets,
                "filtered": t.filtered,
                "in_sessions": t.in_sessions,
                "not_in_sessions": causes,
                "sessions": t.sessions,
                "frames": t.frames,
                "text_messages": t.text_messages,
                "datagrams": t.datagrams,
                "reassembled": t.reassembled,
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
            for s in &sessions {
                for note in session_notes(s) {
                    self.line(&note);
                }
            }
        }
        if self.sessions_not_shown > 0 {
            let more = format!(
                "({} more sessions not in the table; --json lists every one)",
                self.sessions_not_shown
            );
            self.line(&more);
        }
        let mut totals = format!(
            "{} packets, {} sessions, {} frames, {} text messages, {} datagrams, {} diagnostics",
            t.packets, t.sessions, t.frames, t.text_messages, t.datagrams, t.diagnostics
        );
        if let Some((r, d, i)) = t.kernel {
            totals.push_str(&format!(
                "; kernel: {r} received, {d} dropped by the kernel, {i} dropped by the interface"
            ));
        }
        self.line(&totals);
        let mut line = format!("packets: {} in sessions", t.in_sessions);
        for (cause, n) in t.causes() {
            if n > 0 {
                line.push_str(&format!(", {n} {}", cause_words(cause)));
            }
        }
        if t.filtered > 0 {
            line.push_str(&format!("; {} more rejected by the filter", t.filtered));
        }
        if t.reassembled > 0 {
            line.push_str(&format!(
                "; {} datagram(s) reassembled from IP fragments",
                t.reassembled
            ));
        }
        self.line(&line);
        let _ = self.out.flush();
    }
}

/// Lines under the sessions table: what a session came through, and its
/// anomalies by code.
fn session_notes(s: &SessionSummary) -> Vec<String> {
    let mut out = Vec::new();
    if s.picked_up {
        out.push(format!(
            "#{} picked up mid-stream: the capture began after the connection did (no handshake)",
            s.id
        ));
    }
    if let Some(via) = &s.via {
        out.push(format!("#{} via {via}", s.id));
    }
    if !s.anomaly_counts.is_empty() {
        let list: Vec<String> = s
            .anomaly_counts
            .iter()
            .map(|(c, n)| {
                if *n == 1 {
                    c.to_string()
                } else {
                    format!("{c} ×{n}")
                }
            })
            .collect();
        out.push(format!("#{} anomalies: {}", s.id, list.join(", ")));
    }
    out
}

/// A cause of [`Totals::causes`] in words.
fn cause_words(cause: &str) -> &'static str {
    match cause {
        "not_ip" => "not IP (ARP, STP, 802.11 management, ...)",
        "encrypted" => "encrypted below TCP/UDP (802.11, MACsec, ESP)",
        "not_tcp_udp" => "IP but not TCP/UDP (ICMP, ...)",
        "unparsed" => "unparsed (see above)",
        "unsupported_link" => "of a link type rc1 does not read",
        "other_port" => "TCP/UDP on other ports (-f \"\" keeps them)",
        "fragments" => "IP fragments of reassembled datagrams",
        "fragments_dropped" => "IP fragments of datagrams not reassembled (see above)",
        "after_session" => "after their session ended (late ACK/FIN/RST)",
        _ => "other",
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
        TcpWhat::OutOfOrder(d) => ("out-of-order", Some(d), None),
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
            gaps_cell(s),
            s.state.to_string(),
            anomalies,
        ]);
    }
    t.to_string()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    fn quoted(s: &str) -> String {
        let mut out = String::new();
        json_str(&mut out, s);
        out
    }

    #[test]
    fn json_strings_are_escaped_as_serde_json_escapes_them() {
        for s in [
            "",
            "plain",
            "q\"b\\s",
            "\n\r\t\x08\x0c\x00\x1f\x7f",
            "olá ✓ \u{1F600}",
        ] {
            assert_eq!(quoted(s), serde_json::to_string(s).unwrap(), "{s:?}");
        }
    }

    proptest! {
        #[test]
        fn json_strings_match_serde_json(s in any::<String>()) {
            prop_assert_eq!(quoted(&s), serde_json::to_string(&s).unwrap());
        }
    }

    #[test]
    fn times_and_latencies_are_written_as_before() {
        for (sec, usec) in [(0, 0), (86_399, 999_999), (3_661, 5), (-1, 10)] {
            let ts = Timestamp { sec, usec };
            let s = sec.rem_euclid(86_400);
            let want = format!("{:02}:{:02}:{:02}.{usec:06}", s / 3600, s / 60 % 60, s % 60);
            assert_eq!(time(ts), want);
        }
        assert_eq!(micros(999), "999 µs");
        assert_eq!(micros(1234), "1.234 ms");
        assert_eq!(micros(1_000), "1.000 ms");
        assert_eq!(micros(2_500_400), "2.500 s");
        assert_eq!(micros(2_500_600), "2.501 s");
    }

    #[test]
    fn cached_names_follow_the_session_even_when_slots_collide() {
        let mut names = Names::default();
        let at = |session: u64, port: u16| Where {
            ts: Timestamp { sec: 0, usec: 0 },
            session,
            client: SocketAddr::from(([10, 0, 0, 1], port)),
            server: SocketAddr::from(([10, 0, 0, 2], 5005)),
        };
        let a = at(1, 40000);
        let b = at(1 + NAME_SLOTS as u64, 40001);
        assert_eq!(names.get(&a), ("10.0.0.1:40000", "10.0.0.2:5005"));
        assert_eq!(names.get(&b), ("10.0.0.1:40001", "10.0.0.2:5005"));
        assert_eq!(names.get(&a), ("10.0.0.1:40000", "10.0.0.2:5005"));
    }
}
