//! Ladder diagrams (`rc1 capture --ladder`): one lane per endpoint (each
//! client in order of first appearance, then the servers), time going
//! down, an arrow per event: the handshake, each frame or message, each
//! echo, retransmissions, gaps, FIN and RST. Several sessions share one
//! diagram, interleaved in time, so two clients served at once are seen
//! at once.
//!
//! [`Ladder`] is a [`Sink`] that collects rows (at most
//! [`LadderOptions::max_events`]; the rest are only counted, so memory
//! stays bounded on a huge capture) and draws them with
//! [`Ladder::render`]: as text that fits a width ([`LadderStyle::Text`]),
//! or as a Mermaid `sequenceDiagram` ([`LadderStyle::Mermaid`]).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{self, Write};
use std::net::SocketAddr;

use crate::capture::event::{Dir, EchoMatch, Event, Fact, SessionSummary, Sink, TcpWhat, Totals};
use crate::capture::source::Timestamp;
use crate::codec::escape::preview_into;
use crate::units::push_micros;

use super::text::push_time;

/// How the ladder is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LadderStyle {
    /// Lanes of box-drawing characters that fit [`LadderOptions::width`].
    Text,
    /// A Mermaid `sequenceDiagram` (no colour, labels cut at
    /// [`MERMAID_LABEL`] characters).
    Mermaid,
}

/// What the ladder draws, and how.
#[derive(Debug, Clone)]
pub struct LadderOptions {
    /// Text or Mermaid.
    pub style: LadderStyle,
    /// Text: columns every line fits in (at least [`MIN_WIDTH`]).
    pub width: usize,
    /// Text: ANSI colours (handshake and FIN dim, echo ok green,
    /// mismatch, gap and RST red, retransmission yellow).
    pub color: bool,
    /// Rows drawn at most; later events are counted, not kept.
    pub max_events: usize,
    /// Only events at or after this time.
    pub from: Option<Timestamp>,
    /// Only events at or before this time.
    pub to: Option<Timestamp>,
    /// Only this session's events (numbers as in the sessions table).
    pub session: Option<u64>,
}

/// Narrowest text ladder.
pub const MIN_WIDTH: usize = 40;

/// Widest text ladder (and `--hex` pane, and `rc1 lab`): wider asks are
/// refused, not allocated.
pub const MAX_WIDTH: usize = 1000;

/// Rows drawn by default.
pub const DEFAULT_MAX_EVENTS: usize = 300;

/// Mermaid labels are cut at this many characters.
pub const MERMAID_LABEL: usize = 60;

/// The columns a label gets at least, between the last client lane and
/// the first server lane (more clients than that allows share a lane).
const MIN_LABEL: usize = 20;

/// A row's colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tone {
    Plain,
    Dim,
    Good,
    Bad,
    Warn,
}

impl Tone {
    fn ansi(self) -> &'static str {
        match self {
            Tone::Plain => "",
            Tone::Dim => "\x1b[2m",
            Tone::Good => "\x1b[32m",
            Tone::Bad => "\x1b[31m",
            Tone::Warn => "\x1b[33m",
        }
    }
}

/// How an arrow ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Head {
    /// Delivered (requests solid, answers dotted in Mermaid).
    Normal,
    /// FIN: an open arrow.
    Open,
    /// Lost (a gap) or reset: a cross.
    Cross,
}

/// Where a note goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum On {
    /// A client's lane.
    Client(SocketAddr),
    /// A server's lane.
    Server(SocketAddr),
    /// Whichever lane has this address (from [`Ladder::note`]).
    Addr(SocketAddr),
    /// Across the diagram.
    Across,
}

#[derive(Debug, Clone)]
enum Kind {
    Arrow {
        client: SocketAddr,
        server: SocketAddr,
        dir: Dir,
        head: Head,
    },
    Note(On),
}

#[derive(Debug, Clone)]
struct Row {
    ts: Timestamp,
    session: Option<u64>,
    kind: Kind,
    label: String,
    tone: Tone,
}

/// A ladder diagram being collected.
pub struct Ladder {
    opts: LadderOptions,
    rows: Vec<Row>,
    left_out: u64,
    /// Clients with a row drawn, and when their last session ended (from
    /// `session_end`): a client keeps its lane until then, even past the
    /// last row drawn (a window, `-c`, or the cut).
    ends: HashMap<SocketAddr, Option<Timestamp>>,
}

impl Ladder {
    /// An empty ladder.
    pub fn new(opts: LadderOptions) -> Ladder {
        Ladder {
            opts,
            rows: Vec::new(),
            left_out: 0,
            ends: HashMap::new(),
        }
    }

    /// A note from outside the capture (e.g. the server's log: "thread for
    /// conn #2", "selector: token 3 readable"), drawn at its time on `at`'s
    /// lane (None: across the diagram).
    pub fn note(&mut self, ts: Timestamp, at: Option<SocketAddr>, text: &str) {
        if !self.in_window(ts) {
            return;
        }
        let on = match at {
            Some(a) => On::Addr(a),
            None => On::Across,
        };
        let label = text.replace(['\n', '\r'], " ");
        self.push(Row {
            ts,
            session: None,
            kind: Kind::Note(on),
            label,
            tone: Tone::Plain,
        });
    }

    /// Writes the diagram.
    pub fn render(&self, out: &mut dyn Write) -> io::Result<()> {
        let mut rows: Vec<&Row> = self.rows.iter().collect();
        // Stable: events of one instant keep their order.
        rows.sort_by_key(|r| (r.ts.sec, r.ts.usec));
        match self.opts.style {
            LadderStyle::Text => self.render_text(&rows, out),
            LadderStyle::Mermaid => self.render_mermaid(&rows, out),
        }
    }

    /// Events drawn and events left out.
    pub fn counts(&self) -> (usize, u64) {
        (self.rows.len(), self.left_out)
    }

    fn in_window(&self, ts: Timestamp) -> bool {
        let key = (ts.sec, ts.usec);
        self.opts.from.is_none_or(|f| key >= (f.sec, f.usec))
            && self.opts.to.is_none_or(|t| key <= (t.sec, t.usec))
    }

    fn push(&mut self, row: Row) {
        if self.rows.len() < self.opts.max_events {
            if let Kind::Arrow { client, .. } | Kind::Note(On::Client(client)) = row.kind {
                self.ends.entry(client).or_insert(None);
            }
            self.rows.push(row);
        } else {
            self.left_out = self.left_out.saturating_add(1);
        }
    }

    /// The sentence under a diagram that was cut, if it was.
    fn left_out_sentence(&self) -> Option<String> {
        (self.left_out > 0).then(|| {
            format!(
                "{} more event(s) not drawn (the ladder stops at {}; --ladder-max N draws more): \
                 narrow it with -c N (the first N packets), --follow N (session N only) or \
                 --from T --to T (a time window)",
                self.left_out, self.opts.max_events
            )
        })
    }

    fn render_text(&self, rows: &[&Row], out: &mut dyn Write) -> io::Result<()> {
        let w = self.opts.width.max(MIN_WIDTH);
        let lanes = Lanes::new(rows, w, &self.ends);
        let color = self.opts.color;
        let origin = rows.first().map(|r| r.ts);
        let mut head = String::from("time: +seconds after ");
        match origin {
            Some(t) => {
                push_time(&mut head, t);
                head.push_str(" UTC");
            }
            None => head.push_str("the first event (no event to draw)"),
        }
        writeln!(out, "{}", fit(&head, w))?;
        for line in lanes.legend(rows) {
            writeln!(out, "{}", fit(&line, w))?;
        }
        // The header: aliases above their lanes.
        let mut cells = Cells::new(w);
        for (i, alias) in lanes.aliases.iter().enumerate() {
            cells.put_str(lanes.col(i), alias, Tone::Plain);
        }
        writeln!(out, "{}", cells.finish(false))?;
        for (n, r) in rows.iter().enumerate() {
            let mut cells = Cells::new(w);
            if let Some(o) = origin {
                let t = relative(r.ts, o);
                cells.put_str(0, &t, Tone::Plain);
            }
            for i in 0..lanes.aliases.len() {
                if lanes.active(i, n) {
                    cells.put(lanes.col(i), '│', Tone::Plain);
                }
            }
            let label = match (r.session, lanes.names_session(r)) {
                (Some(s), true) => format!("#{s} {}", r.label),
                _ => r.label.clone(),
            };
            match &r.kind {
                Kind::Arrow {
                    client,
                    server,
                    dir,
                    head,
                } => {
                    let c = lanes.col(lanes.client(*client));
                    let s = lanes.col(lanes.server(*server));
                    let (a, b) = (c.min(s), c.max(s));
                    let rightward = (c < s) == (*dir == Dir::ToServer);
                    let tip = match head {
                        Head::Normal => {
                            if rightward {
                                '▶'
                            } else {
                                '◀'
                            }
                        }
                        Head::Open => {
                            if rightward {
                                '▷'
                            } else {
                                '◁'
                            }
                        }
                        Head::Cross => '╳',
                    };
                    for x in a + 1..b {
                        cells.put(x, '─', r.tone);
                    }
                    if rightward {
                        cells.put(b.saturating_sub(1), tip, r.tone);
                    } else {
                        cells.put(a + 1, tip, r.tone);
                    }
                    let room = b.saturating_sub(a).saturating_sub(5);
                    if room > 0 {
                        let l = cut(&label, room);
                        cells.put(a + 2, ' ', r.tone);
                        cells.put_str(a + 3, &l, r.tone);
                        cells.put(a + 3 + l.chars().count(), ' ', r.tone);
                    }
                }
                Kind::Note(on) => {
                    let lane = match on {
                        On::Client(a) => Some(lanes.client(*a)),
                        On::Server(a) => Some(lanes.server(*a)),
                        On::Addr(a) => lanes.find(*a),
                        On::Across => None,
                    };
                    match lane {
                        Some(i) if i < lanes.clients => {
                            // To the right of a client lane, up to the servers.
                            let p = lanes.col(i);
                            // No server lane yet: to the edge.
                            let end = lanes
                                .pos
                                .get(lanes.clients)
                                .map_or(w, |x| x.saturating_sub(1));
                            let room = end.saturating_sub(p + 2);
                            cells.put(p, '├', r.tone);
                            cells.put(p + 1, '╴', r.tone);
                            cells.put_str(p + 2, &cut(&label, room), r.tone);
                        }
                        Some(i) => {
                            // To the left of a server lane, after the clients.
                            let p = lanes.col(i);
                            let start = match lanes.clients {
                                0 => lanes.time_width,
                                n => lanes.col(n - 1) + 2,
                            };
                            let room = p.saturating_sub(1).saturating_sub(start);
                            let l = cut(&label, room);
                            let n = l.chars().count();
                            cells.put_str(p.saturating_sub(1 + n), &l, r.tone);
                            cells.put(p.saturating_sub(1), '╶', r.tone);
                            cells.put(p, '┤', r.tone);
                        }
                        None => {
                            let text = match on {
                                On::Addr(a) => format!("{a}: {label}"),
                                _ => label,
                            };
                            let start = lanes.time_width;
                            let room = w.saturating_sub(start + 4);
                            let l = cut(&text, room);
                            cells.put_str(start, "┄ ", r.tone);
                            cells.put_str(start + 2, &l, r.tone);
                            cells.put(start + 2 + l.chars().count(), ' ', r.tone);
                        }
                    }
                }
            }
            writeln!(out, "{}", cells.finish(color))?;
        }
        if let Some(s) = self.left_out_sentence() {
            for line in wrap(&format!("… {s}"), w) {
                if color {
                    writeln!(out, "{}{line}\x1b[0m", Tone::Warn.ansi())?;
                } else {
                    writeln!(out, "{line}")?;
                }
            }
        }
        Ok(())
    }

    fn render_mermaid(&self, rows: &[&Row], out: &mut dyn Write) -> io::Result<()> {
        let lanes = Lanes::all(rows);
        writeln!(out, "sequenceDiagram")?;
        for (i, alias) in lanes.aliases.iter().enumerate() {
            writeln!(
                out,
                "    participant {alias} as {}",
                mermaid_text(&lanes.name(i))
            )?;
        }
        let first = lanes.aliases.first().cloned().unwrap_or_default();
        let last = lanes.aliases.last().cloned().unwrap_or_default();
        for r in rows {
            let label = mermaid_text(&cut(&r.label, MERMAID_LABEL));
            match &r.kind {
                Kind::Arrow {
                    client,
                    server,
                    dir,
                    head,
                } => {
                    let c = lanes.alias(lanes.client(*client));
                    let s = lanes.alias(lanes.server(*server));
                    let (from, to) = match dir {
                        Dir::ToServer => (c, s),
                        Dir::ToClient => (s, c),
                    };
                    let arrow = match (head, dir) {
                        (Head::Normal, Dir::ToServer) => "->>",
                        (Head::Normal, Dir::ToClient) => "-->>",
                        (Head::Open, Dir::ToServer) => "-)",
                        (Head::Open, Dir::ToClient) => "--)",
                        (Head::Cross, Dir::ToServer) => "-x",
                        (Head::Cross, Dir::ToClient) => "--x",
                    };
                    writeln!(out, "    {from}{arrow}{to}: {label}")?;
                }
                Kind::Note(on) => {
                    let lane = match on {
                        On::Client(a) => Some(lanes.client(*a)),
                        On::Server(a) => Some(lanes.server(*a)),
                        On::Addr(a) => lanes.find(*a),
                        On::Across => None,
                    };
                    match lane {
                        Some(i) => writeln!(out, "    Note right of {}: {label}", lanes.alias(i))?,
                        None if lanes.aliases.is_empty() => {}
                        None => {
                            let text = match on {
                                On::Addr(a) => {
                                    mermaid_text(&cut(&format!("{a}: {}", r.label), MERMAID_LABEL))
                                }
                                _ => label,
                            };
                            if first == last {
                                writeln!(out, "    Note over {first}: {text}")?;
                            } else {
                                writeln!(out, "    Note over {first},{last}: {text}")?;
                            }
                        }
                    }
                }
            }
        }
        if let Some(s) = self.left_out_sentence() {
            if lanes.aliases.is_empty() {
                writeln!(out, "%% {s}")?;
            } else if first == last {
                writeln!(out, "    Note over {first}: {}", mermaid_text(&s))?;
            } else {
                writeln!(out, "    Note over {first},{last}: {}", mermaid_text(&s))?;
            }
        }
        Ok(())
    }
}

impl Sink for Ladder {
    fn event(&mut self, ev: &Event<'_>) {
        let (ts, session) = match ev {
            Event::Frame { at, .. }
            | Event::Text { at, .. }
            | Event::Udp { at, .. }
            | Event::Detected { at, .. }
            | Event::Tcp { at, .. } => (at.ts, Some(at.session)),
            Event::Diagnostic { ts, at, .. } => (*ts, at.map(|a| a.session)),
        };
        if !self.in_window(ts) {
            return;
        }
        if let Some(want) = self.opts.session
            && session != Some(want)
        {
            return;
        }
        if let Some(row) = row_of(ev) {
            self.push(row);
        }
    }

    fn session_end(&mut self, s: &SessionSummary) {
        // Only clients drawn are remembered: memory stays the rows'.
        // A TCP session still open when the capture stopped (`-c`, Ctrl+C,
        // the end of the file) keeps its lane to the end.
        let open = s.transport == "tcp" && !matches!(s.state, "SF" | "RST");
        if let Some(end) = self.ends.get_mut(&s.client) {
            let last = (s.last.sec, s.last.usec);
            if open {
                // Marked open for good: a later closed session of the same
                // address cannot shorten it.
                *end = Some(Timestamp {
                    sec: i64::MAX,
                    usec: 0,
                });
            } else if end.is_none_or(|e| (e.sec, e.usec) < last) {
                *end = Some(s.last);
            }
        }
    }

    fn finish(&mut self, _totals: &Totals) {}
}

/// The row of an event.
fn row_of(ev: &Event<'_>) -> Option<Row> {
    let arrow = |at: &crate::capture::event::Where, dir: Dir, head: Head| Kind::Arrow {
        client: at.client,
        server: at.server,
        dir,
        head,
    };
    let mut label = String::new();
    let (ts, session, kind, tone) = match ev {
        Event::Frame {
            at,
            dir,
            framing,
            frame,
            echo,
            ..
        } => {
            // A framing file's echo key by its own name.
            let key = framing
                .def()
                .map_or(Some("order"), |d| d.echo_key)
                .map(|k| (k, frame.order));
            let tone = match echo {
                Some(e) => echo_label(&mut label, *e, key),
                None => Tone::Plain,
            };
            if framing.def().is_some() && !matches!(echo, Some(EchoMatch::Ok { .. })) {
                // A framing file's frame: its own show line.
                if !label.is_empty() {
                    label.push(' ');
                }
                frame.describe_into(&mut label, *framing);
                if matches!(echo, Some(EchoMatch::Unsolicited)) {
                    label.push_str(UNSOLICITED);
                }
            } else if !matches!(echo, Some(EchoMatch::Ok { .. })) {
                if !label.is_empty() {
                    label.push(' ');
                }
                label.push_str(framing.name());
                if frame.version != 1 {
                    let _ = write!(label, " ver={}", frame.version);
                }
                let _ = write!(label, " order={} size={} ", frame.order, frame.size);
                preview_into(&mut label, frame.message);
                if frame.is_cut() {
                    label.push_str(" (cut)");
                }
                if matches!(echo, Some(EchoMatch::Unsolicited)) {
                    label.push_str(UNSOLICITED);
                }
            }
            (at.ts, at.session, arrow(at, *dir, Head::Normal), tone)
        }
        Event::Text {
            at,
            dir,
            data,
            echo,
            ..
        } => {
            let tone = match echo {
                Some(e) => echo_label(&mut label, *e, None),
                None => Tone::Plain,
            };
            if !matches!(echo, Some(EchoMatch::Ok { .. })) {
                if !label.is_empty() {
                    label.push(' ');
                }
                label.push_str("text ");
                preview_into(&mut label, data);
                if matches!(echo, Some(EchoMatch::Unsolicited)) {
                    label.push_str(UNSOLICITED);
                }
            }
            (at.ts, at.session, arrow(at, *dir, Head::Normal), tone)
        }
        Event::Udp {
            at,
            dir,
            data,
            truncated,
        } => {
            label.push_str("udp ");
            preview_into(&mut label, data);
            if *truncated {
                label.push_str(" (truncated)");
            }
            (
                at.ts,
                at.session,
                arrow(at, *dir, Head::Normal),
                Tone::Plain,
            )
        }
        Event::Detected { at, framing, .. } => {
            let _ = write!(label, "framing {framing}");
            (
                at.ts,
                at.session,
                Kind::Note(On::Client(at.client)),
                Tone::Dim,
            )
        }
        Event::Tcp { at, what } => {
            let (text, kind, tone): (&str, Kind, Tone) = match *what {
                TcpWhat::Syn => ("SYN", arrow(at, Dir::ToServer, Head::Normal), Tone::Dim),
                TcpWhat::SynAck => ("SYN-ACK", arrow(at, Dir::ToClient, Head::Normal), Tone::Dim),
                TcpWhat::Established { rtt_us } => {
                    label.push_str("ACK, handshake RTT ");
                    push_micros(&mut label, rtt_us);
                    ("", arrow(at, Dir::ToServer, Head::Normal), Tone::Dim)
                }
                TcpWhat::Fin(d) => ("FIN", arrow(at, d, Head::Open), Tone::Dim),
                TcpWhat::Rst(d) => ("RST", arrow(at, d, Head::Cross), Tone::Bad),
                TcpWhat::Retransmission(d) => {
                    ("retransmission", arrow(at, d, Head::Normal), Tone::Warn)
                }
                TcpWhat::OutOfOrder(d) => (
                    "out-of-order (ahead of a hole)",
                    arrow(at, d, Head::Normal),
                    Tone::Warn,
                ),
                TcpWhat::PickedUp => (
                    "picked up mid-stream (no SYN seen)",
                    Kind::Note(On::Client(at.client)),
                    Tone::Warn,
                ),
            };
            label.push_str(text);
            (at.ts, at.session, kind, tone)
        }
        Event::Diagnostic {
            ts,
            at,
            dir,
            code,
            message,
            facts,
        } => {
            let kind = match (at, dir) {
                (Some(a), Some(d)) if *code == "tcp.gap" => {
                    let n = facts.iter().find_map(|(k, v)| match (k, v) {
                        (&"length", Fact::Num(n)) => Some(*n),
                        _ => None,
                    });
                    match n {
                        Some(n) => {
                            let _ = write!(label, "✗ {n} bytes never captured");
                        }
                        None => label.push_str("✗ bytes never captured"),
                    }
                    arrow(a, *d, Head::Cross)
                }
                (Some(a), Some(Dir::ToServer)) | (Some(a), None) => {
                    Kind::Note(On::Client(a.client))
                }
                (Some(a), Some(Dir::ToClient)) => Kind::Note(On::Server(a.server)),
                (None, _) => Kind::Note(On::Across),
            };
            if label.is_empty() {
                let _ = write!(label, "{code}: {message}");
            }
            (*ts, at.map(|a| a.session).unwrap_or(0), kind, Tone::Bad)
        }
    };
    let session = match ev {
        Event::Diagnostic { at: None, .. } => None,
        _ => Some(session),
    };
    Some(Row {
        ts,
        session,
        kind,
        label: label.replace(['\n', '\r'], " "),
        tone,
    })
}

/// After an answer no captured request matches.
const UNSOLICITED: &str = " (no request captured)";

/// `echo ok 57 µs` and the like into `b`; the tone it is drawn in.
fn echo_label(b: &mut String, e: EchoMatch, order: Option<(&str, u32)>) -> Tone {
    match e {
        EchoMatch::Ok { latency_us } => {
            b.push_str("echo ok ");
            push_micros(b, latency_us);
            if let Some((k, o)) = order {
                let _ = write!(b, " ({k}={o})");
            }
            Tone::Good
        }
        EchoMatch::Mismatch => {
            b.push_str("echo MISMATCH");
            Tone::Bad
        }
        // Said after the message (see `UNSOLICITED`).
        EchoMatch::Unsolicited => Tone::Warn,
    }
}

/// `+S.micro` seconds after `origin`.
fn relative(ts: Timestamp, origin: Timestamp) -> String {
    let us = ts.micros_since(origin);
    format!("+{}.{:06}", us / 1_000_000, us % 1_000_000)
}

/// `s` cut to `n` characters, ending in `…` when cut.
fn cut(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        return s.to_string();
    }
    if n == 0 {
        return String::new();
    }
    let mut out: String = s.chars().take(n - 1).collect();
    out.push('…');
    out
}

/// `s` in lines of at most `w` characters, broken at spaces (a word
/// longer than `w` is cut).
fn wrap(s: &str, w: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in s.split(' ') {
        let (n, m) = (line.chars().count(), word.chars().count());
        if n > 0 && n + 1 + m > w {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(&cut(word, w));
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

/// A line cut to `w` characters.
fn fit(s: &str, w: usize) -> String {
    cut(s, w)
}

/// Text Mermaid reads as it is, in a participant's alias or after an
/// arrow's or a note's `:`. Mermaid's grammar takes such text up to the
/// first `#` (a comment), `;` (the end of a statement) or newline; `<br>`
/// in it breaks the line; quotes, braces, `%` and backslashes have
/// meanings elsewhere. Those are written as `#NN;` entity codes, which
/// Mermaid decodes when it draws. Colons and brackets stay as they are:
/// the grammar reads them literally there (`[::1]:5005` stays legible).
pub fn mermaid_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '#' | ';' | '"' | '<' | '>' | '{' | '}' | '%' | '\\' => {
                let _ = write!(out, "#{};", u32::from(c));
            }
            '\n' | '\r' => out.push(' '),
            c if c.is_control() => out.push('?'),
            c => out.push(c),
        }
    }
    out
}

/// One text line being drawn: a character and a tone per column.
struct Cells {
    chars: Vec<char>,
    tones: Vec<Tone>,
}

impl Cells {
    fn new(w: usize) -> Cells {
        Cells {
            chars: vec![' '; w],
            tones: vec![Tone::Plain; w],
        }
    }

    /// Sets column `x` (nothing past the width).
    fn put(&mut self, x: usize, c: char, t: Tone) {
        if let (Some(slot), Some(tone)) = (self.chars.get_mut(x), self.tones.get_mut(x)) {
            *slot = c;
            *tone = t;
        }
    }

    fn put_str(&mut self, x: usize, s: &str, t: Tone) {
        for (i, c) in s.chars().enumerate() {
            self.put(x + i, c, t);
        }
    }

    /// The line, trailing spaces trimmed, with colour codes if `color`.
    fn finish(self, color: bool) -> String {
        let end = self
            .chars
            .iter()
            .rposition(|c| *c != ' ')
            .map_or(0, |i| i + 1);
        let mut out = String::with_capacity(end * 3);
        let mut cur = Tone::Plain;
        for (c, t) in self.chars.iter().zip(&self.tones).take(end) {
            if color && *t != cur {
                if cur != Tone::Plain {
                    out.push_str("\x1b[0m");
                }
                out.push_str(t.ansi());
                cur = *t;
            }
            out.push(*c);
        }
        if color && cur != Tone::Plain {
            out.push_str("\x1b[0m");
        }
        out
    }
}

/// A client and its first and last rows.
type Spanned = (SocketAddr, (usize, usize));

/// Clients named one by one in a text ladder's legend at most; the rest
/// are summed up, and their rows begin with their session number.
const LEGEND_CLIENTS: usize = 24;

/// The lanes of a diagram: clients first (in order of first appearance),
/// then servers. In text, a client whose sessions all begin after an
/// earlier client's ended takes that client's lane (a capture of one
/// client after another stays narrow; clients at the same time always
/// have lanes of their own); when more lanes are needed than fit, the last
/// lane of each kind is shared by the rest (`C+`, `S+`).
struct Lanes {
    /// Each client and its lane, in order of first appearance.
    client_lane: Vec<(SocketAddr, usize)>,
    /// First and last row of each client (as `client_lane`).
    client_span: Vec<(usize, usize)>,
    /// Each server and its lane (among all lanes).
    server_lane: Vec<(SocketAddr, usize)>,
    /// Lanes of clients (the first lanes).
    clients: usize,
    /// Whether the last client lane (server lane) is shared.
    clients_shared: bool,
    servers_shared: bool,
    /// Aliases (`C1`, `S`) of every lane.
    aliases: Vec<String>,
    /// Text: column of each lane, and the width of the time column.
    pos: Vec<usize>,
    time_width: usize,
}

impl Lanes {
    /// Clients with their first and last rows, and servers, in order of
    /// first appearance.
    fn endpoints(rows: &[&Row]) -> (Vec<Spanned>, Vec<SocketAddr>) {
        let mut clients: Vec<Spanned> = Vec::new();
        let mut servers = Vec::new();
        for (n, r) in rows.iter().enumerate() {
            let (client, server) = match r.kind {
                Kind::Arrow { client, server, .. } => (Some(client), Some(server)),
                Kind::Note(On::Client(a)) => (Some(a), None),
                Kind::Note(On::Server(a)) => (None, Some(a)),
                Kind::Note(_) => (None, None),
            };
            if let Some(c) = client {
                match clients.iter_mut().find(|(a, _)| *a == c) {
                    Some((_, span)) => span.1 = n,
                    None => clients.push((c, (n, n))),
                }
            }
            if let Some(sv) = server
                && !servers.contains(&sv)
            {
                servers.push(sv);
            }
        }
        (clients, servers)
    }

    /// Every endpoint its own lane (Mermaid).
    fn all(rows: &[&Row]) -> Lanes {
        let (c, s) = Lanes::endpoints(rows);
        let lanes: Vec<usize> = (0..c.len()).collect();
        Lanes::build(c, lanes, s, usize::MAX, usize::MAX, Vec::new(), 0)
    }

    /// Lanes that fit `w` columns. A client's lane is busy from its first
    /// row until its last session ended (`ends`; still open when the
    /// capture stopped: to the end).
    fn new(rows: &[&Row], w: usize, ends: &HashMap<SocketAddr, Option<Timestamp>>) -> Lanes {
        let (mut c, s) = Lanes::endpoints(rows);
        for (client, (_, last)) in &mut c {
            // (No end heard of: the ladder was fed no session ends; its
            // last row it is.)
            let busy_until = match ends.get(client) {
                Some(Some(t)) => rows
                    .partition_point(|r| (r.ts.sec, r.ts.usec) <= (t.sec, t.usec))
                    .saturating_sub(1),
                _ => *last,
            };
            *last = (*last).max(busy_until);
        }
        let origin = rows.first().map(|r| r.ts);
        let time_width = match (origin, rows.last()) {
            (Some(o), Some(l)) => relative(l.ts, o).chars().count() + 1,
            _ => 10,
        };
        // A lane for each client, taking a freed lane when there is one.
        let mut last_row: Vec<usize> = Vec::new();
        let mut lane_of = Vec::with_capacity(c.len());
        for (_, (first, last)) in &c {
            match last_row.iter().position(|&l| l < *first) {
                Some(j) => {
                    last_row[j] = *last;
                    lane_of.push(j);
                }
                None => {
                    last_row.push(*last);
                    lane_of.push(last_row.len() - 1);
                }
            }
        }
        // Columns for lanes other than the label gap, two per lane at least.
        let room = w.saturating_sub(time_width + 3 + MIN_LABEL);
        let max_lanes = (room / 2 + 2).max(2);
        let keep_s = s.len().min((max_lanes / 4).max(1));
        let keep_c = last_row.len().min(max_lanes.saturating_sub(keep_s).max(1));
        let lanes = keep_c + keep_s;
        // Spacing of neighbouring lanes of one kind: 4 when it fits.
        let others = lanes.saturating_sub(2).max(1);
        let step = (room / others).clamp(2, 4);
        let mut pos = Vec::with_capacity(lanes);
        for i in 0..keep_c {
            pos.push(time_width + 1 + i * step);
        }
        // The servers at the right edge, their aliases (up to 3 chars) in.
        let last = w.saturating_sub(3);
        for j in 0..keep_s {
            pos.push(last.saturating_sub((keep_s - 1 - j) * step));
        }
        Lanes::build(c, lane_of, s, keep_c, keep_s, pos, time_width)
    }

    fn build(
        c: Vec<Spanned>,
        lane_of: Vec<usize>,
        s: Vec<SocketAddr>,
        keep_c: usize,
        keep_s: usize,
        pos: Vec<usize>,
        time_width: usize,
    ) -> Lanes {
        let needed_c = lane_of.iter().map(|l| l + 1).max().unwrap_or(0);
        let clients = needed_c.min(keep_c);
        let clients_shared = needed_c > clients;
        let ns = s.len().min(keep_s);
        let servers_shared = s.len() > ns;
        let client_lane = c
            .iter()
            .zip(&lane_of)
            .map(|((a, _), &l)| (*a, l.min(clients.saturating_sub(1))))
            .collect();
        let client_span = c.iter().map(|(_, span)| *span).collect();
        let server_lane = s
            .iter()
            .enumerate()
            .map(|(j, a)| (*a, clients + j.min(ns.saturating_sub(1))))
            .collect();
        let mut aliases = Vec::new();
        for i in 0..clients {
            aliases.push(if clients_shared && i + 1 == clients {
                "C+".to_string()
            } else {
                format!("C{}", i + 1)
            });
        }
        for j in 0..ns {
            aliases.push(if servers_shared && j + 1 == ns {
                "S+".to_string()
            } else if s.len() == 1 {
                "S".to_string()
            } else {
                format!("S{}", j + 1)
            });
        }
        Lanes {
            client_lane,
            client_span,
            server_lane,
            clients,
            clients_shared,
            servers_shared,
            aliases,
            pos,
            time_width,
        }
    }

    /// Text: the column of lane `i`.
    fn col(&self, i: usize) -> usize {
        self.pos.get(i).copied().unwrap_or(self.time_width)
    }

    /// The alias of lane `i`.
    fn alias(&self, i: usize) -> &str {
        self.aliases.get(i).map_or("?", String::as_str)
    }

    /// The lane of a client.
    fn client(&self, a: SocketAddr) -> usize {
        self.client_lane
            .iter()
            .find(|(x, _)| *x == a)
            .map_or(0, |(_, l)| *l)
    }

    /// The lane of a server.
    fn server(&self, a: SocketAddr) -> usize {
        self.server_lane
            .iter()
            .find(|(x, _)| *x == a)
            .map_or(self.clients, |(_, l)| *l)
    }

    /// Whether a lane is shared by several endpoints at once.
    fn shared(&self, lane: usize) -> bool {
        (self.clients_shared && lane + 1 == self.clients)
            || (self.servers_shared && lane + 1 == self.aliases.len())
    }

    /// The lane of an address, if it has one of its own.
    fn find(&self, a: SocketAddr) -> Option<usize> {
        self.client_lane
            .iter()
            .chain(&self.server_lane)
            .find(|(x, _)| *x == a)
            .map(|(_, l)| *l)
            .filter(|&l| !self.shared(l))
    }

    /// The address on lane `i` (Mermaid: one each).
    fn name(&self, i: usize) -> String {
        self.client_lane
            .iter()
            .chain(&self.server_lane)
            .find(|(_, l)| *l == i)
            .map_or_else(|| "?".to_string(), |(a, _)| a.to_string())
    }

    /// Whether lane `i` is drawn on row `n`: a client lane while one of
    /// its clients' sessions lasts (between its first and last rows), a
    /// server's on every row.
    fn active(&self, i: usize, n: usize) -> bool {
        if i >= self.clients {
            return true;
        }
        self.client_lane
            .iter()
            .zip(&self.client_span)
            .any(|((_, l), (a, b))| *l == i && (*a..=*b).contains(&n))
    }

    /// Whether a row's label begins with its session number: it is on a
    /// lane shared at once or one after another, or its client is not
    /// named in the legend.
    fn names_session(&self, r: &Row) -> bool {
        let unlisted = |a: SocketAddr| {
            let lane = self.client(a);
            self.client_lane
                .iter()
                .position(|(x, _)| *x == a)
                .is_some_and(|i| i >= LEGEND_CLIENTS)
                || self.client_lane.iter().filter(|(_, l)| *l == lane).count() > 1
        };
        match r.kind {
            Kind::Arrow { client, server, .. } => {
                self.shared(self.client(client))
                    || self.shared(self.server(server))
                    || unlisted(client)
            }
            Kind::Note(On::Client(a)) => self.shared(self.client(a)) || unlisted(a),
            _ => false,
        }
    }

    /// The legend of a text ladder: what each alias stands for.
    fn legend(&self, rows: &[&Row]) -> Vec<String> {
        // Each client's sessions, as the sessions table numbers them.
        let mut sessions: Vec<Vec<u64>> = vec![Vec::new(); self.client_lane.len()];
        for r in rows {
            let client = match r.kind {
                Kind::Arrow { client, .. } | Kind::Note(On::Client(client)) => client,
                _ => continue,
            };
            if let (Some(i), Some(id)) = (
                self.client_lane.iter().position(|(x, _)| *x == client),
                r.session,
            ) && let Some(list) = sessions.get_mut(i)
                && !list.contains(&id)
            {
                list.push(id);
            }
        }
        let origin = rows.first().map(|r| r.ts);
        let mut out = Vec::new();
        let mut unlisted = 0usize;
        for (i, (a, lane)) in self.client_lane.iter().enumerate() {
            if self.shared(*lane) || i >= LEGEND_CLIENTS {
                unlisted += 1;
                continue;
            }
            let mut line = format!("{:>3} = {a}", self.alias(*lane));
            if let Some(list) = sessions.get(i).filter(|l| !l.is_empty()) {
                let ids: Vec<String> = list.iter().map(|id| format!("#{id}")).collect();
                let _ = write!(line, " (session {})", ids.join(", "));
            }
            let reused = self.client_lane.iter().filter(|(_, l)| l == lane).count() > 1;
            if reused
                && let (Some(o), Some((first, _))) = (origin, self.client_span.get(i))
                && let Some(r) = rows.get(*first)
            {
                let _ = write!(line, " from {}", relative(r.ts, o));
            }
            out.push(line);
        }
        if unlisted > 0 {
            out.push(format!(
                "  + {unlisted} more client(s): their rows begin with the session number \
                 (the sessions table lists them)"
            ));
        }
        for (a, lane) in &self.server_lane {
            if !self.shared(*lane) {
                out.push(format!("{:>3} = {a}", self.alias(*lane)));
            }
        }
        if self.servers_shared {
            out.push(format!(
                "{:>3} = the other servers",
                self.aliases.last().map_or("S+", String::as_str)
            ));
        }
        out
    }
}

/// Whether to colour: `always` yes, `never` no, `auto` when stdout is a
/// terminal and `NO_COLOR` is unset or empty (<https://no-color.org>).
pub fn color_wanted(choice: ColorChoice, stdout_is_terminal: bool, no_color: Option<&str>) -> bool {
    match choice {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => stdout_is_terminal && no_color.is_none_or(str::is_empty),
    }
}

/// `--color`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColorChoice {
    /// Colour on a terminal unless `NO_COLOR` is set.
    Auto,
    /// Always (even with `NO_COLOR`).
    Always,
    /// Never.
    Never,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::event::Where;

    fn ts(usec: u32) -> Timestamp {
        Timestamp { sec: 1000, usec }
    }

    fn opts(style: LadderStyle) -> LadderOptions {
        LadderOptions {
            style,
            width: 80,
            color: false,
            max_events: 100,
            from: None,
            to: None,
            session: None,
        }
    }

    #[test]
    fn color_follows_the_choice_the_terminal_and_no_color() {
        use ColorChoice::*;
        assert!(color_wanted(Always, false, Some("1")));
        assert!(!color_wanted(Never, true, None));
        assert!(color_wanted(Auto, true, None));
        assert!(color_wanted(Auto, true, Some("")));
        assert!(!color_wanted(Auto, true, Some("1")));
        assert!(!color_wanted(Auto, false, None));
    }

    #[test]
    fn mermaid_names_and_messages_are_escaped() {
        let mut l = Ladder::new(opts(LadderStyle::Mermaid));
        let client: SocketAddr = "[::1]:40000".parse().unwrap();
        let server: SocketAddr = "[::1]:5005".parse().unwrap();
        let at = Where {
            ts: ts(1),
            session: 1,
            client,
            server,
        };
        l.event(&Event::Text {
            at,
            dir: Dir::ToServer,
            offset: 0,
            data: b";:#\"<>[]",
            echo: None,
        });
        l.note(ts(2), Some(server), "a;b#c");
        let mut out = Vec::new();
        l.render(&mut out).unwrap();
        let out = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], "sequenceDiagram");
        assert_eq!(lines[1], "    participant C1 as [::1]:40000");
        assert_eq!(lines[2], "    participant S as [::1]:5005");
        // The message, quoted by the preview (its own quote escaped as
        // `\"`): `;`, `#`, quotes, the backslash and `<>` as entity codes.
        assert_eq!(
            lines[3],
            "    C1->>S: text #34;#59;:#35;#92;#34;#60;#62;[]#34;"
        );
        assert_eq!(lines[4], "    Note right of S: a#59;b#35;c");
        for line in &lines[1..] {
            // No raw `;`, and every `#` begins an entity.
            let body = line.replace(|c: char| c.is_ascii_digit(), "");
            assert!(!body.replace("#;", "").contains([';', '#']), "{line}");
        }
    }

    #[test]
    fn many_clients_at_once_share_a_last_lane_and_every_line_fits() {
        let mut o = opts(LadderStyle::Text);
        o.max_events = 300;
        let mut l = Ladder::new(o);
        let server = SocketAddr::from(([10, 0, 0, 2], 5005));
        // 100 clients open at once: SYNs first, then FINs.
        for (what, t0) in [(TcpWhat::Syn, 0), (TcpWhat::Fin(Dir::ToServer), 1000)] {
            for i in 0..100u16 {
                let at = Where {
                    ts: ts(t0 + u32::from(i)),
                    session: u64::from(i) + 1,
                    client: SocketAddr::from(([10, 0, 0, 1], 40000 + i)),
                    server,
                };
                l.event(&Event::Tcp { at, what });
            }
        }
        let mut out = Vec::new();
        l.render(&mut out).unwrap();
        let out = String::from_utf8(out).unwrap();
        assert!(out.lines().all(|x| x.chars().count() <= 80), "{out}");
        assert!(out.contains("C+"), "{out}");
        assert!(out.contains("more client(s)"), "{out}");
        // Rows on the shared lane say their session.
        assert!(out.contains("#100 FIN"), "{out}");
    }

    #[test]
    fn clients_one_after_another_take_the_same_lane() {
        let mut l = Ladder::new(opts(LadderStyle::Text));
        let server = SocketAddr::from(([10, 0, 0, 2], 5005));
        for i in 0..10u16 {
            let at = Where {
                ts: ts(u32::from(i) * 10),
                session: u64::from(i) + 1,
                client: SocketAddr::from(([10, 0, 0, 1], 40000 + i)),
                server,
            };
            l.event(&Event::Tcp {
                at,
                what: TcpWhat::Syn,
            });
            l.event(&Event::Tcp {
                at,
                what: TcpWhat::Rst(Dir::ToClient),
            });
        }
        let mut out = Vec::new();
        l.render(&mut out).unwrap();
        let out = String::from_utf8(out).unwrap();
        assert!(!out.contains("C2"), "{out}");
        assert!(out.contains("#10 SYN") && out.contains("#10 RST"), "{out}");
    }

    #[test]
    fn labels_are_cut_in_characters_not_bytes() {
        assert_eq!(cut("µµµµ", 4), "µµµµ");
        assert_eq!(cut("µµµµµ", 4), "µµµ…");
        assert_eq!(cut("abc", 0), "");
    }

    #[test]
    fn events_past_the_limit_are_counted_not_kept() {
        let mut o = opts(LadderStyle::Text);
        o.max_events = 2;
        let mut l = Ladder::new(o);
        for i in 0..5 {
            l.note(ts(i), None, "n");
        }
        assert_eq!(l.counts(), (2, 3));
        let mut out = Vec::new();
        l.render(&mut out).unwrap();
        let out = String::from_utf8(out).unwrap();
        assert!(out.contains("3 more event(s) not drawn"), "{out}");
        assert!(out.lines().all(|l| l.chars().count() <= 80), "{out}");
    }

    #[test]
    fn the_window_and_the_session_filter_what_is_drawn() {
        let mut o = opts(LadderStyle::Text);
        o.from = Some(ts(10));
        o.to = Some(ts(20));
        o.session = Some(2);
        let mut l = Ladder::new(o);
        let at = |session, usec| Where {
            ts: ts(usec),
            session,
            client: SocketAddr::from(([127, 0, 0, 1], 40000)),
            server: SocketAddr::from(([127, 0, 0, 1], 5005)),
        };
        for (s, t) in [(2, 5), (2, 15), (1, 15), (2, 25)] {
            l.event(&Event::Tcp {
                at: at(s, t),
                what: TcpWhat::Syn,
            });
        }
        assert_eq!(l.counts(), (1, 0));
    }
}
