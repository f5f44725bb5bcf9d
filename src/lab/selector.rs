//! The selector server (lab exercise 3, `serverTCPsel.py`): one thread,
//! non-blocking sockets, a `mio` poll — Rust's counterpart of Python's
//! `selectors` module.
//!
//! Each connection is registered under a [`Token`], which plays the part of
//! the lab's selector key: it is printed on connect, on data and on
//! disconnect. `mio` is edge-triggered, so every readiness event is served
//! by reading (or writing) until the OS says `WouldBlock`.
//!
//! Writes never drop bytes: echoes queue in a per-connection buffer; what a
//! non-blocking `write` does not take stays queued and the connection is
//! registered for WRITABLE until the queue drains. A client that never reads
//! its echoes cannot make the server buffer without bound: above
//! [`HIGH_WATER`] queued bytes the server stops reading from it (READABLE
//! interest off) until the queue drains. The first pause is logged (a
//! `pause` line), its close line says how often it happened, and a client
//! that reads none of its echoes for `--idle-timeout` is closed.
//!
//! `--idle-timeout` also closes a connection that sends nothing for that
//! long: every [`sweep_every`] the server looks for such connections (one
//! pass over the table; 10,000 connections take well under a millisecond).

use std::collections::HashMap;
use std::io::{self, Write};
use std::net::TcpListener as StdListener;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};

use super::conn::Conn;
use super::event::{CLOSED_BY_SERVER, Event, Log, Refusals};
use super::threaded::TcpOptions;
use crate::codec::stream::SHRINK_ABOVE;
use crate::stop::Stop;

const LISTENER: Token = Token(0);
const WAKER: Token = Token(1);
/// First token handed to a client.
const FIRST_CLIENT: usize = 2;
/// Queued echo bytes above which a connection's reads pause.
pub const HIGH_WATER: usize = 256 * 1024;
/// Sent bytes at the front of a queue that are dropped once they are at
/// least half of it.
const COMPACT_AT: usize = 64 * 1024;

struct Client {
    stream: TcpStream,
    conn: Conn,
    /// Echo bytes not yet written: `out[sent..]`.
    out: Vec<u8>,
    sent: usize,
    /// Reading paused because `out` is above the high-water mark.
    paused: bool,
    /// The client closed its side; close ours once `out` is written.
    closing: Option<&'static str>,
    /// Times reading was paused because echoes queued up.
    pauses: u64,
    /// Last time bytes came in or an echo went out.
    active: Instant,
}

impl Client {
    fn pending(&self) -> usize {
        self.out.len().saturating_sub(self.sent)
    }

    /// Writes queued bytes until done or `WouldBlock`. The bytes already
    /// sent are dropped from the queue as it goes (not only when it
    /// empties), so a client that reads steadily but a little behind does
    /// not make it grow.
    fn flush(&mut self) -> io::Result<()> {
        while self.sent < self.out.len() {
            let chunk = self.out.get(self.sent..).unwrap_or_default();
            match self.stream.write(chunk) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    self.active = Instant::now();
                    self.sent = self.sent.saturating_add(n);
                    self.conn.stats.bytes_out = self.conn.stats.bytes_out.saturating_add(n as u64);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if self.sent >= COMPACT_AT && self.sent.saturating_mul(2) >= self.out.len() {
                        self.out.drain(..self.sent);
                        self.sent = 0;
                    }
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.out.clear();
        self.sent = 0;
        if self.out.capacity() > SHRINK_ABOVE {
            self.out = Vec::new();
        }
        Ok(())
    }

    fn interest(&self) -> Interest {
        let read = !self.paused && self.closing.is_none();
        match (read, self.pending() > 0) {
            (true, true) => Interest::READABLE | Interest::WRITABLE,
            (false, true) => Interest::WRITABLE,
            // Nothing to write and not reading: only a close would be
            // news; READABLE reports it.
            (_, false) => Interest::READABLE,
        }
    }
}

/// How often idle connections are looked for: a quarter of the timeout,
/// between 50 ms and 1 s.
pub fn sweep_every(idle: Duration) -> Duration {
    (idle / 4).clamp(Duration::from_millis(50), Duration::from_secs(1))
}

/// Why an idle connection is closed, if it is.
fn idle_reason(c: &Client, idle: Duration, now: Instant) -> Option<String> {
    if now.saturating_duration_since(c.active) < idle {
        return None;
    }
    let secs = idle.as_secs_f64();
    Some(if c.pending() > 0 {
        format!("{CLOSED_BY_SERVER}: it read none of its echoes for {secs} s (--idle-timeout)")
    } else {
        format!("{CLOSED_BY_SERVER}: nothing received for {secs} s (--idle-timeout)")
    })
}

/// Deregisters a connection and logs its close line.
fn close(poll: &Poll, mut c: Box<Client>, reason: String, log: &Log) {
    let _ = poll.registry().deregister(&mut c.stream);
    let reason = if c.pauses > 0 {
        format!(
            "{reason}; reads were paused {} time(s) while its echoes queued up (it read slower than it sent)",
            c.pauses
        )
    } else {
        reason
    };
    log.emit(&Event::Closed {
        conn: c.conn.id,
        peer: c.conn.peer,
        reason: &reason,
        stats: c.conn.stats,
        token: c.conn.token,
    });
}

/// What to do with a connection after serving an event.
enum Next {
    Keep,
    Close(String),
}

/// Serves until `stop`; returns how many connections were accepted and
/// how many refused.
pub fn run(
    listener: StdListener,
    opts: TcpOptions,
    log: Arc<Log>,
    stop: Stop,
) -> io::Result<(u64, u64)> {
    listener.set_nonblocking(true)?;
    let mut listener = TcpListener::from_std(listener);
    let mut poll = Poll::new()?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
    {
        let waker = waker.clone();
        stop.on_stop(move || {
            let _ = waker.wake();
        });
    }
    // Boxed: the table's slots stay small (it is sized in powers of two,
    // so up to half of them are empty) and a client costs its own size.
    let mut clients: HashMap<usize, Box<Client>> = HashMap::new();
    let mut next_token = FIRST_CLIENT;
    let mut accepted: u64 = 0;
    let mut refusals = Refusals::default();
    let mut events = Events::with_capacity(1024);
    let mut accept_retry = false;
    let sweep = sweep_every(opts.idle_timeout);
    let mut swept = Instant::now();
    while !stop.is_stopped() {
        let wait = if accept_retry {
            Some(Duration::from_millis(100))
        } else {
            (!clients.is_empty()).then_some(sweep)
        };
        let mut want_accept = false;
        if let Err(e) = poll.poll(&mut events, wait) {
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        for ev in events.iter() {
            match ev.token() {
                WAKER => {}
                LISTENER => want_accept = true,
                token => {
                    let Some(c) = clients.get_mut(&token.0) else {
                        continue;
                    };
                    let next = serve_event(c, ev.is_readable() || ev.is_read_closed(), &log);
                    let next = match next {
                        Next::Keep => {
                            let interest = c.interest();
                            match poll.registry().reregister(&mut c.stream, token, interest) {
                                Ok(()) => Next::Keep,
                                Err(e) => Next::Close(format!("cannot watch this connection: {e}")),
                            }
                        }
                        close => close,
                    };
                    if let Next::Close(reason) = next
                        && let Some(c) = clients.remove(&token.0)
                    {
                        close(&poll, c, reason, &log);
                    }
                }
            }
        }
        if swept.elapsed() >= sweep {
            let now = Instant::now();
            swept = now;
            let idle: Vec<usize> = clients
                .iter()
                .filter(|(_, c)| idle_reason(c, opts.idle_timeout, now).is_some())
                .map(|(t, _)| *t)
                .collect();
            for t in idle {
                let Some(c) = clients.get_mut(&t) else {
                    continue;
                };
                // Its data may wait behind events not served yet (a poll
                // returns at most 1,024): read before calling it idle.
                let next = match serve_event(c, true, &log) {
                    Next::Keep => match idle_reason(c, opts.idle_timeout, Instant::now()) {
                        Some(reason) => {
                            let _ = c.stream.shutdown(std::net::Shutdown::Both);
                            Next::Close(reason)
                        }
                        None => {
                            let interest = c.interest();
                            match poll
                                .registry()
                                .reregister(&mut c.stream, Token(t), interest)
                            {
                                Ok(()) => Next::Keep,
                                Err(e) => Next::Close(format!("cannot watch this connection: {e}")),
                            }
                        }
                    },
                    close => close,
                };
                if let Next::Close(reason) = next
                    && let Some(c) = clients.remove(&t)
                {
                    close(&poll, c, reason, &log);
                }
            }
        }
        if want_accept || accept_retry {
            loop {
                let Some((mut stream, peer)) =
                    super::net::accept_next(|| listener.accept(), &mut accept_retry, &log)
                else {
                    break;
                };
                if clients.len() >= opts.max_conns {
                    refusals.refused(&log, peer, opts.max_conns);
                    continue;
                }
                let token = Token(next_token);
                next_token = next_token.wrapping_add(1).max(FIRST_CLIENT);
                if let Err(e) = poll
                    .registry()
                    .register(&mut stream, token, Interest::READABLE)
                {
                    log.emit(&Event::Error {
                        conn: None,
                        peer: Some(peer),
                        code: "io.register",
                        message: format!("cannot watch this connection: {e}; closed it"),
                    });
                    continue;
                }
                let _ = stream.set_nodelay(true);
                accepted = accepted.saturating_add(1);
                let mut conn = Conn::new(accepted, peer, opts.speaks, opts.max_frame);
                conn.token = Some(token.0);
                log.emit(&Event::Accepted {
                    conn: accepted,
                    peer,
                    active: clients.len().saturating_add(1),
                    token: Some(token.0),
                });
                clients.insert(
                    token.0,
                    Box::new(Client {
                        stream,
                        conn,
                        out: Vec::new(),
                        sent: 0,
                        paused: false,
                        closing: None,
                        pauses: 0,
                        active: Instant::now(),
                    }),
                );
            }
        }
    }
    for (_, c) in clients {
        log.emit(&Event::Closed {
            conn: c.conn.id,
            peer: c.conn.peer,
            reason: "server stopping",
            stats: c.conn.stats,
            token: c.conn.token,
        });
    }
    Ok((accepted, refusals.total))
}

/// Serves one readiness event: reads while allowed, then writes.
fn serve_event(c: &mut Client, readable: bool, log: &Log) -> Next {
    let mut readable = readable;
    // Read, then write; if the write emptied a paused connection's queue,
    // read again at once: data that waited in the socket while reads were
    // paused raises no new readiness edge (it did not just arrive).
    loop {
        match serve_once(c, readable, log) {
            Some(next) => return next,
            None => readable = true,
        }
    }
}

/// One read-then-write pass; `None` when reads were just resumed and the
/// caller should read again.
fn serve_once(c: &mut Client, readable: bool, log: &Log) -> Option<Next> {
    if readable && !c.paused && c.closing.is_none() {
        loop {
            if c.pending() >= HIGH_WATER {
                // Try to hand the queue to the kernel first: a client that
                // reads promptly is only briefly behind.
                if let Err(e) = c.flush() {
                    return Some(Next::Close(format!("echo failed: {e}")));
                }
            }
            if c.pending() >= HIGH_WATER {
                // Flow control, not an error: the client reads its echoes
                // slower than it sends. Counted, and said in its close line.
                c.paused = true;
                c.pauses = c.pauses.saturating_add(1);
                if c.pauses == 1 {
                    log.emit(&Event::Paused {
                        conn: c.conn.id,
                        peer: c.conn.peer,
                        queued: c.pending(),
                        token: c.conn.token,
                    });
                }
                break;
            }
            match c.conn.read_from(&mut c.stream) {
                Ok(0) => {
                    c.closing = Some(match c.conn.finish() {
                        Ok(()) => "client closed",
                        Err(d) => {
                            c.conn
                                .log_decode_error(log, &d, "client closed mid-frame: ");
                            "client closed mid-frame"
                        }
                    });
                    break;
                }
                Ok(_) => {
                    c.active = Instant::now();
                    if let Err(d) = c.conn.process(log, &mut c.out) {
                        c.conn.log_decode_error(log, &d, "");
                        let _ = c.flush();
                        return Some(Next::Close(format!(
                            "{CLOSED_BY_SERVER}: {}",
                            d.diagnostic().code
                        )));
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Some(Next::Close(c.conn.read_failed(log, &e))),
            }
        }
    }
    if let Err(e) = c.flush() {
        return Some(Next::Close(format!("echo failed: {e}")));
    }
    if c.paused && c.pending() == 0 {
        c.paused = false;
        let read_again = c.closing.is_none();
        if read_again {
            return None;
        }
    }
    Some(match (&c.closing, c.pending()) {
        (Some(reason), 0) => Next::Close((*reason).to_string()),
        _ => Next::Keep,
    })
}
