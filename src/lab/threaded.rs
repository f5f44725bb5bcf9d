//! The thread-per-client TCP server (lab exercises 2, 4 and 5:
//! `serverTCP.py`, `serverTCPv2.py`, `serverTCPv3.py`).
//!
//! The accept loop waits in a `mio` poll on the listener and a waker, so
//! Ctrl+C wakes it at once. Each accepted client gets its own thread (as the
//! lab's `threading.Thread`), reading with blocking calls through
//! [`Conn`]. A shared counter of open connections enforces `--max-conns`.
//! Client reads time out every [`STOP_POLL`] so each thread notices a stop
//! by itself: one file descriptor per client, nothing shared to clone.

use std::io::{self, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token, Waker};

use super::conn::{Conn, Speaks};
use super::event::{CLOSED_BY_SERVER, Event, Log, Refusals};
use crate::codec::stream::SHRINK_ABOVE;
use crate::stop::Stop;

const LISTENER: Token = Token(0);
const WAKER: Token = Token(1);

/// Stack size of a client thread: the work needs little, and a small stack
/// keeps a thousand clients cheap.
const THREAD_STACK: usize = 256 * 1024;

/// Settings of a TCP server.
#[derive(Debug, Clone, Copy)]
pub struct TcpOptions {
    /// What clients speak.
    pub speaks: Speaks,
    /// Most connections open at once; more are accepted and closed at once
    /// with a log line.
    pub max_conns: usize,
    /// Largest v3 message accepted.
    pub max_frame: u32,
    /// Close a connection that sends nothing, or reads none of its echoes,
    /// this long.
    pub idle_timeout: Duration,
}

/// How often a client thread blocked in `read` looks at the stop flag.
pub const STOP_POLL: Duration = Duration::from_millis(200);

/// Open connections.
/// Connections counted against `--max-conns`, and client threads still
/// running (a thread frees its slot, then logs its close line, then ends).
#[derive(Default)]
struct Counts {
    slots: AtomicUsize,
    threads: AtomicUsize,
}

type Active = Arc<Counts>;

/// Serves until `stop`; returns how many connections were accepted and
/// how many refused.
pub fn run(
    listener: TcpListener,
    opts: TcpOptions,
    log: Arc<Log>,
    stop: Stop,
) -> io::Result<(u64, u64)> {
    listener.set_nonblocking(true)?;
    let mut poll = Poll::new()?;
    let fd = listener.as_raw_fd();
    poll.registry()
        .register(&mut SourceFd(&fd), LISTENER, Interest::READABLE)?;
    let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
    let active: Active = Arc::default();
    {
        let waker = waker.clone();
        stop.on_stop(move || {
            let _ = waker.wake();
        });
    }
    let mut events = Events::with_capacity(64);
    let mut accepted: u64 = 0;
    let mut refusals = Refusals::default();
    // Set while accept fails (out of file descriptors): retry every 100 ms,
    // since an edge-triggered poll will not report the waiting clients again.
    let mut accept_retry = false;
    while !stop.is_stopped() {
        let wait = accept_retry.then(|| Duration::from_millis(100));
        if let Err(e) = poll.poll(&mut events, wait) {
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        loop {
            if stop.is_stopped() {
                break;
            }
            let Some((stream, peer)) =
                super::net::accept_next(|| listener.accept(), &mut accept_retry, &log)
            else {
                break;
            };
            if active.slots.load(Ordering::SeqCst) >= opts.max_conns {
                refusals.refused(&log, peer, opts.max_conns);
                drop(stream);
                continue;
            }
            accepted = accepted.saturating_add(1);
            let id = accepted;
            if let Err(e) = spawn_client(id, stream, peer, opts, &log, &active, &stop) {
                log.emit(&Event::Error {
                    conn: Some(id),
                    peer: Some(peer),
                    code: "io.thread",
                    message: format!(
                        "cannot serve this client: {e} (out of threads or file descriptors? lower --max-conns); closed it"
                    ),
                });
                active.slots.fetch_sub(1, Ordering::SeqCst);
                active.threads.fetch_sub(1, Ordering::SeqCst);
            }
        }
    }
    // Stopping: each client thread notices within STOP_POLL; give them a
    // moment to log their close lines.
    let deadline = Instant::now() + Duration::from_secs(2);
    while active.threads.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok((accepted, refusals.total))
}

fn spawn_client(
    id: u64,
    stream: TcpStream,
    peer: std::net::SocketAddr,
    opts: TcpOptions,
    log: &Arc<Log>,
    active: &Active,
    stop: &Stop,
) -> io::Result<()> {
    // Counted first, so a failure below is undone by the caller.
    let open = active
        .slots
        .fetch_add(1, Ordering::SeqCst)
        .saturating_add(1);
    active.threads.fetch_add(1, Ordering::SeqCst);
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(STOP_POLL))?;
    stream.set_write_timeout(Some(STOP_POLL))?;
    let _ = stream.set_nodelay(true);
    log.emit(&Event::Accepted {
        conn: id,
        peer,
        active: open,
        token: None,
    });
    let log2 = log.clone();
    let active2 = active.clone();
    let stop = stop.clone();
    std::thread::Builder::new()
        .name(format!("rc1-conn-{id}"))
        .stack_size(THREAD_STACK)
        .spawn(move || {
            let mut conn = Conn::new(id, peer, opts.speaks, opts.max_frame);
            let reason = serve(&mut conn, stream, &log2, &stop, opts.idle_timeout);
            // The slot is free before the close line says so: a client
            // that reacts to that line must not be refused.
            active2.slots.fetch_sub(1, Ordering::SeqCst);
            log2.emit(&Event::Closed {
                conn: id,
                peer,
                reason: &reason,
                stats: conn.stats,
                token: None,
            });
            active2.threads.fetch_sub(1, Ordering::SeqCst);
        })?;
    Ok(())
}

/// Why an echo could not be written.
enum WriteEnd {
    /// A stop was asked for.
    Stopping,
    /// The client read nothing for the idle timeout.
    Stuck,
    /// The socket failed.
    Failed(io::Error),
}

/// Flow control of one connection: how often its echo writes blocked.
struct Pauses<'a> {
    log: &'a Log,
    count: u64,
}

impl Pauses<'_> {
    /// An echo write blocked: the client is not reading, so this thread
    /// stops reading from it too. Said once per connection, counted always.
    fn blocked(&mut self, conn: &Conn, queued: usize) {
        self.count = self.count.saturating_add(1);
        if self.count == 1 {
            self.log.emit(&Event::Paused {
                conn: conn.id,
                peer: conn.peer,
                queued,
                token: None,
            });
        }
    }

    /// The close reason, with the pauses counted.
    fn explain(&self, reason: String) -> String {
        if self.count == 0 {
            return reason;
        }
        format!(
            "{reason}; reads were paused {} time(s) while its echoes went unread (it read slower than it sent)",
            self.count
        )
    }
}

/// One client's loop; returns why it ended.
fn serve(conn: &mut Conn, mut stream: TcpStream, log: &Log, stop: &Stop, idle: Duration) -> String {
    let mut pauses = Pauses { log, count: 0 };
    let reason = serve_until_end(conn, &mut stream, log, stop, idle, &mut pauses);
    pauses.explain(reason)
}

fn serve_until_end(
    conn: &mut Conn,
    stream: &mut TcpStream,
    log: &Log,
    stop: &Stop,
    idle: Duration,
    pauses: &mut Pauses<'_>,
) -> String {
    let mut out = Vec::new();
    let mut last_heard = Instant::now();
    loop {
        if stop.is_stopped() {
            let _ = stream.shutdown(Shutdown::Both);
            return "server stopping".into();
        }
        let n = match conn.read_from(stream) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            // The read timeout: only a chance to look at the stop flag.
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                if last_heard.elapsed() >= idle {
                    let _ = stream.shutdown(Shutdown::Both);
                    return format!(
                        "{CLOSED_BY_SERVER}: nothing received for {} s (--idle-timeout)",
                        idle.as_secs_f64()
                    );
                }
                continue;
            }
            Err(e) => {
                if stop.is_stopped() {
                    return "server stopping".into();
                }
                return conn.read_failed(log, &e);
            }
        };
        last_heard = Instant::now();
        if n == 0 {
            if stop.is_stopped() {
                return "server stopping".into();
            }
            return match conn.finish() {
                Ok(()) => "client closed".into(),
                Err(d) => {
                    conn.log_decode_error(log, &d, "client closed mid-frame: ");
                    "client closed mid-frame".into()
                }
            };
        }
        let result = conn.process(log, &mut out);
        if !out.is_empty() {
            let written = write_echo(stream, &out, stop, idle, &mut |queued| {
                pauses.blocked(conn, queued)
            });
            conn.stats.bytes_out = conn.stats.bytes_out.saturating_add(written.0 as u64);
            match written.1 {
                Ok(()) => {}
                Err(WriteEnd::Stopping) => {
                    return "server stopping (echo not fully sent: the client was not reading)"
                        .into();
                }
                Err(WriteEnd::Stuck) => {
                    let _ = stream.shutdown(Shutdown::Both);
                    return format!(
                        "{CLOSED_BY_SERVER}: it read none of its echoes for {} s (--idle-timeout)",
                        idle.as_secs_f64()
                    );
                }
                Err(WriteEnd::Failed(e)) => return format!("echo failed: {e}"),
            }
            last_heard = Instant::now();
            out.clear();
            if out.capacity() > SHRINK_ABOVE {
                // A large echo went out: do not keep its buffer.
                out = Vec::new();
            }
        }
        if let Err(d) = result {
            conn.log_decode_error(log, &d, "");
            let _ = stream.shutdown(Shutdown::Both);
            return format!("{CLOSED_BY_SERVER}: {}", d.diagnostic().code);
        }
    }
}

/// Writes an echo whole, unless a stop is asked for or the client takes
/// nothing for `idle`: a client that stops reading must not keep its thread
/// (and Ctrl+C) waiting forever. While the write is blocked this thread
/// reads nothing more from the client, so the server holds at most one
/// read's echo plus the kernel's socket buffers for it. `blocked(queued)`
/// is called the first time the write blocks. The write timeout is
/// [`STOP_POLL`], so the flag is seen within that time. Returns the bytes
/// written and how it ended.
fn write_echo(
    stream: &mut TcpStream,
    mut data: &[u8],
    stop: &Stop,
    idle: Duration,
    blocked: &mut dyn FnMut(usize),
) -> (usize, Result<(), WriteEnd>) {
    let mut written = 0usize;
    let mut progress = Instant::now();
    let mut said = false;
    while !data.is_empty() {
        match stream.write(data) {
            Ok(0) => {
                return (
                    written,
                    Err(WriteEnd::Failed(io::ErrorKind::WriteZero.into())),
                );
            }
            Ok(n) => {
                data = data.get(n..).unwrap_or_default();
                written = written.saturating_add(n);
                progress = Instant::now();
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                if stop.is_stopped() {
                    return (written, Err(WriteEnd::Stopping));
                }
                if !said {
                    said = true;
                    blocked(data.len());
                }
                if progress.elapsed() >= idle {
                    return (written, Err(WriteEnd::Stuck));
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return (written, Err(WriteEnd::Failed(e))),
        }
    }
    (written, Ok(()))
}
