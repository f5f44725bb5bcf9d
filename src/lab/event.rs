//! What lab servers and clients report, and the [`Log`] that prints it.
//!
//! Every server and client action is an [`Event`]. The log writes it as one
//! human line (text mode) or one JSON object per line (`--json`, for
//! scripts). Errors go to stderr in text mode and are never silenced;
//! `--quiet` drops everything else but a server's `listening` line (which
//! says the port, e.g. after `--port 0`), its `refuse` and `pause` lines,
//! and the `close` lines of connections closed for `--idle-timeout` (what
//! it did to protect itself). The JSON keys are stable:
//!
//! | `event`    | keys besides `event` and `time` (seconds since the Unix epoch) |
//! |------------|-----------------------------------------------------------------|
//! | `listening`| `proto`, `addr`, `max_conns` |
//! | `accept`   | `conn`, `peer`, `active`, `token` (selector only) |
//! | `refuse`   | `peer`, `limit`, `more` (refused since the last such line: at most one a second) |
//! | `datagram` | `peer`, `local`, `len`, `message`, `message_hex`*, `echoed` |
//! | `text`     | `conn`, `peer`, `len`, `message`, `message_hex`*, `token` |
//! | `frame`    | `conn`, `peer`, `framing`, `version`, `order`, `size`, `message`, `message_hex`*, `cut`, `diagnostics`, `fields`** |
//! | `pause`    | `conn`, `peer`, `queued`, `token` (once per connection: reads stopped, its echoes unread) |
//! | `close`    | `conn`, `peer`, `reason`, `bytes_in`, `bytes_out`, `messages`, `token` |
//! | `error`    | `conn`, `peer`, `code`, `message` |
//! | `stop`     | `served`, `refused` |
//! | `connect`  | `local`, `remote`, `proto` (client) |
//! | `sent`, `echo` | as `frame` or `text`, plus `ok` on `echo` (client) |
//!
//! `message` is the text when the bytes are valid UTF-8, otherwise the
//! escaped rendering (`\xC3`); `message_hex` (*) is then added, lossless.
//! `fields` (**, also on `sent` and `echo`) is for framing files only
//! (`--framing FILE`): every field of the frame by name, integers as
//! numbers, byte fields as `{"text", "hex"}`; and `raw_hex`, the whole
//! frame's bytes.

use std::io::{self, Write};
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value, json};

use crate::codec::escape::{escape, hex, preview};
use crate::codec::{FrameRef, Framing};

/// How the close reason of a connection the server chose to close starts.
pub const CLOSED_BY_SERVER: &str = "closed by the server";

/// Per-connection byte and message counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConnStats {
    /// Bytes read from the peer.
    pub bytes_in: u64,
    /// Bytes written back.
    pub bytes_out: u64,
    /// Frames (v2/v3) or reads (text) handled.
    pub messages: u64,
}

/// One thing that happened.
#[derive(Debug, Clone)]
pub enum Event<'a> {
    /// A server is ready.
    Listening {
        /// Protocol name (`v2`, `text-sel`, ...).
        proto: &'a str,
        /// The bound address (with the real port when 0 was asked).
        addr: SocketAddr,
        /// The connection cap (TCP servers).
        max_conns: Option<usize>,
    },
    /// A TCP connection was accepted.
    Accepted {
        /// Connection number, from 1.
        conn: u64,
        /// The client's address: its ephemeral port is the OS's choice.
        peer: SocketAddr,
        /// Connections open now, this one included.
        active: usize,
        /// The selector's token for it (text-sel).
        token: Option<usize>,
    },
    /// A connection was refused because the cap was reached.
    Refused {
        /// Who was refused.
        peer: SocketAddr,
        /// The cap.
        limit: usize,
        /// Refused since the last such line and not said (at most one
        /// line a second is printed; see [`Refusals`]).
        more: u64,
    },
    /// A UDP datagram arrived.
    Datagram {
        /// Sender.
        peer: SocketAddr,
        /// Our address.
        local: SocketAddr,
        /// Payload.
        data: &'a [u8],
        /// Whether it was echoed back.
        echoed: bool,
    },
    /// A read of the text protocol (one `recv()`, as the lab server sees it).
    Text {
        /// Connection number.
        conn: u64,
        /// Peer.
        peer: SocketAddr,
        /// Bytes read.
        data: &'a [u8],
        /// Selector token (text-sel).
        token: Option<usize>,
    },
    /// A whole v2/v3 frame was read.
    Frame {
        /// Connection number.
        conn: u64,
        /// Peer.
        peer: SocketAddr,
        /// Its framing.
        framing: Framing,
        /// The frame.
        frame: FrameRef<'a>,
    },
    /// The server stopped reading from a client because its echoes are
    /// not being read (said once per connection; the close line counts
    /// every pause).
    Paused {
        /// Connection number.
        conn: u64,
        /// Peer.
        peer: SocketAddr,
        /// Echo bytes waiting for the client to read them.
        queued: usize,
        /// Selector token (text-sel).
        token: Option<usize>,
    },
    /// A connection ended.
    Closed {
        /// Connection number.
        conn: u64,
        /// Peer.
        peer: SocketAddr,
        /// Why, in words.
        reason: &'a str,
        /// Counters.
        stats: ConnStats,
        /// Selector token (text-sel).
        token: Option<usize>,
    },
    /// Something went wrong with one connection or the server.
    Error {
        /// Connection number, if about one.
        conn: Option<u64>,
        /// Peer, if known.
        peer: Option<SocketAddr>,
        /// Stable diagnostic code (see `spec::DIAGNOSTICS`) or `io.*`.
        code: &'a str,
        /// The sentence: what, where, what to do.
        message: String,
    },
    /// The server stopped.
    Stopped {
        /// Connections (or datagrams, for UDP) served in all.
        served: u64,
        /// Connections refused in all (`--max-conns`).
        refused: u64,
    },
    /// A client connected (or, for UDP, chose its address).
    Connected {
        /// The local address the OS chose: the ephemeral port.
        local: SocketAddr,
        /// The server.
        remote: SocketAddr,
        /// Protocol name.
        proto: &'a str,
    },
    /// A client sent a message.
    Sent {
        /// The frame, for v2/v3.
        frame: Option<(Framing, FrameRef<'a>)>,
        /// The bytes, for text/UDP.
        data: &'a [u8],
    },
    /// A client received an echo.
    Echo {
        /// The frame, for v2/v3.
        frame: Option<(Framing, FrameRef<'a>)>,
        /// The bytes, for text/UDP.
        data: &'a [u8],
        /// Whether it equals what was sent.
        ok: bool,
    },
}

impl Event<'_> {
    /// Whether this is an error (printed even with `--quiet`).
    pub fn is_error(&self) -> bool {
        matches!(self, Event::Error { .. })
    }

    /// Whether `--quiet` still prints it: errors, a server's listening line,
    /// and what a server does to protect itself (a refused connection, a
    /// client whose reads were paused, a connection closed for
    /// `--idle-timeout`).
    pub fn survives_quiet(&self) -> bool {
        match self {
            Event::Error { .. }
            | Event::Listening { .. }
            | Event::Refused { .. }
            | Event::Paused { .. } => true,
            // Idle closes; a close for a decode error follows its error
            // line, which is printed anyway.
            Event::Closed { reason, .. } => {
                reason.starts_with(CLOSED_BY_SERVER) && reason.contains("--idle-timeout")
            }
            _ => false,
        }
    }

    /// The human line.
    pub fn text(&self) -> String {
        let tok = |t: &Option<usize>| t.map(|t| format!(" token={t}")).unwrap_or_default();
        match self {
            Event::Listening {
                proto,
                addr,
                max_conns,
            } => {
                let cap = max_conns
                    .map(|m| format!(", at most {m} connections"))
                    .unwrap_or_default();
                format!("listening: {proto} server on {addr}{cap} (Ctrl+C stops)")
            }
            Event::Accepted {
                conn,
                peer,
                active,
                token,
            } => format!("accept #{conn} from {peer}{} ({active} open)", tok(token)),
            Event::Refused { peer, limit, more } => {
                let more = if *more > 0 {
                    format!(" ({more} more refused since the last such line)")
                } else {
                    String::new()
                };
                format!(
                    "refuse {peer}: connection limit {limit} reached (--max-conns); closed at once{more}"
                )
            }
            Event::Datagram {
                peer,
                local,
                data,
                echoed,
            } => format!(
                "udp {peer} -> {local} {} bytes {}{}",
                data.len(),
                preview(data),
                if *echoed { " (echoed)" } else { "" }
            ),
            Event::Text {
                conn,
                peer,
                data,
                token,
            } => format!(
                "#{conn} {peer}{} text {} bytes {} (echoed)",
                tok(token),
                data.len(),
                preview(data)
            ),
            Event::Frame {
                conn,
                peer,
                framing,
                frame,
            } => format!(
                "#{conn} {peer} {}{} (echoed)",
                frame.describe(*framing),
                soft_findings(*framing, frame)
            ),
            Event::Paused {
                conn,
                peer,
                queued,
                token,
            } => format!(
                "pause #{conn} {peer}{}: stopped reading from this client: {queued} bytes of its echoes wait unread \
                 (it sends faster than it reads); reading resumes when it catches up, and it is closed if it \
                 reads nothing for --idle-timeout",
                tok(token)
            ),
            Event::Closed {
                conn,
                peer,
                reason,
                stats,
                token,
            } => format!(
                "close #{conn} {peer}{}: {reason} ({} messages, {} bytes in, {} bytes out)",
                tok(token),
                stats.messages,
                stats.bytes_in,
                stats.bytes_out
            ),
            Event::Error {
                conn,
                peer,
                code,
                message,
            } => {
                let mut s = String::from("error");
                if let Some(c) = conn {
                    s.push_str(&format!(" #{c}"));
                }
                if let Some(p) = peer {
                    s.push_str(&format!(" {p}"));
                }
                format!("{s}: {code}: {message}")
            }
            Event::Stopped { served, refused } => {
                if *refused > 0 {
                    format!("stopped ({served} served, {refused} refused)")
                } else {
                    format!("stopped ({served} served)")
                }
            }
            Event::Connected {
                local,
                remote,
                proto,
            } => format!("{local} -> {remote} ({proto}; local port chosen by the OS)"),
            Event::Sent { frame, data } => match frame {
                Some((framing, f)) => format!("sent {}", f.describe(*framing)),
                None => format!("sent {} bytes {}", data.len(), preview(data)),
            },
            Event::Echo { frame, data, ok } => {
                let body = match frame {
                    Some((framing, f)) => f.describe(*framing),
                    None => format!("{} bytes {}", data.len(), preview(data)),
                };
                let verdict = if *ok {
                    "ok"
                } else {
                    "MISMATCH: differs from what was sent"
                };
                format!("echo {body} {verdict}")
            }
        }
    }

    /// The JSON object (see the module doc for the keys).
    pub fn json(&self) -> Value {
        let mut m = Map::new();
        let mut put = |k: &str, v: Value| {
            m.insert(k.to_string(), v);
        };
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        let name = match self {
            Event::Listening { .. } => "listening",
            Event::Accepted { .. } => "accept",
            Event::Refused { .. } => "refuse",
            Event::Datagram { .. } => "datagram",
            Event::Text { .. } => "text",
            Event::Frame { .. } => "frame",
            Event::Paused { .. } => "pause",
            Event::Closed { .. } => "close",
            Event::Error { .. } => "error",
            Event::Stopped { .. } => "stop",
            Event::Connected { .. } => "connect",
            Event::Sent { .. } => "sent",
            Event::Echo { .. } => "echo",
        };
        put("event", json!(name));
        put("time", json!(now));
        let token = |t: &Option<usize>| t.map_or(Value::Null, |t| json!(t));
        match self {
            Event::Listening {
                proto,
                addr,
                max_conns,
            } => {
                put("proto", json!(proto));
                put("addr", json!(addr.to_string()));
                put("max_conns", json!(max_conns));
            }
            Event::Accepted {
                conn,
                peer,
                active,
                token: t,
            } => {
                put("conn", json!(conn));
                put("peer", json!(peer.to_string()));
                put("active", json!(active));
                put("token", token(t));
            }
            Event::Refused { peer, limit, more } => {
                put("peer", json!(peer.to_string()));
                put("limit", json!(limit));
                put("more", json!(more));
            }
            Event::Datagram {
                peer,
                local,
                data,
                echoed,
            } => {
                put("peer", json!(peer.to_string()));
                put("local", json!(local.to_string()));
                put("echoed", json!(echoed));
                put_message(&mut m, data);
            }
            Event::Text {
                conn,
                peer,
                data,
                token: t,
            } => {
                put("conn", json!(conn));
                put("peer", json!(peer.to_string()));
                put("token", token(t));
                put_message(&mut m, data);
            }
            Event::Frame {
                conn,
                peer,
                framing,
                frame,
            } => {
                put("conn", json!(conn));
                put("peer", json!(peer.to_string()));
                put_frame(&mut m, *framing, frame);
            }
            Event::Paused {
                conn,
                peer,
                queued,
                token: t,
            } => {
                put("conn", json!(conn));
                put("peer", json!(peer.to_string()));
                put("queued", json!(queued));
                put("token", token(t));
            }
            Event::Closed {
                conn,
                peer,
                reason,
                stats,
                token: t,
            } => {
                put("conn", json!(conn));
                put("peer", json!(peer.to_string()));
                put("reason", json!(reason));
                put("bytes_in", json!(stats.bytes_in));
                put("bytes_out", json!(stats.bytes_out));
                put("messages", json!(stats.messages));
                put("token", token(t));
            }
            Event::Error {
                conn,
                peer,
                code,
                message,
            } => {
                put("conn", json!(conn));
                put("peer", json!(peer.map(|p| p.to_string())));
                put("code", json!(code));
                put("message", json!(message));
            }
            Event::Stopped { served, refused } => {
                put("served", json!(served));
                put("refused", json!(refused));
            }
            Event::Connected {
                local,
                remote,
                proto,
            } => {
                put("local", json!(local.to_string()));
                put("remote", json!(remote.to_string()));
                put("proto", json!(proto));
            }
            Event::Sent { frame, data } => match frame {
                Some((framing, f)) => put_frame(&mut m, *framing, f),
                None => put_message(&mut m, data),
            },
            Event::Echo { frame, data, ok } => {
                put("ok", json!(ok));
                match frame {
                    Some((framing, f)) => put_frame(&mut m, *framing, f),
                    None => put_message(&mut m, data),
                }
            }
        }
        Value::Object(m)
    }
}

fn put_frame(m: &mut Map<String, Value>, framing: Framing, f: &FrameRef<'_>) {
    m.insert("framing".into(), json!(framing.name()));
    m.insert("version".into(), json!(f.version));
    m.insert("order".into(), json!(f.order));
    m.insert("size".into(), json!(f.size));
    put_message(m, f.message);
    m.remove("len");
    m.insert("cut".into(), json!(framing == Framing::V2 && f.is_cut()));
    let codes: Vec<_> = f.diagnostics(framing).map(|d| d.code).collect();
    m.insert("diagnostics".into(), json!(codes));
    if let Some(fields) = custom_fields(framing, f) {
        m.insert("fields".into(), fields);
        m.insert("raw_hex".into(), json!(hex(f.raw)));
    }
}

/// A framing file's frame, every field by name: integers as numbers, byte
/// fields as `{"text": …, "hex": …}` (text escaped as `message` is).
/// `None` for v2/v3 (their JSON keeps its shape) and for a frame without
/// its wire bytes.
fn custom_fields(framing: Framing, f: &FrameRef<'_>) -> Option<Value> {
    use crate::spec::Value as V;
    let def = framing.def()?;
    let values = def.spec.read(f.raw, u64::MAX).ok()?;
    let mut m = Map::new();
    for (field, v) in &values.fields {
        let v = match *v {
            V::Uint(n) => json!(n),
            V::Int(n) => json!(n),
            V::Bytes { content, .. } => {
                let text = match std::str::from_utf8(content) {
                    Ok(s) => s.to_string(),
                    Err(_) => escape(content),
                };
                json!({"text": text, "hex": hex(content)})
            }
        };
        m.insert(field.name.to_string(), v);
    }
    Some(Value::Object(m))
}

/// A framing file's soft-check findings (`expect`) on a frame, for its
/// text line: ` [framing.unexpected_value: version is 2, expected 1]`;
/// empty when there are none, and always for v2/v3.
fn soft_findings(framing: Framing, f: &FrameRef<'_>) -> String {
    let Some(def) = framing.def() else {
        return String::new();
    };
    let Ok(values) = def.spec.read(f.raw, u64::MAX) else {
        return String::new();
    };
    crate::framing::codec::notes(def, &values)
        .iter()
        .map(|n| {
            format!(
                " [{}: {} is {}, expected {}]",
                n.diagnostic.code, n.field, n.got, n.want
            )
        })
        .collect()
}

/// Refused connections, said at most once a second: a connection flood
/// beyond `--max-conns` must not become a log flood. Each line counts the
/// refusals it stands for, and the server's `stop` line gives the total.
#[derive(Debug, Default)]
pub struct Refusals {
    last: Option<std::time::Instant>,
    unsaid: u64,
    /// Refused in all.
    pub total: u64,
}

impl Refusals {
    /// A connection from `peer` was refused.
    pub fn refused(&mut self, log: &Log, peer: SocketAddr, limit: usize) {
        self.total = self.total.saturating_add(1);
        let now = std::time::Instant::now();
        if self
            .last
            .is_some_and(|t| now.duration_since(t) < std::time::Duration::from_secs(1))
        {
            self.unsaid = self.unsaid.saturating_add(1);
            return;
        }
        log.emit(&Event::Refused {
            peer,
            limit,
            more: self.unsaid,
        });
        self.unsaid = 0;
        self.last = Some(now);
    }
}

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// One human line per event.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

type Sink = Mutex<Box<dyn Write + Send>>;

/// Where events go. Shared by all of a server's threads (lines never mix).
pub struct Log {
    format: Format,
    quiet: bool,
    out: Sink,
    err: Sink,
}

impl Log {
    /// A log to stdout (events) and stderr (errors, in text mode).
    pub fn stdio(format: Format, quiet: bool) -> Log {
        Log::to(
            format,
            quiet,
            Box::new(io::stdout()),
            Box::new(io::stderr()),
        )
    }

    /// A log to any writers (tests print into buffers).
    pub fn to(
        format: Format,
        quiet: bool,
        out: Box<dyn Write + Send>,
        err: Box<dyn Write + Send>,
    ) -> Log {
        Log {
            format,
            quiet,
            out: Mutex::new(out),
            err: Mutex::new(err),
        }
    }

    /// Whether non-error events are printed at all (lets hot loops skip
    /// building them).
    pub fn verbose(&self) -> bool {
        !self.quiet
    }

    /// Prints one event. Write failures are ignored here (a closed stdout
    /// must not take a server down); `main` handles a broken pipe.
    pub fn emit(&self, ev: &Event<'_>) {
        let error = ev.is_error();
        if self.quiet && !ev.survives_quiet() {
            return;
        }
        let line = match self.format {
            Format::Text => ev.text(),
            Format::Json => ev.json().to_string(),
        };
        let sink = if error && self.format == Format::Text {
            &self.err
        } else {
            &self.out
        };
        let mut w = sink.lock().unwrap_or_else(|p| p.into_inner());
        let _ = writeln!(w, "{line}");
        let _ = w.flush();
    }
}

impl std::fmt::Debug for Log {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Log")
            .field("format", &self.format)
            .field("quiet", &self.quiet)
            .finish()
    }
}

/// Adds `len`, `message` (escaped where not UTF-8) and `message_hex`, as
/// the capture's JSON lines carry them.
fn put_message(m: &mut Map<String, Value>, data: &[u8]) {
    m.insert("len".into(), json!(data.len()));
    let text = match std::str::from_utf8(data) {
        Ok(s) => s.to_string(),
        Err(_) => escape(data),
    };
    m.insert("message".into(), json!(text));
    m.insert("message_hex".into(), json!(hex(data)));
}
