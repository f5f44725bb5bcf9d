//! One flood connection: what it sends, what it waits for, and how each
//! echo is checked. Driven by a worker thread's poll loop in `super`.
//!
//! Requests are built from a pool of random messages made once, so sending
//! allocates nothing: a frame is its template copied into the output buffer
//! with the `order` field patched. Echoes come back through the streaming
//! decoder (v2/v3), as a byte stream compared message by message (text), or
//! as datagrams carrying their sequence number (UDP).

use std::collections::{BTreeMap, VecDeque};
use std::io::{self, Read, Write};
use std::ops::Range;
use std::time::{Duration, Instant};

use mio::net::{TcpStream, UdpSocket};

use crate::codec::{FrameReader, Framing};

/// What the flood speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    /// v2 frames over TCP.
    V2,
    /// v3 frames over TCP.
    V3,
    /// Text over TCP (echoed as a byte stream).
    Text,
    /// UDP datagrams (server run with `--echo`).
    Udp,
    /// Frames of a framing file over TCP (`--framing FILE`): each request
    /// encoded whole (its echo key and checksum change per request).
    Custom(&'static crate::framing::FramingDef),
}

impl Proto {
    /// `v2`, `v3`, `text`, `udp`.
    pub fn name(self) -> &'static str {
        match self {
            Proto::V2 => "v2",
            Proto::V3 => "v3",
            Proto::Text => "text",
            Proto::Udp => "udp",
            Proto::Custom(def) => def.spec.name,
        }
    }

    /// The framing of its frames (none for text and UDP).
    pub fn framing(self) -> Option<Framing> {
        match self {
            Proto::V2 => Some(Framing::V2),
            Proto::V3 => Some(Framing::V3),
            Proto::Custom(def) => Some(Framing::Custom(def)),
            Proto::Text | Proto::Udp => None,
        }
    }

    /// How many values its order (echo key) takes before wrapping (see
    /// [`crate::lab::order_span`]): 2^32 for v2, v3, text and UDP.
    pub fn order_span(self) -> u64 {
        self.framing().map_or(1 << 32, crate::lab::order_span)
    }
}

/// Bytes of a UDP message taken by its sequence number.
pub const UDP_SEQ: usize = 8;

/// Counters of one connection (or, summed, of a run).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Requests sent.
    pub sent: u64,
    /// Echoes received (matched to a request by order/sequence/position).
    pub echoed: u64,
    /// Echoes equal to their request.
    pub verified: u64,
    /// Echoes that differ from their request, or answer none.
    pub mismatched: u64,
    /// Requests whose echo never came (within `--drain`).
    pub missing: u64,
    /// Echoes that came after their request was counted missing.
    pub late: u64,
    /// Echoes answering no request (a duplicate, or bytes never sent).
    pub unexpected: u64,
    /// Bytes written.
    pub bytes_out: u64,
    /// Bytes read.
    pub bytes_in: u64,
}

impl Counts {
    /// Adds `o` into `self`.
    pub fn add(&mut self, o: &Counts) {
        self.sent = self.sent.saturating_add(o.sent);
        self.echoed = self.echoed.saturating_add(o.echoed);
        self.verified = self.verified.saturating_add(o.verified);
        self.mismatched = self.mismatched.saturating_add(o.mismatched);
        self.missing = self.missing.saturating_add(o.missing);
        self.late = self.late.saturating_add(o.late);
        self.unexpected = self.unexpected.saturating_add(o.unexpected);
        self.bytes_out = self.bytes_out.saturating_add(o.bytes_out);
        self.bytes_in = self.bytes_in.saturating_add(o.bytes_in);
    }
}

/// A request awaiting its echo.
#[derive(Debug, Clone, Copy)]
struct Pending {
    /// `order` (v2/v3), sequence number (UDP) or message number (text).
    id: u64,
    /// Its template in the pool.
    pool: u32,
    /// When it was meant to be sent (latency counts from here).
    due: Instant,
    /// When it was queued (how long it waits counts from here).
    sent: Instant,
}

enum Sock {
    Tcp(TcpStream),
    Udp(UdpSocket),
}

/// How echoes are taken apart.
enum Echoes {
    Framed(FrameReader),
    /// Position in the front message, and whether it differed so far.
    Text {
        at: usize,
        differs: bool,
        buf: Vec<u8>,
    },
    Udp {
        buf: Vec<u8>,
    },
}

/// What became of a request, for the caller's latency record.
pub enum Outcome {
    /// Echoed (verified or not) after `latency`.
    Echo(Duration),
}

/// One connection.
pub struct Link {
    /// Connection number, from 0.
    pub id: usize,
    sock: Sock,
    proto: Proto,
    verify: bool,
    /// Request templates (whole frames for v2/v3; messages otherwise),
    /// shared by every connection.
    pool: std::sync::Arc<Vec<Vec<u8>>>,
    next_pool: usize,
    /// The `order` field's bytes in a frame.
    order_at: Range<usize>,
    next_id: u64,
    inflight: VecDeque<Pending>,
    /// UDP echoes may come in any order.
    udp_inflight: BTreeMap<u64, Pending>,
    out: Vec<u8>,
    out_at: usize,
    echoes: Echoes,
    /// A framing file's expected echo, re-encoded to compare with.
    expect: Vec<u8>,
    /// Counters.
    pub counts: Counts,
    /// Set when the connection failed or the server closed it.
    pub failed: Option<(&'static str, String)>,
    /// The server closed its side.
    pub eof: bool,
    shut: bool,
    /// Highest request id given up on (echoes up to it are late).
    expired_to: u64,
    /// Last echo, or when requests started waiting: a link with requests
    /// in flight and no echo for `--drain` has stalled.
    last_progress: Option<Instant>,
}

/// The unsent output above which no more requests are queued.
const OUT_HIGH_WATER: usize = 256 * 1024;

impl Link {
    /// A TCP link (already connected, non-blocking).
    pub fn tcp(
        id: usize,
        sock: std::net::TcpStream,
        proto: Proto,
        verify: bool,
        pool: std::sync::Arc<Vec<Vec<u8>>>,
    ) -> io::Result<Link> {
        sock.set_nonblocking(true)?;
        let _ = sock.set_nodelay(true);
        let echoes = match proto.framing() {
            // Echoes are the requests: their size never exceeds the largest
            // template, so that bounds what the reader accepts.
            Some(f) => {
                let max = pool.iter().map(Vec::len).max().unwrap_or(0);
                Echoes::Framed(FrameReader::new(f, u32::try_from(max).unwrap_or(u32::MAX)))
            }
            None => Echoes::Text {
                at: 0,
                differs: false,
                buf: vec![0; 64 * 1024],
            },
        };
        Ok(Link::new(
            id,
            Sock::Tcp(TcpStream::from_std(sock)),
            proto,
            verify,
            pool,
            echoes,
        ))
    }

    /// A UDP link (connected, non-blocking).
    pub fn udp(
        id: usize,
        sock: std::net::UdpSocket,
        verify: bool,
        pool: std::sync::Arc<Vec<Vec<u8>>>,
    ) -> io::Result<Link> {
        sock.set_nonblocking(true)?;
        let echoes = Echoes::Udp {
            buf: vec![0; 65536],
        };
        Ok(Link::new(
            id,
            Sock::Udp(UdpSocket::from_std(sock)),
            Proto::Udp,
            verify,
            pool,
            echoes,
        ))
    }

    fn new(
        id: usize,
        sock: Sock,
        proto: Proto,
        verify: bool,
        pool: std::sync::Arc<Vec<Vec<u8>>>,
        echoes: Echoes,
    ) -> Link {
        let order_at = crate::spec::V2
            .field("order")
            .map_or(1..5, crate::spec::Field::range);
        Link {
            id,
            sock,
            proto,
            verify,
            pool,
            next_pool: 0,
            order_at,
            next_id: 1,
            inflight: VecDeque::new(),
            udp_inflight: BTreeMap::new(),
            out: Vec::with_capacity(OUT_HIGH_WATER),
            out_at: 0,
            echoes,
            expect: Vec::new(),
            counts: Counts::default(),
            failed: None,
            eof: false,
            shut: false,
            expired_to: 0,
            last_progress: None,
        }
    }

    /// The socket, for registering with a poll.
    pub fn source(&mut self) -> &mut dyn mio::event::Source {
        match &mut self.sock {
            Sock::Tcp(s) => s,
            Sock::Udp(s) => s,
        }
    }

    /// Requests sent and not yet answered.
    pub fn in_flight(&self) -> usize {
        self.inflight.len().saturating_add(self.udp_inflight.len())
    }

    /// Whether more requests can be queued now (output not backed up).
    pub fn can_queue(&self) -> bool {
        self.failed.is_none()
            && !self.eof
            && self.out.len().saturating_sub(self.out_at) < OUT_HIGH_WATER
    }

    /// Queues one request meant to go at `due`. TCP requests are written
    /// in batches by [`Link::flush`]; UDP ones are sent at once.
    pub fn queue(&mut self, due: Instant, now: Instant) {
        if self.in_flight() == 0 {
            self.last_progress = Some(now);
        }
        let pool = self.next_pool;
        self.next_pool = (self.next_pool + 1) % self.pool.len().max(1);
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        let Some(tmpl) = self.pool.get(pool) else {
            return;
        };
        let start = self.out.len();
        if let Proto::Custom(def) = self.proto {
            // The template is the body; the frame is built per request.
            if let Err(e) = custom_frame(def, id, tmpl, &mut self.out) {
                self.out.truncate(start);
                if self.failed.is_none() {
                    self.failed = Some(("flood.encode", e.to_string()));
                }
                return;
            }
        } else {
            self.out.extend_from_slice(tmpl);
        }
        match self.proto {
            Proto::V2 | Proto::V3 => {
                // Orders count from 1 and wrap like the lab's u32.
                let order = (id as u32).to_be_bytes();
                if let Some(field) = self.out.get_mut(
                    start.saturating_add(self.order_at.start)
                        ..start.saturating_add(self.order_at.end),
                ) {
                    field.copy_from_slice(&order);
                }
            }
            Proto::Udp => {
                if let Some(field) = self.out.get_mut(start..start.saturating_add(UDP_SEQ)) {
                    field.copy_from_slice(&id.to_be_bytes());
                }
            }
            Proto::Text | Proto::Custom(_) => {}
        }
        let p = Pending {
            id,
            pool: u32::try_from(pool).unwrap_or(u32::MAX),
            due,
            sent: now,
        };
        self.counts.sent = self.counts.sent.saturating_add(1);
        if self.proto == Proto::Udp {
            self.udp_inflight.insert(id, p);
            // One datagram per request.
            let dgram = self.out.split_off(start);
            if let Sock::Udp(s) = &self.sock {
                match s.send(&dgram) {
                    Ok(n) => self.counts.bytes_out = self.counts.bytes_out.saturating_add(n as u64),
                    // A full socket buffer loses the datagram, as UDP
                    // does: it will count as missing.
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => self.fail(&e),
                }
            }
        } else {
            self.inflight.push_back(p);
        }
    }

    /// Writes queued bytes until done or the socket is full.
    pub fn flush(&mut self) {
        let Sock::Tcp(s) = &mut self.sock else {
            return;
        };
        while self.out_at < self.out.len() {
            match s.write(self.out.get(self.out_at..).unwrap_or_default()) {
                Ok(0) => {
                    self.failed = Some(("conn.write", "the server stopped accepting bytes".into()));
                    return;
                }
                Ok(n) => {
                    self.out_at = self.out_at.saturating_add(n);
                    self.counts.bytes_out = self.counts.bytes_out.saturating_add(n as u64);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.fail(&e);
                    return;
                }
            }
        }
        self.out.clear();
        self.out_at = 0;
    }

    /// Whether bytes wait to be written.
    pub fn has_output(&self) -> bool {
        self.out_at < self.out.len()
    }

    fn fail(&mut self, e: &io::Error) {
        let kind = match e.kind() {
            io::ErrorKind::ConnectionReset => "conn.reset",
            io::ErrorKind::BrokenPipe => "conn.broken_pipe",
            io::ErrorKind::ConnectionRefused => "conn.refused",
            _ => "io.error",
        };
        if self.failed.is_none() {
            self.failed = Some((kind, e.to_string()));
        }
    }

    /// Reads every echo that has arrived; `on` gets each one's outcome.
    pub fn read(&mut self, now: Instant, on: &mut dyn FnMut(Outcome)) {
        loop {
            let n = match (&mut self.sock, &mut self.echoes) {
                (Sock::Tcp(s), Echoes::Framed(r)) => r.read_from(s),
                (Sock::Tcp(s), Echoes::Text { buf, .. }) => s.read(buf),
                (Sock::Udp(s), Echoes::Udp { buf }) => s.recv(buf),
                _ => return,
            };
            match n {
                Ok(0) if self.proto != Proto::Udp => {
                    self.eof = true;
                    // Expected only after we said we were done and every
                    // echo came back.
                    if (!self.shut || self.in_flight() > 0) && self.failed.is_none() {
                        self.failed = Some((
                            "conn.closed",
                            format!(
                                "the server closed the connection with {} request(s) unanswered{}",
                                self.in_flight(),
                                if self.shut {
                                    ""
                                } else {
                                    ", before the flood ended"
                                }
                            ),
                        ));
                    }
                    return;
                }
                Ok(n) => {
                    self.counts.bytes_in = self.counts.bytes_in.saturating_add(n as u64);
                    self.take(n, now, on);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.fail(&e);
                    return;
                }
            }
        }
    }

    /// Handles `n` bytes just read.
    fn take(&mut self, n: usize, now: Instant, on: &mut dyn FnMut(Outcome)) {
        match &mut self.echoes {
            Echoes::Framed(r) => loop {
                let frame = match r.next_frame() {
                    Ok(Some(f)) => f,
                    Ok(None) => return,
                    Err(e) => {
                        // Not the frame that was sent (e.g. a size no request
                        // had): nothing after it can be trusted.
                        self.counts.unexpected = self.counts.unexpected.saturating_add(1);
                        if self.failed.is_none() {
                            self.failed = Some(("echo.undecodable", e.to_string()));
                        }
                        return;
                    }
                };
                // Requests before this order got no echo (the server
                // answers in order): ids in flight are consecutive, so the
                // echo's place is its distance from the front.
                let Some(front) = self.inflight.front().copied() else {
                    Link::stray(
                        &mut self.counts,
                        self.proto,
                        self.expired_to,
                        u64::from(frame.order),
                    );
                    continue;
                };
                let dist = match self.proto {
                    // No echo key: the server answers in order.
                    Proto::Custom(def) if def.echo_key.is_none() => 0,
                    p => {
                        let span = p.order_span();
                        let key = front.id % span;
                        (u64::from(frame.order) % span)
                            .wrapping_add(span)
                            .wrapping_sub(key)
                            .checked_rem(span)
                            .map_or(usize::MAX, |d| usize::try_from(d).unwrap_or(usize::MAX))
                    }
                };
                if dist >= self.inflight.len() {
                    Link::stray(
                        &mut self.counts,
                        self.proto,
                        self.expired_to,
                        u64::from(frame.order),
                    );
                    continue;
                }
                for _ in 0..dist {
                    self.inflight.pop_front();
                    self.counts.missing = self.counts.missing.saturating_add(1);
                }
                let Some(front) = self.inflight.front().copied() else {
                    continue;
                };
                self.last_progress = Some(now);
                self.inflight.pop_front();
                self.counts.echoed = self.counts.echoed.saturating_add(1);
                if self.verify {
                    let ok = match self.proto {
                        // Byte for byte against the frame as it was sent.
                        Proto::Custom(def) => {
                            self.expect.clear();
                            self.pool.get(front.pool as usize).is_some_and(|t| {
                                custom_frame(def, front.id, t, &mut self.expect).is_ok()
                                    && self.expect == frame.raw
                            })
                        }
                        _ => self
                            .pool
                            .get(front.pool as usize)
                            .is_some_and(|t| same_but_order(t, frame.raw, &self.order_at)),
                    };
                    if ok {
                        self.counts.verified = self.counts.verified.saturating_add(1);
                    } else {
                        self.counts.mismatched = self.counts.mismatched.saturating_add(1);
                    }
                }
                on(Outcome::Echo(now.saturating_duration_since(front.due)));
            },
            Echoes::Text { at, differs, buf } => {
                let mut data = buf.get(..n).unwrap_or_default();
                while !data.is_empty() {
                    let Some(front) = self.inflight.front().copied() else {
                        // More bytes than were sent.
                        self.counts.unexpected = self.counts.unexpected.saturating_add(1);
                        if self.failed.is_none() {
                            self.failed = Some((
                                "echo.extra_bytes",
                                format!("{} byte(s) answering nothing that was sent", data.len()),
                            ));
                        }
                        return;
                    };
                    let want = self
                        .pool
                        .get(front.pool as usize)
                        .map_or(&[][..], Vec::as_slice);
                    let rest = want.get(*at..).unwrap_or_default();
                    let k = rest.len().min(data.len());
                    if self.verify && rest.get(..k) != data.get(..k) {
                        *differs = true;
                    }
                    *at = at.saturating_add(k);
                    data = data.get(k..).unwrap_or_default();
                    if *at >= want.len() {
                        self.inflight.pop_front();
                        self.last_progress = Some(now);
                        self.counts.echoed = self.counts.echoed.saturating_add(1);
                        if self.verify {
                            if *differs {
                                self.counts.mismatched = self.counts.mismatched.saturating_add(1);
                            } else {
                                self.counts.verified = self.counts.verified.saturating_add(1);
                            }
                        }
                        *at = 0;
                        *differs = false;
                        on(Outcome::Echo(now.saturating_duration_since(front.due)));
                    }
                }
            }
            Echoes::Udp { buf } => {
                let dgram = buf.get(..n).unwrap_or_default();
                let seq = dgram
                    .get(..UDP_SEQ)
                    .and_then(|b| b.try_into().ok())
                    .map(u64::from_be_bytes);
                let Some(p) = seq.and_then(|s| self.udp_inflight.remove(&s)) else {
                    Link::stray(
                        &mut self.counts,
                        self.proto,
                        self.expired_to,
                        seq.unwrap_or(u64::MAX),
                    );
                    return;
                };
                self.last_progress = Some(now);
                self.counts.echoed = self.counts.echoed.saturating_add(1);
                if self.verify {
                    let ok = self.pool.get(p.pool as usize).is_some_and(|t| {
                        t.len() == dgram.len() && t.get(UDP_SEQ..) == dgram.get(UDP_SEQ..)
                    });
                    if ok {
                        self.counts.verified = self.counts.verified.saturating_add(1);
                    } else {
                        self.counts.mismatched = self.counts.mismatched.saturating_add(1);
                    }
                }
                on(Outcome::Echo(now.saturating_duration_since(p.due)));
            }
        }
    }

    /// An echo for no request in flight: late (its request was given up
    /// on) or unexpected (a duplicate, or never sent).
    fn stray(counts: &mut Counts, proto: Proto, expired_to: u64, id: u64) {
        let late = match proto {
            // Orders wrap (u32, or a framing file's echo key): compare
            // within the window of ids handed out.
            Proto::V2 | Proto::V3 | Proto::Custom(_) => {
                let span = proto.order_span();
                let back = (expired_to % span)
                    .wrapping_add(span)
                    .wrapping_sub(id % span)
                    .checked_rem(span)
                    .unwrap_or(u64::MAX);
                expired_to > 0 && back < expired_to.min(span)
            }
            _ => id <= expired_to,
        };
        if late && counts.missing > 0 {
            counts.late = counts.late.saturating_add(1);
        } else {
            counts.unexpected = counts.unexpected.saturating_add(1);
        }
    }

    /// Gives up on requests queued before `cutoff` (their echo is lost)
    /// and, with `all`, on every request still in flight. A link with
    /// requests waiting and no echo since `cutoff` has stalled: it fails
    /// (so a silent server cannot make a run last forever). Returns how
    /// many requests were given up.
    pub fn expire(&mut self, cutoff: Instant, all: bool) -> u64 {
        let stalled =
            !all && self.in_flight() > 0 && self.last_progress.is_some_and(|t| t < cutoff);
        let all = all || stalled;
        let mut n = 0u64;
        while let Some(front) = self.inflight.front() {
            if !all && front.sent >= cutoff {
                break;
            }
            self.expired_to = self.expired_to.max(front.id);
            self.inflight.pop_front();
            n = n.saturating_add(1);
            // A half-received text message is lost with it.
            if let Echoes::Text { at, differs, .. } = &mut self.echoes {
                *at = 0;
                *differs = false;
            }
        }
        // UDP requests are kept by sequence number, which grows with time:
        // the oldest come first.
        while let Some((&id, p)) = self.udp_inflight.first_key_value() {
            if !all && p.sent >= cutoff {
                break;
            }
            self.expired_to = self.expired_to.max(id);
            self.udp_inflight.pop_first();
            n = n.saturating_add(1);
        }
        self.counts.missing = self.counts.missing.saturating_add(n);
        if stalled && self.failed.is_none() {
            self.failed = Some((
                "echo.timeout",
                format!("no echo came for {n} request(s) in flight: the server stopped answering"),
            ));
        }
        n
    }

    /// Closes the sending side (TCP), so the server sees the end.
    pub fn shutdown_write(&mut self) {
        if !self.shut
            && let Sock::Tcp(s) = &self.sock
        {
            let _ = s.shutdown(std::net::Shutdown::Write);
        }
        self.shut = true;
    }
}

/// Appends request `id` of a framing file to `out`: `body` as its
/// message, the echo key `id` wrapped as the key does, version 1 (a
/// field called `version` without a constant), other fields computed or 0.
pub fn custom_frame(
    def: &'static crate::framing::FramingDef,
    id: u64,
    body: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), crate::codec::EncodeError> {
    let framing = Framing::Custom(def);
    crate::codec::Frame {
        version: crate::spec::LAB_VERSION,
        order: crate::lab::nth_order(framing, id),
        size: u32::try_from(body.len()).unwrap_or(u32::MAX),
        message: body.to_vec(),
        padding: Vec::new(),
    }
    .try_encode(framing, out)
}

/// Whether `echo` is `tmpl` with any value in the order field.
fn same_but_order(tmpl: &[u8], echo: &[u8], order: &Range<usize>) -> bool {
    tmpl.len() == echo.len()
        && tmpl.get(..order.start) == echo.get(..order.start)
        && tmpl.get(order.end..) == echo.get(order.end..)
}
