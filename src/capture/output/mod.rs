//! The capture's output: the typed events of [`crate::capture::event`]
//! written as text lines ([`text`]), or JSON lines ([`json`]), then the
//! sessions table ([`table`]) and totals. [`Printer`] is the [`Sink`] that
//! chooses among them; it writes to any `io::Write`, so tests print into a
//! buffer. [`ladder`] draws the same events as a ladder diagram (text or
//! Mermaid) instead of lines.
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
//! | `detected` | `time`, `session`, `client`, `server`, `framing`, `reason` |
//! | `tcp` | `time`, `session`, `client`, `server`, `what` (`syn`, `syn-ack`, `established`, `fin`, `rst`, `retransmission`, `out-of-order`, `picked-up`), `dir`, `rtt_us` |
//! | `diagnostic` | `time`, `session` (or null), `dir`, `code`, `message`, and the diagnostic's facts as fields of their own: `offset`, `length` (`tcp.gap` also `seq`; `frame.*`), `from`, `to`, `bytes`, `seq` (`tcp.overlap_conflict`), `src`, `dst`, `ip_id`, `protocol`, `fragments`, `captured`, `total` (`ip.fragment_*`), `packet` (`packet.unparsed`), `interface`, `linktype` (`link.unsupported`), ... |
//! | `session` | the session summary (see [`SessionSummary`]): `state`, `picked_up`, `via` (tags, labels and tunnels, or null), `anomalies` and `anomaly_counts` (by code); per direction (`to_server`, `to_client`): `packets`, `messages`, `bytes`, `gaps`, `missed_bytes`, `frames_in_gaps` (v2 only, else null), retransmission, overlap and out-of-order counts |
//! | `totals` | `packets` (read, after any `-f` filter), `filtered` (rejected by a file's `-f`), `in_sessions`, `not_in_sessions` (by cause: `not_ip`, `encrypted`, `not_tcp_udp`, `unparsed`, `unsupported_link`, `other_port`, `fragments`, `fragments_dropped`, `after_session`; `packets` = `in_sessions` + their sum), `sessions`, `frames` (v2/v3), `text_messages`, `datagrams`, `reassembled` (datagrams from IP fragments), `diagnostics`, `kernel_received`, `kernel_dropped`, `interface_dropped` |
//!
//! `message` is the text, escaped (`\xC3`) where the bytes are not UTF-8;
//! `message_hex` is always the bytes themselves.

mod bytes;
pub mod hex;
pub mod json;
pub mod ladder;
pub mod table;
pub mod text;
pub mod threaded;

use std::fmt::Write as _;
use std::io::Write;
use std::net::SocketAddr;

use crate::capture::event::{Dir, Event, SessionSummary, Sink, TcpWhat, Totals, Where};

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
    /// Layout of the sessions table (text output).
    pub table: table::TableLayout,
    /// Text output: each frame's bytes under its line (`--hex`), see
    /// [`hex`].
    pub hex: bool,
    /// Width of the `--hex` panes in columns (0: [`hex::DEFAULT_WIDTH`]).
    pub hex_width: usize,
    /// No line per event, not even diagnostics: only the sessions table
    /// and totals at the end (`--ladder` draws the events instead).
    pub summary_only: bool,
}

impl ReportOptions {
    /// Whether an event is printed with these options (`-q` keeps only
    /// diagnostics; TCP events need `--tcp-events`; `summary_only`: none).
    pub fn prints(&self, ev: &Event<'_>) -> bool {
        if self.summary_only {
            return false;
        }
        match ev {
            Event::Diagnostic { .. } => true,
            Event::Tcp { .. } => self.tcp_events && !self.quiet,
            _ => !self.quiet,
        }
    }
}

/// Rows of the sessions table at most.
pub const MAX_TABLE_ROWS: usize = 1000;

/// Bytes of lines gathered before they are written: few, large writes
/// (v3 `--json` writes 3 GB for a 1 GB capture: 64 KiB made 45,000
/// writes of it, and 256 KiB measured about 2 % faster).
const WRITE_BATCH: usize = 256 * 1024;

/// A sink that prints.
pub struct Printer<W: Write> {
    /// `None` once handed back by [`Printer::into_inner`].
    out: Option<W>,
    opts: ReportOptions,
    sessions: Vec<SessionSummary>,
    sessions_not_shown: u64,
    /// Set when writing failed (e.g. a closed pipe): printing stops.
    pub broken: bool,
    /// Lines not written yet, reused: printing a frame allocates nothing.
    buf: Vec<u8>,
    /// A text line being built.
    line: String,
    /// The addresses of recent sessions, already formatted.
    names: Names,
    /// `--hex` only: recent segment starts and stream bytes per session.
    hex: Option<Box<bytes::HexBytes>>,
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
            out: Some(out),
            opts,
            sessions: Vec::new(),
            sessions_not_shown: 0,
            broken: false,
            buf: Vec::with_capacity(WRITE_BATCH * 2),
            line: String::with_capacity(256),
            names: Names::default(),
            hex: (opts.hex && !opts.json).then(Box::default),
        }
    }

    /// `--hex`: the bytes pane under an event's line, into `buf`.
    fn hex_pane(&mut self, ev: &Event<'_>) {
        let Some(kept) = &mut self.hex else { return };
        self.line.clear();
        let width = match self.opts.hex_width {
            0 => hex::DEFAULT_WIDTH,
            w => w,
        };
        match ev {
            Event::Frame {
                at,
                dir,
                offset,
                framing,
                frame,
                ..
            } => {
                let segs = kept.segment_starts(at.session, *dir, *offset, frame.raw.len());
                hex::frame_pane_whole(
                    &mut self.line,
                    bytes::spec_of(*framing),
                    frame.raw,
                    &segs,
                    width,
                );
            }
            Event::Text {
                at,
                dir,
                offset,
                data,
                ..
            } => {
                // (A text message is one chunk: no marks; the starts kept
                // for it are dropped.)
                let _ = kept.segment_starts(at.session, *dir, *offset, data.len());
                hex::plain_pane(&mut self.line, data, width)
            }
            Event::Udp { data, .. } => hex::plain_pane(&mut self.line, data, width),
            Event::Detected { at, framing, .. } => kept.detected(at.session, framing),
            Event::Diagnostic { .. } if !self.opts.quiet => {
                kept.diagnostic_pane(&mut self.line, ev, width)
            }
            _ => {}
        }
        self.buf.extend_from_slice(self.line.as_bytes());
    }

    /// Ends the line in `buf`; writes what is gathered once it is large,
    /// or at once for a live capture.
    fn end_line(&mut self) {
        self.buf.push(b'\n');
        if self.opts.flush_each || self.buf.len() >= WRITE_BATCH {
            self.write_out();
        }
    }

    /// Writes the gathered lines (and flushes, live).
    fn write_out(&mut self) {
        if let Some(out) = &mut self.out
            && !self.broken
            && !self.buf.is_empty()
            && (out.write_all(&self.buf).is_err() || (self.opts.flush_each && out.flush().is_err()))
        {
            self.broken = true;
        }
        self.buf.clear();
    }

    /// Writes what is gathered, flushes, and hands the writer back.
    pub fn into_inner(mut self) -> Option<W> {
        self.write_out();
        let mut out = self.out.take();
        if let Some(o) = &mut out {
            let _ = o.flush();
        }
        out
    }

    fn line(&mut self, s: &str) {
        self.buf.extend_from_slice(s.as_bytes());
        self.end_line();
    }
}

impl<W: Write> Drop for Printer<W> {
    /// Lines gathered when the capture stopped early (an error) are still
    /// written.
    fn drop(&mut self) {
        self.write_out();
        if let Some(out) = &mut self.out {
            let _ = out.flush();
        }
    }
}

impl<W: Write> Sink for Printer<W> {
    fn event(&mut self, ev: &Event<'_>) {
        if !self.opts.prints(ev) || self.broken {
            return;
        }
        let at = match ev {
            Event::Frame { at, .. }
            | Event::Text { at, .. }
            | Event::Udp { at, .. }
            | Event::Detected { at, .. }
            | Event::Tcp { at, .. } => Some(at),
            Event::Diagnostic { at, .. } => at.as_ref(),
        };
        let names = match at {
            Some(at) => self.names.get(at),
            None => ("", ""),
        };
        if self.opts.json {
            json::event(&mut self.buf, ev, names);
        } else {
            self.line.clear();
            text::event(&mut self.line, ev, names);
            self.buf.extend_from_slice(self.line.as_bytes());
        }
        self.end_line();
        if self.hex.is_some() {
            self.hex_pane(ev);
            if self.opts.flush_each || self.buf.len() >= WRITE_BATCH {
                self.write_out();
            }
        }
    }

    fn stream(&mut self, at: &Where, dir: Dir, chunk: &crate::capture::reassembly::Chunk<'_>) {
        if let Some(kept) = &mut self.hex {
            kept.stream(at.session, dir, chunk);
        }
    }

    fn session_end(&mut self, s: &SessionSummary) {
        if let Some(kept) = &mut self.hex {
            kept.end(s.id);
        }
        if self.opts.json {
            json::session(&mut self.buf, s);
            self.end_line();
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
            json::totals(&mut self.buf, t);
            self.end_line();
        } else {
            let mut sessions = std::mem::take(&mut self.sessions);
            sessions.sort_by_key(|s| s.id);
            if !sessions.is_empty() {
                let table = table::render(&sessions, self.opts.table);
                self.line("");
                self.line(&table);
                for s in &sessions {
                    for note in text::session_notes(s) {
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
            for l in text::totals(t) {
                self.line(&l);
            }
        }
        self.write_out();
        if let Some(out) = &mut self.out {
            let _ = out.flush();
        }
    }
}

/// A TCP event's name, direction and handshake RTT.
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::source::Timestamp;

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
